"""A procedural video world: one coloured shape moving over a background, deterministic by seed.

A clip is a :class:`ClipSpec` (shape, colour, background, motion, camera pan, trajectory). Frame
``t`` is a pure function of the spec and the time ``t``, so continuing a clip later (``start``)
renders exactly the frames of a longer render. Rendering is vectorised over clips and frames
(no Python loop over frames): bounce positions are closed-form reflections (a triangle wave of
the unbounded position), edges are anti-aliased from signed distance fields (SDF).

Units: spec quantities are pixels of the ``WORLD_SIZE`` x ``WORLD_SIZE`` (32 x 32) reference
canvas and frames; ``render(size=64)`` draws the same world at twice the resolution.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._core import MigaTypeError, MigaValueError, bad_value

__all__ = [
    "WORLD_SIZE", "SHAPES", "COLOURS", "COLOUR_RGB", "BACKGROUNDS", "MOTIONS",
    "ClipSpec", "Render", "sample_spec", "parse_prompt", "render", "render_schedule", "shape_sdf",
]

WORLD_SIZE = 32  # side of the reference canvas; spec positions/radii/speeds are in its pixels
SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "magenta")
COLOUR_RGB = {  # saturated, pairwise RGB distance >= 1, far from every background colour
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "magenta": (1.0, 0.0, 1.0),
}
BACKGROUNDS = ("black", "grey", "navy", "gradient", "stripes", "checker")
MOTIONS = ("bounce", "orbit")
_VERBS = {"bounce": "bouncing", "orbit": "orbiting"}
# Dark, desaturated pairs (uniform kinds repeat one colour): RGB distance >= 0.69 from every object colour.
_BG_RGB = {
    "black": ((0.04, 0.04, 0.04),) * 2,
    "grey": ((0.42, 0.42, 0.42),) * 2,
    "navy": ((0.06, 0.08, 0.30),) * 2,
    "gradient": ((0.05, 0.18, 0.22), (0.32, 0.12, 0.30)),
    "stripes": ((0.14, 0.14, 0.18), (0.36, 0.34, 0.30)),
    "checker": ((0.22, 0.20, 0.16), (0.42, 0.38, 0.34)),
}
_TEXTURE_PERIOD = 8.0  # stripes/checker period, px
_GRADIENT_PERIOD = 64.0  # gradient period, px; a multiple of _TEXTURE_PERIOD


@dataclass(frozen=True)
class ClipSpec:
    """One clip of the world. Lengths in px of the 32 x 32 canvas, times in frames."""

    shape: str = "circle"  # one of SHAPES
    colour: str = "red"  # one of COLOURS
    background: str = "black"  # one of BACKGROUNDS
    motion: str = "bounce"  # one of MOTIONS
    pan: float = 0.0  # camera pan, px/frame to the right (background texture only); 0 = static
    radius: float = 5.0  # object half-size: the shape fills [centre - radius, centre + radius]^2
    position: tuple[float, float] = (16.0, 16.0)  # bounce: (x, y) centre at time 0
    velocity: tuple[float, float] = (1.0, 0.6)  # bounce: px/frame; elastic reflections off the walls
    orbit_centre: tuple[float, float] = (16.0, 16.0)  # orbit: (x, y)
    orbit_radius: float = 7.0  # orbit: px
    angular_speed: float = 2 * math.pi / 96  # orbit: rad/frame (signed); period 2*pi/|w| frames
    phase: float = 0.0  # orbit: angle at time 0, rad

    def __post_init__(self) -> None:
        for name, vocab in (("shape", SHAPES), ("colour", COLOURS), ("background", BACKGROUNDS), ("motion", MOTIONS)):
            if getattr(self, name) not in vocab:
                raise MigaValueError(bad_value(name, getattr(self, name), f"one of {vocab}", "pick a word from the vocabulary"))
        numbers = (self.pan, self.radius, *self.position, *self.velocity, *self.orbit_centre,
                   self.orbit_radius, self.angular_speed, self.phase)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise MigaValueError(bad_value("ClipSpec numbers", numbers, "finite floats", "pass finite numbers"))
        if not 2.0 <= self.radius <= WORLD_SIZE / 4:
            raise MigaValueError(bad_value("radius", self.radius, f"[2, {WORLD_SIZE / 4}] px", "use ~4-6 px"))
        if abs(self.pan) > 4.0:
            raise MigaValueError(bad_value("pan", self.pan, "|pan| <= 4 px/frame", "use a slower pan"))
        lo, hi = self.radius, WORLD_SIZE - self.radius
        if self.motion == "bounce" and not all(lo <= p <= hi for p in self.position):
            raise MigaValueError(bad_value("position", self.position, f"both in [radius, {WORLD_SIZE} - radius] = [{lo}, {hi}]",
                                           "start the object fully inside the frame"))
        reach = self.orbit_radius + self.radius
        if self.motion == "orbit" and (self.orbit_radius < 0 or not all(reach <= c <= WORLD_SIZE - reach for c in self.orbit_centre)):
            raise MigaValueError(bad_value("orbit_centre/orbit_radius", (self.orbit_centre, self.orbit_radius),
                                           f"orbit_radius >= 0 and centre in [orbit_radius + radius, {WORLD_SIZE} - orbit_radius - radius]",
                                           "move the centre inwards or shrink the orbit"))

    def attributes(self) -> tuple[int, int, int, int]:
        """``(shape, colour, background, motion)`` indices into SHAPES, COLOURS, BACKGROUNDS, MOTIONS."""
        return (SHAPES.index(self.shape), COLOURS.index(self.colour),
                BACKGROUNDS.index(self.background), MOTIONS.index(self.motion))

    def prompt(self) -> str:
        """E.g. ``"a red circle bouncing over a gradient background"`` (inverse: :func:`parse_prompt`)."""
        return f"a {self.colour} {self.shape} {_VERBS[self.motion]} over a {self.background} background"

    def with_(self, **changes) -> ClipSpec:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise MigaTypeError(bad_value("with_ fields", unknown, f"fields of ClipSpec {[f.name for f in dataclasses.fields(self)]}", "fix the name"))
        return dataclasses.replace(self, **changes)


@dataclass
class Render:
    """Rendered clips; H = W = size, px coordinates of the rendered frame (pixel j spans [j, j+1))."""

    video: torch.Tensor  # [B, F, 3, H, W] float32 in [0, 1]
    mask: torch.Tensor  # [B, F, H, W] float32 soft coverage of the object in [0, 1]
    background: torch.Tensor  # [B, F, 3, H, W] the frame without the object
    centre: torch.Tensor  # [B, F, 2] (x, y) centre of the object's bounding box, px


def sample_spec(seed: int, **fixed) -> ClipSpec:
    """A random clip, deterministic by ``seed``; ``fixed`` pins fields (e.g. ``shape="circle"``).

    Pinning a field does not change the others (a fixed number of draws). Trajectories fit the
    (possibly pinned) radius: bounce speed 0.5-1.5 px/frame at 15-75 degrees off the axes; orbit
    radius 5-9 px, period 48-160 frames either way round. Half the clips are static (pan 0),
    the rest pan at 0.25-1.0 px/frame either way.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MigaValueError(bad_value("seed", seed, "an integer >= 0", "pass a non-negative int"))
    names = {f.name for f in dataclasses.fields(ClipSpec)}
    if set(fixed) - names:
        raise MigaTypeError(bad_value("fixed", sorted(set(fixed) - names), f"fields of ClipSpec {sorted(names)}", "fix the name"))
    rng = np.random.default_rng(int(seed))
    pick = rng.integers(0, 1 << 30, size=4)
    u = rng.random(16)
    u = [float(x) for x in u]  # plain floats in the spec, not numpy scalars
    vocab = {"shape": SHAPES, "colour": COLOURS, "background": BACKGROUNDS, "motion": MOTIONS}
    words = {k: v[int(p) % len(v)] for (k, v), p in zip(vocab.items(), pick)}
    pan = 0.0 if u[0] < 0.5 else (0.25 + 0.75 * u[1]) * (1 if u[2] < 0.5 else -1)
    radius = float(fixed.get("radius", 4.0 + 2.0 * u[3]))
    lo, hi = radius, WORLD_SIZE - radius
    speed, angle = 0.5 + 1.0 * u[6], math.radians(15 + 60 * u[7]) + (math.pi / 2) * math.floor(4 * u[8])
    orbit_radius = float(fixed.get("orbit_radius", min(5.0 + 4.0 * u[9], WORLD_SIZE / 2 - radius - 0.5)))
    reach = orbit_radius + radius
    c_lo, c_hi = reach, WORLD_SIZE - reach
    values = dict(
        words, pan=pan, radius=radius,
        position=(lo + (hi - lo) * u[4], lo + (hi - lo) * u[5]),
        velocity=(speed * math.cos(angle), speed * math.sin(angle)),
        orbit_centre=(c_lo + (c_hi - c_lo) * u[10], c_lo + (c_hi - c_lo) * u[11]),
        orbit_radius=orbit_radius,
        angular_speed=2 * math.pi / (48 + 112 * u[12]) * (1 if u[13] < 0.5 else -1),
        phase=2 * math.pi * u[14],
    )
    values.update(fixed)
    return ClipSpec(**values)


