"""Toy-world metrics give the known answers (toyworld/metrics.py)."""

import pytest
import torch

from miga_core.errors import MigaValueError
from toyworld import (
    COLOURS, SHAPES, ClipSpec, evaluate, evaluate_batch, identify, identity_accuracy, motion_smoothness,
    render, render_schedule, sample_spec, switch_error, temporal_flicker,
)

SPECS = [sample_spec(seed) for seed in range(12)]
GROUND_TRUTH = render(SPECS, 24).video


def test_ground_truth_scores_near_one_on_every_metric():
    scores = evaluate_batch(GROUND_TRUTH, SPECS)
    assert set(scores) == {"mean", "std"}
    mean = scores["mean"]
    assert mean["identity_accuracy"] >= 0.95
    assert mean["subject_consistency"] >= 0.98
    assert mean["background_consistency"] >= 0.95
    assert mean["motion_smoothness"] >= 0.97
    assert all(0 <= v <= 1 for v in mean.values())


def test_identify_finds_every_shape_and_colour_on_every_background():
    for i, shape in enumerate(SHAPES):
        specs = [s.with_(shape=shape, colour=COLOURS[(i + k) % len(COLOURS)]) for k, s in enumerate(SPECS)]
        for video, spec in zip(render(specs, 8).video, specs):
            found_shape, found_colour = identify(video)
            assert found_shape.tolist() == [i] * 8, spec.prompt()
            assert found_colour.tolist() == [COLOURS.index(spec.colour)] * 8, spec.prompt()


def test_a_static_video_has_no_flicker():
    spec = ClipSpec(background="checker")
    still = render([spec], 1).video[0].expand(10, -1, -1, -1)
    assert temporal_flicker(still, spec) == pytest.approx(1.0, abs=1e-6)
    assert motion_smoothness(still) == pytest.approx(1.0, abs=1e-6)


def test_a_moving_object_on_a_still_camera_barely_flickers():
    spec = sample_spec(5, background="stripes", pan=0.0)
    assert temporal_flicker(render([spec], 16).video[0], spec) >= 0.99


def test_swapping_the_colour_in_half_the_frames_halves_identity_accuracy():
    spec = ClipSpec(colour="red", shape="circle", background="gradient")
    video = render([spec], 16).video[0].clone()
    video[8:] = render([spec.with_(colour="blue")], 16).video[0, 8:]
    assert identity_accuracy(video, spec) == pytest.approx(0.5)


def test_a_teleporting_object_is_less_smooth_than_the_ground_truth():
    spec = sample_spec(11, pan=0.0, motion="bounce")
    smooth = render([spec], 16).video[0]
    teleport = smooth[torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    assert motion_smoothness(teleport) < motion_smoothness(smooth) - 0.005


def test_a_scheduled_switch_is_detected_at_the_scheduled_frame():
    first = sample_spec(2, shape="circle", colour="red")
    segments = [first, first.with_(colour="yellow"), first.with_(shape="square", colour="yellow")]
    video = render_schedule(segments, [0, 7, 13], 20).video[0]
    result = switch_error(video, segments, [0, 7, 13])
    assert result == {"scheduled": [7, 13], "detected": [7, 13], "errors": [0, 0], "within": [True, True]}


def test_a_switch_that_never_happens_has_infinite_error():
    spec = sample_spec(4, shape="circle", colour="red")
    video = render([spec], 12).video[0]
    result = switch_error(video, [spec, spec.with_(colour="green")], [0, 6])
    assert result == {"scheduled": [6], "detected": [None], "errors": [None], "within": [False]}


def test_an_early_switch_has_a_negative_error():
    first = sample_spec(6, shape="square", colour="blue")
    segments = [first, first.with_(shape="triangle")]
    video = render_schedule(segments, [0, 5], 16).video[0]
    result = switch_error(video, segments, [0, 8], tolerance=1)
    assert result["errors"] == [-3] and result["within"] == [False]


def test_metrics_reject_malformed_input():
    with pytest.raises(MigaValueError, match="video"):
        evaluate(torch.zeros(8, 32, 32), SPECS[0])
    with pytest.raises(MigaValueError, match="video frames"):
        motion_smoothness(torch.zeros(2, 3, 8, 8))
    with pytest.raises(MigaValueError, match="different shape or colour"):
        switch_error(GROUND_TRUTH[0], [SPECS[0], SPECS[0]], [0, 5])
