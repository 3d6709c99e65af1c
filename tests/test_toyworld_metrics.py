"""Toy-world metrics give the known answers (toyworld/metrics.py)."""

import math

import pytest
import torch

from miga_core.errors import MigaValueError
from toyworld import (
    COLOURS, SHAPES, ClipSpec, evaluate, evaluate_batch, identify, identity_accuracy, motion_smoothness,
    render, render_schedule, sample_spec, switch_error, temporal_flicker,
)
from toyworld.metrics import (
    JUMP_PX, MAX_SPEED, MIN_OBJECT_PIXELS, OBJECT_METRICS, blink_count, jump_count, object_measures, object_track, presence, size_stability,
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


# ---------------------------------------------------------------- object-level measures


def _placed(spec: ClipSpec, positions, radii=None) -> torch.Tensor:
    """``[F, 3, 32, 32]``: frame t shows ``spec``'s object standing at ``positions[t]`` with radius ``radii[t]``."""
    radii = radii or [spec.radius] * len(positions)
    frames = [render([spec.with_(position=p, radius=r, velocity=(0.0, 0.0), motion="bounce")], 1).video[0, 0]
              for p, r in zip(positions, radii)]
    return torch.stack(frames)


def test_clean_rendered_videos_have_no_blink_no_jump_and_a_steady_size():
    fast = [ClipSpec(velocity=(MAX_SPEED, 0.0), background=b) for b in ("checker", "stripes")]  # the top speed, bouncing
    orbit = [sample_spec(3, motion="orbit", orbit_radius=9.0, angular_speed=2 * math.pi / 48)]
    specs = SPECS + fast + orbit
    for video, spec in zip(render(specs, 32).video, specs):
        scores = object_measures(video)
        assert (scores["presence"], scores["blink_count"], scores["jump_count"]) == (1.0, 0, 0), spec.prompt()
        assert scores["size_stability"] >= 0.95, spec.prompt()
    big = render(SPECS[:2], 16, size=64).video  # thresholds scale with the frame size
    assert [object_measures(v)["jump_count"] for v in big] == [0, 0]
    assert [object_measures(v)["presence"] for v in big] == [1.0, 1.0]


def test_deleting_the_object_gives_the_exact_blinks_and_presence():
    spec = sample_spec(7, background="gradient", pan=0.5)
    clip = render([spec], 40)
    video = clip.video[0].clone()
    gone = [0, 1, 5, 6, 7, 20, 30, 31, 32, 33, 39]  # runs 0-1 (starts late) and 39 (leaves) are not blinks
    video[gone] = clip.background[0, gone]
    track = object_track(video)
    assert track.present.tolist() == [t not in gone for t in range(40)]
    assert blink_count(video) == 3
    assert presence(video) == 29 / 40
    assert jump_count(video) == 0  # the object reappears where its motion took it
    assert torch.isnan(track.centroid[gone]).all() and (track.area[gone] == 0).all()
    empty = clip.background[0]
    assert (presence(empty), blink_count(empty), jump_count(empty), size_stability(empty)) == (0.0, 0, 0, 0.0)


def test_a_speck_is_not_the_object():
    video = torch.full((5, 3, 32, 32), 0.04)  # black background
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    pixels = list(zip(ys.flatten().tolist(), xs.flatten().tolist()))
    for t, n in enumerate([16, MIN_OBJECT_PIXELS - 1, MIN_OBJECT_PIXELS, 1, 16]):
        for y, x in pixels[:n]:
            video[t, :, 10 + y, 12 + x] = torch.tensor([1.0, 0.0, 1.0])  # magenta
    assert object_track(video).present.tolist() == [True, False, True, False, True]
    assert (blink_count(video), presence(video)) == (2, 3 / 5)


def test_a_colour_switch_is_not_a_blink():
    first = sample_spec(2, shape="circle", colour="red")
    video = render_schedule([first, first.with_(colour="yellow")], [0, 10], 20).video[0]
    assert (presence(video), blink_count(video), jump_count(video)) == (1.0, 0, 0)


def test_teleports_give_the_exact_jump_count():
    spec = ClipSpec(shape="square", colour="green", background="stripes", radius=4.0)
    x = [8.0]
    steps = [MAX_SPEED] * 5 + [JUMP_PX + 0.5] + [-MAX_SPEED] * 4 + [JUMP_PX - 0.5] + [MAX_SPEED] * 3 + [-12.0] + [1.0] * 4
    for d in steps:
        x.append(x[-1] + d)
    video = _placed(spec, [(p, 14.0) for p in x])
    assert jump_count(video) == 2  # the steps of JUMP_PX + 0.5 and -12 px; JUMP_PX - 0.5 is motion
    assert jump_count(video, threshold=3.0) == 3
    assert jump_count(video, threshold=20.0) == 0
    # across a blink of 3 frames the object may travel 3 more frames at MAX_SPEED; farther is a jump
    path = [(6.0 + MAX_SPEED * t, 14.0) for t in range(12)]
    empty = render([spec], 3).background[0]
    near = _placed(spec, path)
    near[4:7] = empty
    hop = near.clone()
    hop[7:] = _placed(spec, [(p + JUMP_PX + 1.0, y) for p, y in path[7:]])
    assert (blink_count(near), jump_count(near)) == (1, 0)
    assert (blink_count(hop), jump_count(hop)) == (1, 1)


def test_size_stability_falls_as_the_object_swells_and_shrinks():
    spec = ClipSpec(shape="square", colour="blue", background="black")
    # pixel-aligned squares: the area is exactly (2r)^2 px, so the coefficient of variation is known
    alternating = _placed(spec, [(16.0, 16.0)] * 8, radii=[5.0, 3.0] * 4)  # areas 100, 36: mean 68, std 32
    assert size_stability(alternating) == pytest.approx(1 - 32 / 68, abs=1e-4)
    assert size_stability(_placed(spec, [(16.0, 16.0)] * 8)) == pytest.approx(1.0, abs=1e-6)
    moving = sample_spec(9, shape="circle", background="checker")
    scores = [size_stability(_placed(moving, [(16.0 + t % 3, 15.0) for t in range(12)],
                                     radii=[5.0 + a * (-1) ** t for t in range(12)])) for a in (0.0, 0.5, 1.0, 2.0)]
    assert scores[0] >= 0.95
    assert scores == sorted(scores, reverse=True) and scores[-1] < scores[0] - 0.3


def test_evaluate_reports_the_object_measures_and_jump_count_refuses_a_bad_threshold():
    scores = evaluate(GROUND_TRUTH[0], SPECS[0])
    assert set(OBJECT_METRICS) <= set(scores)
    assert (scores["blink_count"], scores["jump_count"], scores["presence"]) == (0, 0, 1.0)
    with pytest.raises(MigaValueError, match="threshold"):
        jump_count(GROUND_TRUTH[0], threshold=0.0)