def parse_prompt(text: str) -> tuple[int, int, int, int]:
    """Inverse of :meth:`ClipSpec.prompt`: ``(shape, colour, background, motion)`` indices."""
    words = text.strip().lower().split()
    verbs = {v: k for k, v in _VERBS.items()}
    template = "'a <colour> <shape> <bouncing|orbiting> over a <background> background'"
    if len(words) != 8 or words[0] != "a" or words[4:6] != ["over", "a"] or words[7] != "background":
        raise MigaValueError(bad_value("text", text, template, "write the prompt as ClipSpec.prompt() does"))
    checks = (("colour", words[1], COLOURS), ("shape", words[2], SHAPES), ("motion verb", words[3], tuple(verbs)),
              ("background", words[6], BACKGROUNDS))
    for name, word, vocab in checks:
        if word not in vocab:
            raise MigaValueError(bad_value(f"{name} in prompt", word, f"one of {vocab}", f"use the template {template}"))
    return SHAPES.index(words[2]), COLOURS.index(words[1]), BACKGROUNDS.index(words[6]), MOTIONS.index(verbs[words[3]])


def _trajectory(specs: Sequence[ClipSpec], times: torch.Tensor) -> torch.Tensor:
    """``[B, F, 2]`` float64 centres (world px) at ``times [F]`` (float64), closed form."""
    f64 = dict(dtype=torch.float64, device=times.device)
    r = torch.tensor([s.radius for s in specs], **f64)[:, None, None]
    p0 = torch.tensor([s.position for s in specs], **f64)[:, None, :]
    v = torch.tensor([s.velocity for s in specs], **f64)[:, None, :]
    lo, span = r, WORLD_SIZE - 2 * r  # walls at radius and WORLD_SIZE - radius
    q = torch.remainder(p0 - lo + v * times[None, :, None], 2 * span)
    bounce = lo + span - (q - span).abs()  # triangle wave = elastic reflections
    c = torch.tensor([s.orbit_centre for s in specs], **f64)[:, None, :]
    rad = torch.tensor([s.orbit_radius for s in specs], **f64)[:, None, None]
    w = torch.tensor([s.angular_speed for s in specs], **f64)[:, None]
    ang = torch.tensor([s.phase for s in specs], **f64)[:, None] + w * times[None, :]
    orbit = c + rad * torch.stack([ang.cos(), ang.sin()], dim=-1)
    is_orbit = torch.tensor([s.motion == "orbit" for s in specs], device=times.device)[:, None, None]
    return torch.where(is_orbit, orbit, bounce)


