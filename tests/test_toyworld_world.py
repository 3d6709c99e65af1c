"""The toy world renders deterministic, continuable, vectorised clips (toyworld/world.py)."""

import math

import pytest
import torch

from miga_core.errors import MigaValueError
from toyworld import (
    BACKGROUNDS, COLOURS, MOTIONS, SHAPES, WORLD_SIZE, ClipSpec, parse_prompt, render, render_schedule, sample_spec,
)

SPECS = [sample_spec(seed) for seed in range(24)]


def test_vocabulary_order_is_frozen():
    assert SHAPES == ("circle", "square", "triangle")
    assert COLOURS == ("red", "green", "blue", "yellow", "magenta")
    assert BACKGROUNDS == ("black", "grey", "navy", "gradient", "stripes", "checker")
    assert MOTIONS == ("bounce", "orbit")


def test_the_same_seed_gives_the_same_spec_and_video():
    assert sample_spec(7) == sample_spec(7)
    assert sample_spec(7) != sample_spec(8)
    a, b = render([sample_spec(7)], 8), render([sample_spec(7)], 8)
    assert torch.equal(a.video, b.video)


def test_pinning_an_attribute_keeps_the_other_draws():
    free, pinned = sample_spec(3), sample_spec(3, shape="triangle", colour="blue")
    assert (pinned.shape, pinned.colour) == ("triangle", "blue")
    assert pinned.with_(shape=free.shape, colour=free.colour) == free


def test_render_shapes_ranges_and_dtypes():
    r = render(SPECS, 6)
    assert r.video.shape == (24, 6, 3, 32, 32) and r.background.shape == (24, 6, 3, 32, 32)
    assert r.mask.shape == (24, 6, 32, 32) and r.centre.shape == (24, 6, 2)
    assert r.video.dtype == torch.float32
    for t in (r.video, r.mask, r.background):
        assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert float(r.mask.amax(dim=(2, 3)).min()) == 1.0  # every frame shows a fully covered object pixel


def test_continuing_a_clip_renders_the_frames_of_a_longer_render():
    long, later = render(SPECS, 24), render(SPECS, 14, start=10)
    for name in ("video", "mask", "background", "centre"):
        assert torch.allclose(getattr(later, name), getattr(long, name)[:, 10:], atol=1e-6), name


def test_the_object_stays_inside_the_frame_for_500_frames():
    r = render(SPECS, 500)
    lo = r.centre - torch.tensor([s.radius for s in SPECS]).view(-1, 1, 1)
    hi = r.centre + torch.tensor([s.radius for s in SPECS]).view(-1, 1, 1)
    assert float(lo.min()) >= -1e-4 and float(hi.max()) <= WORLD_SIZE + 1e-4
    coverage = r.mask.sum(dim=(2, 3))  # the whole shape is drawn in every frame
    assert float((coverage / coverage[:, :1]).min()) > 0.9


def test_bounce_is_elastic_and_orbit_is_circular():
    bounce = ClipSpec(motion="bounce", radius=4.0, position=(16.0, 16.0), velocity=(1.0, 0.0))
    x = render([bounce], 60).centre[0, :, 0]
    assert float(x.max()) == pytest.approx(WORLD_SIZE - 4.0) and float(x.min()) == pytest.approx(4.0)
    assert torch.allclose((x[1:] - x[:-1]).abs(), torch.ones(59))  # speed kept through reflections
    orbit = ClipSpec(motion="orbit", orbit_centre=(16.0, 16.0), orbit_radius=6.0, angular_speed=2 * math.pi / 48)
    c = render([orbit], 48).centre[0]
    assert torch.allclose((c - 16.0).norm(dim=1), torch.full((48,), 6.0), atol=1e-4)


def test_pan_moves_the_background_and_a_static_camera_does_not():
    still = render([ClipSpec(background="stripes")], 4).background[0]
    panned = render([ClipSpec(background="stripes", pan=1.0)], 9).background[0]
    assert torch.equal(still[0], still[3])
    assert not torch.allclose(panned[0], panned[1], atol=1e-3)
    assert torch.allclose(panned[0], panned[8], atol=1e-5)  # stripe period 8 px at 1 px/frame


def test_prompt_and_parse_prompt_round_trip():
    for spec in SPECS:
        assert parse_prompt(spec.prompt()) == spec.attributes()
    assert ClipSpec(colour="red", shape="circle", background="gradient").prompt() == "a red circle bouncing over a gradient background"


def test_unknown_words_and_bad_specs_raise_clear_errors():
    with pytest.raises(MigaValueError, match="shape in prompt='hexagon'"):
        parse_prompt("a red hexagon bouncing over a black background")
    with pytest.raises(MigaValueError, match="colour='purple'"):
        ClipSpec(colour="purple")
    with pytest.raises(MigaValueError, match="position"):
        ClipSpec(position=(1.0, 16.0))
    with pytest.raises(MigaValueError, match="num_frames"):
        render(SPECS, 0)


def test_render_schedule_switches_identity_and_keeps_motion_and_background():
    first = SPECS[0]
    r = render_schedule([first, first.with_(colour="green" if first.colour != "green" else "red", shape="triangle")], [0, 6], 12)
    plain = render([first], 12)
    assert torch.equal(r.centre, plain.centre) and torch.equal(r.background, plain.background)
    assert torch.equal(r.video[:, :6], plain.video[:, :6])
    assert not torch.allclose(r.video[:, 6:], plain.video[:, 6:])
    batch = render_schedule([[s, s.with_(shape="square" if s.shape != "square" else "circle")] for s in SPECS[:3]], [0, 4], 8)
    assert batch.video.shape == (3, 8, 3, 32, 32)