def shape_sdf(kind: str, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance (< 0 inside, units of ``dx``) of shape ``kind`` filling the box [-r, r]^2.

    ``dx``, ``dy``: offsets from the box centre (broadcastable); ``r``: half-size. The triangle
    points up (apex at ``(0, -r)``, base on ``dy = r``); its edges use the max of three planes.
    """
    if kind not in SHAPES:
        raise MigaValueError(bad_value("kind", kind, f"one of {SHAPES}", "pick a shape from SHAPES"))
    if kind == "circle":
        return torch.sqrt(dx * dx + dy * dy) - r
    if kind == "square":
        return torch.maximum(dx.abs(), dy.abs()) - r
    # triangle, apex up at (0, -r), base y = r from x = -r to r; max of the three edge planes
    left = (-2 * (dx + r) - (dy - r)) / math.sqrt(5)
    right = (2 * (dx - r) - (dy - r)) / math.sqrt(5)
    return torch.maximum(torch.maximum(left, right), dy - r)


def _backgrounds(kinds: torch.Tensor, offsets: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``[B, F, 3, H, W]`` backgrounds; ``kinds [B]`` indices, ``offsets [B, F]`` pan shift in px."""
    B, F = offsets.shape
    n = coords.numel()
    out = torch.empty(B, F, 3, n, n, device=coords.device)
    u = coords.view(1, 1, 1, n) + offsets[:, :, None, None]  # [B, F, 1, W] texture x
    y = coords.view(1, 1, n, 1)
    for k, name in enumerate(BACKGROUNDS):
        sel = kinds == k
        if not bool(sel.any()):
            continue
        us = u[sel]
        if name in ("black", "grey", "navy"):
            w = torch.zeros_like(us + y)
        elif name == "gradient":
            w = 0.5 - 0.5 * torch.cos(2 * math.pi * (us + y) / _GRADIENT_PERIOD)
        elif name == "stripes":
            w = (0.5 + 1.5 * torch.sin(2 * math.pi * us / _TEXTURE_PERIOD)).clamp(0, 1).expand(-1, -1, n, -1)
        else:  # checker
            w = (0.5 + 2.0 * torch.sin(2 * math.pi * us / _TEXTURE_PERIOD)
                 * torch.sin(2 * math.pi * y / _TEXTURE_PERIOD)).clamp(0, 1)
        c0, c1 = (torch.tensor(c, device=coords.device).view(1, 1, 3, 1, 1) for c in _BG_RGB[name])
        out[sel] = c0 + (c1 - c0) * w[:, :, None]
    return out


def _draw(specs: Sequence[ClipSpec], shape_idx: torch.Tensor, colour_idx: torch.Tensor, times: torch.Tensor, size: int) -> Render:
    """Render ``specs`` (trajectory, background, pan, radius) with per-frame ``shape_idx``/``colour_idx [B, F]``."""
    device = times.device
    px = WORLD_SIZE / size  # world px per rendered pixel: edges are anti-aliased over one rendered pixel
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * px  # pixel centres, world px
    centre = _trajectory(specs, times)  # [B, F, 2] float64
    c = centre.float()
    dx = coords.view(1, 1, 1, size) - c[..., 0, None, None]  # [B, F, 1, W]
    dy = coords.view(1, 1, size, 1) - c[..., 1, None, None]  # [B, F, H, 1]
    r = torch.tensor([s.radius for s in specs], device=device, dtype=torch.float32).view(-1, 1, 1, 1)
    sdf = torch.zeros(*shape_idx.shape, size, size, device=device)
    for k, name in enumerate(SHAPES):
        sdf = torch.where((shape_idx == k)[..., None, None], shape_sdf(name, dx, dy, r), sdf)
    mask = (0.5 - sdf / px).clamp(0, 1)  # [B, F, H, W] soft coverage
    pan = torch.tensor([s.pan for s in specs], dtype=torch.float64, device=device)
    offsets = torch.remainder(pan[:, None] * times[None, :], _GRADIENT_PERIOD).float()  # exact periodic shift
    kinds = torch.tensor([BACKGROUNDS.index(s.background) for s in specs], device=device)
    background = _backgrounds(kinds, offsets, coords)
    palette = torch.tensor([COLOUR_RGB[n] for n in COLOURS], device=device)
    colour = palette[colour_idx][..., None, None]  # [B, F, 3, 1, 1]
    m = mask[:, :, None]
    video = background * (1 - m) + colour * m
    return Render(video=video, mask=mask, background=background, centre=c / px)


def _check_frames(num_frames: int, start: int, size: int) -> None:
    if not isinstance(num_frames, int) or num_frames < 1:
        raise MigaValueError(bad_value("num_frames", num_frames, "an integer >= 1", "ask for at least one frame"))
    if not isinstance(start, int) or start < 0:
        raise MigaValueError(bad_value("start", start, "an integer >= 0", "start at frame 0 or later"))
    if not isinstance(size, int) or size < 8:
        raise MigaValueError(bad_value("size", size, "an integer >= 8", "use 32 (the reference canvas)"))


def render(specs: Sequence[ClipSpec], num_frames: int, start: int = 0, size: int = 32,
           device: str | torch.device = "cpu") -> Render:
    """Render B clips, frames ``start .. start + num_frames - 1`` of each, vectorised over B and F.

    Returns a :class:`Render` with ``video [B, F, 3, size, size]`` in [0, 1], ``mask [B, F, size, size]``,
    ``background [B, F, 3, size, size]``, ``centre [B, F, 2]`` (px). Frame t is the state at time
    ``start + t``, so ``render(s, 6, start=10).video == render(s, 16).video[:, 10:]``.
    Raises MigaValueError on an empty ``specs`` or out-of-range ``num_frames``/``start``/``size``.
    """
    specs = list(specs)
    if not specs or not all(isinstance(s, ClipSpec) for s in specs):
        raise MigaValueError(bad_value("specs", specs, "a non-empty sequence of ClipSpec", "pass [sample_spec(seed), ...]"))
    _check_frames(num_frames, start, size)
    times = torch.arange(start, start + num_frames, dtype=torch.float64, device=device)
    shape_idx = torch.tensor([SHAPES.index(s.shape) for s in specs], device=device)[:, None].expand(-1, num_frames)
    colour_idx = torch.tensor([COLOURS.index(s.colour) for s in specs], device=device)[:, None].expand(-1, num_frames)
    return _draw(specs, shape_idx, colour_idx, times, size)


def render_schedule(specs_per_segment: Sequence[ClipSpec] | Sequence[Sequence[ClipSpec]], starts: Sequence[int],
                    num_frames: int, start: int = 0, size: int = 32, device: str | torch.device = "cpu") -> Render:
    """A multi-prompt video: the object's shape/colour switch at ``starts`` while the motion continues.

    Args:
        specs_per_segment: one ClipSpec per segment (one video, B = 1), or a sequence of B such
            lists (a batch sharing ``starts``). The first spec gives the trajectory, radius,
            background and pan; later specs contribute only their shape and colour.
        starts: first clip time of each segment; ``starts[0] == 0``, strictly increasing.
        num_frames, start, size, device: as in :func:`render` (times ``start .. start + num_frames - 1``).
    Returns:
        a :class:`Render` ``[B, F, ...]``; frame t shows segment k where ``starts[k] <= start + t``.
    """
    batch = [list(specs_per_segment)] if specs_per_segment and isinstance(specs_per_segment[0], ClipSpec) else [list(s) for s in specs_per_segment]
    starts = [int(s) for s in starts]
    if not batch or any(len(seg) != len(starts) or not all(isinstance(s, ClipSpec) for s in seg) for seg in batch):
        raise MigaValueError(bad_value("specs_per_segment", specs_per_segment, f"one ClipSpec per start ({len(starts)})",
                                       "pass as many specs as segment starts"))
    if not starts or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
        raise MigaValueError(bad_value("starts", starts, "strictly increasing frame indices with starts[0] == 0",
                                       "list the first frame of each segment, beginning with 0"))
    _check_frames(num_frames, start, size)
    times = torch.arange(start, start + num_frames, dtype=torch.float64, device=device)
    seg = torch.searchsorted(torch.tensor(starts, dtype=torch.float64, device=device), times, right=True) - 1  # [F]
    shapes = torch.tensor([[SHAPES.index(s.shape) for s in segs] for segs in batch], device=device)  # [B, K]
    colours = torch.tensor([[COLOURS.index(s.colour) for s in segs] for segs in batch], device=device)
    return _draw([segs[0] for segs in batch], shapes[:, seg], colours[:, seg], times, size)
