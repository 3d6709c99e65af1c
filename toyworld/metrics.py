"""Long-video consistency metrics for toy-world videos, modelled on VBench (Huang et al., CVPR 2024).

A generated video follows its own trajectory, so nothing here compares against ground-truth
positions: the object is found in each frame by colour. Every metric is in [0, 1], higher is
better, except the two counts (``blink_count``, ``jump_count``: events per video, 0 is best). VBench uses DINO/CLIP/RAFT features; here the features are hand-made descriptors that
the toy world makes reliable (saturated object colours, dark desaturated backgrounds):

- subject/background consistency: VBench Sec. 3.1 — per frame t >= 1 the mean of the (clamped)
  cosine similarity of its descriptor to frame 0 and to frame t-1, averaged over frames;
- motion smoothness: 1 - error of interpolating each middle frame from its two neighbours
  (VBench interpolates with a frame-interpolation network; here the linear midpoint);
- temporal flicker: 1 - mean absolute change of static pixels between consecutive frames
  (VBench on static videos). Only meaningful for ``pan == 0``: a pan moves the texture and counts;
- identity accuracy: the fraction of frames whose detected object has the prompted colour and shape.

The VBench-style scores average over pixels or frames, so they barely see a viewer's complaints:
an object that vanishes for five frames leaves the background unchanged (flicker ~ 0.997) and moves
few of a 32 x 32 frame's pixels. The object measures look at the object itself, found by the same
segmentation as identity accuracy (:func:`object_track`), in any object colour:

- presence: the fraction of frames showing the object; blink_count: the times it vanishes and
  comes back (maximal runs of absent frames between present ones);
- jump_count: the times its centroid moves farther than the world's motion allows (``JUMP_PX``
  between adjacent frames);
- size_stability: 1 - the coefficient of variation of its area over the frames showing it.

Everything is plain torch: binary dilation is one 3 x 3 max-pool, colours are compared as RGB
distances to a saturated palette, pooling is ``adaptive_avg_pool2d``. An image library (kornia's
morphology, Lab conversion, SSIM) would compute the same values slower or change what the metrics
mean, so none is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._core import MigaValueError, bad_value
from .world import COLOUR_RGB, COLOURS, SHAPES, WORLD_SIZE, ClipSpec, shape_sdf

__all__ = [
    "OBJECT_DISTANCE", "detect_object", "identify", "subject_consistency", "background_consistency",
    "motion_smoothness", "temporal_flicker", "identity_accuracy", "switch_error",
    "evaluate", "evaluate_batch",
    "MIN_OBJECT_PIXELS", "MAX_SPEED", "JUMP_PX", "OBJECT_METRICS", "COUNT_METRICS", "ObjectTrack", "object_track",
    "presence", "blink_count", "jump_count", "size_stability", "object_measures",
]

OBJECT_DISTANCE = 0.4  # RGB distance under which a pixel has an object colour (colours are >= 1 apart)
_FALLBACK_MIN = 0.1  # fallback detection: the least RGB distance from the median colour that counts
# Presence: a blob of at least MIN_OBJECT_PIXELS pixels (of a 32 x 32 frame). A quarter of the smallest object
# sample_spec draws (a radius-4 triangle, 32 px; >= 21 blob pixels in every rendered frame): less is a speck, not the
# object (in the README demo's video, frames 69 and 149 hold 6 and 4 px of it). Radius-2 triangles (ClipSpec's floor, never
# sampled) hold 3 px and would count as absent.
MIN_OBJECT_PIXELS = 8
# The fastest object the world draws, px/frame: sample_spec's bounce speeds are 0.5-1.5, its orbits at most
# 9 px * 2 pi / 48 frames = 1.18. The camera pan moves only the background.
MAX_SPEED = 1.5
# A jump: the centroid moves more than JUMP_PX between adjacent frames. That is 2.7x MAX_SPEED: rendered videos at
# the top speed move the measured centroid <= 1.6 px per frame (pixelation), so 4 px never fires on the world's own
# motion, yet it is 5x below the ~20 px teleports of the README demo. Generated motion between the two is counted:
# 5-7 px in one frame is 3-4 frames' worth of the fastest object, which a viewer sees as a lurch. (A prompt switch
# from or to a triangle moves the centroid r/3 <= 2 px on top of the motion: still under 4 px.)
JUMP_PX = 4.0
_SHAPE_AREA = {"circle": math.pi, "square": 4.0, "triangle": 2.0}  # area / radius^2 of each world shape


def _check_video(video: torch.Tensor, min_frames: int = 2) -> torch.Tensor:
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[1] != 3:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise MigaValueError(bad_value("video", shape, "a tensor [F, 3, H, W] in [0, 1]", "pass one clip, e.g. render(...).video[0]"))
    if video.shape[0] < min_frames:
        raise MigaValueError(bad_value("video frames", video.shape[0], f">= {min_frames}", "pass a longer video"))
    if not bool(torch.isfinite(video).all()):
        raise MigaValueError(bad_value("video", "non-finite values", "finite values in [0, 1]", "check the decoder output"))
    return video.float()


def _palette(device: torch.device) -> torch.Tensor:
    return torch.tensor([COLOUR_RGB[c] for c in COLOURS], device=device)  # [K, 3]


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """``[F, H, W]`` bool mask grown by one pixel (3 x 3)."""
    return F.max_pool2d(mask[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0


def detect_object(video: torch.Tensor, colour: str) -> torch.Tensor:
    """``[F, H, W]`` bool object mask: pixels within ``OBJECT_DISTANCE`` (RGB) of ``COLOUR_RGB[colour]``.

    A frame with no such pixel falls back to the pixels most different from its median colour
    (at least half the largest distance and >= 0.1); a uniform frame gets an empty mask.
    """
    video = _check_video(video, min_frames=1)
    if colour not in COLOUR_RGB:
        raise MigaValueError(bad_value("colour", colour, f"one of {COLOURS}", "use the spec's colour"))
    target = torch.tensor(COLOUR_RGB[colour], device=video.device).view(1, 3, 1, 1)
    mask = (video - target).norm(dim=1) < OBJECT_DISTANCE
    empty = ~mask.flatten(1).any(1)
    if bool(empty.any()):
        median = video.flatten(2).median(dim=2).values  # [F, 3]
        dist = (video - median[:, :, None, None]).norm(dim=1)
        floor = (0.5 * dist.flatten(1).amax(1)).clamp_min(_FALLBACK_MIN)
        mask = torch.where(empty[:, None, None], dist >= floor[:, None, None], mask)
    return mask


class _Segmentation(NamedTuple):
    """What :func:`_segment` finds per frame of ``[F, 3, H, W]`` (px of that frame; pixel j spans [j, j+1))."""

    count: torch.Tensor  # [F] pixels of the blob (0: no object colour in the frame)
    colour: torch.Tensor  # [F] COLOURS index nearest the blob's mean colour
    coverage: torch.Tensor  # [F, H, W] soft coverage m in [0, 1], zero outside the blob grown by one pixel
    area: torch.Tensor  # [F] sum of the coverage, px (clamped to >= 1e-6)
    centroid: torch.Tensor  # [F, 2] (x, y) centroid of the coverage, px


def _segment(video: torch.Tensor) -> _Segmentation:
    """The object segmentation shared by :func:`identify` and the object measures (:func:`object_track`).

    The blob is every pixel of the dominant object colour (pixels within ``OBJECT_DISTANCE``
    of any COLOUR_RGB, labelled by the nearest); its colour is the nearest COLOUR_RGB of its
    mean. The soft coverage m of each pixel of the blob grown by one pixel is its projection
    onto the segment from the object colour to the mean colour outside (pixel = m * object +
    (1 - m) * background), so anti-aliased edges count by how much of the pixel they cover.
    """
    _, _, h, w = video.shape
    palette = _palette(video.device)
    dist = (video[:, None] - palette[None, :, :, None, None]).norm(dim=2)  # [F, K, H, W]
    dmin, label = dist.min(dim=1)
    close = dmin < OBJECT_DISTANCE
    counts = (F.one_hot(label, len(COLOURS)).permute(0, 3, 1, 2) * close[:, None]).flatten(2).sum(2)  # [F, K]
    blob = close & (label == counts.argmax(1)[:, None, None])
    count = blob.flatten(1).sum(1)
    mean = (video * blob[:, None]).flatten(2).sum(2) / count.clamp_min(1)[:, None]
    colour = (mean[:, None] - palette[None]).norm(dim=2).argmin(1)
    region = _dilate(blob)
    outside = (~region).float()[:, None]
    back = (video * outside).flatten(2).sum(2) / outside.flatten(2).sum(2).clamp_min(1)  # [F, 3]
    obj = palette[colour]
    axis = back - obj
    m = 1 - ((video - obj[:, :, None, None]) * axis[:, :, None, None]).sum(1) / (axis * axis).sum(1).clamp_min(1e-6)[:, None, None]
    m = m.clamp(0, 1) * region  # [F, H, W]
    area = m.flatten(1).sum(1).clamp_min(1e-6)
    ys = torch.arange(h, device=video.device, dtype=torch.float32).view(1, h, 1) + 0.5
    xs = torch.arange(w, device=video.device, dtype=torch.float32).view(1, 1, w) + 0.5
    centroid = torch.stack([(m * xs).flatten(1).sum(1) / area, (m * ys).flatten(1).sum(1) / area], 1)
    return _Segmentation(count, colour, m, area, centroid)


def identify(video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame ``(shape [F], colour [F])`` indices of the detected object; -1 where none.

    The object is the blob of :func:`_segment` (the dominant object colour, with its soft
    coverage map). Its shape is the best-fitting template: the coverage map is compared, in
    L1 per unit area, with each shape drawn at the map's area and centroid; the smallest error
    wins. (Bounding-box fill ratios misclassify pixelated r = 4 circles; the template fit had no
    error on 43,200 ground-truth frames.)
    """
    video = _check_video(video, min_frames=1)
    _, _, h, w = video.shape
    seg = _segment(video)
    m, area = seg.coverage, seg.area
    mx, my = seg.centroid[:, 0], seg.centroid[:, 1]
    ys = torch.arange(h, device=video.device, dtype=torch.float32).view(1, h, 1) + 0.5
    xs = torch.arange(w, device=video.device, dtype=torch.float32).view(1, 1, w) + 0.5
    errors = []
    for name in SHAPES:  # each template fills [-r, r]^2 with area _SHAPE_AREA * r^2; the triangle's centroid is r/3 low
        r = torch.sqrt(area / _SHAPE_AREA[name])
        cy = my - r / 3 if name == "triangle" else my
        template = (0.5 - shape_sdf(name, xs - mx.view(-1, 1, 1), ys - cy.view(-1, 1, 1), r.view(-1, 1, 1))).clamp(0, 1)
        errors.append((template - m).abs().flatten(1).sum(1) / area)
    shape = torch.stack(errors, 1).argmin(1)
    none = seg.count == 0
    return shape.masked_fill(none, -1), seg.colour.masked_fill(none, -1)


def _vbench_similarity(desc: torch.Tensor) -> float:
    """VBench: mean over t >= 1 of (max(0, cos(d_t, d_0)) + max(0, cos(d_t, d_{t-1}))) / 2; ``desc [F, D]``."""
    d = F.normalize(desc, dim=1, eps=1e-8)  # zero descriptors stay zero (similarity 0)
    first = (d[1:] * d[:1]).sum(1).clamp_min(0)
    prev = (d[1:] * d[:-1]).sum(1).clamp_min(0)
    return float(((first + prev) / 2).mean().clamp(0, 1))  # clamp: rounding can give 1 + 1e-7


def _subject_descriptor(video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[F, 11]``: mean colour and its complement, fill ratio, size, spreads and y-skewness of the mask."""
    n, _, h, w = video.shape
    m = mask.float()
    area = m.flatten(1).sum(1)
    a = area.clamp_min(1)
    mean = (video * m[:, None]).flatten(2).sum(2) / a[:, None]
    ys = torch.arange(h, device=video.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=video.device, dtype=torch.float32).view(1, 1, w)
    mx, my = (m * xs).flatten(1).sum(1) / a, (m * ys).flatten(1).sum(1) / a
    vx = (m * (xs - mx.view(-1, 1, 1)) ** 2).flatten(1).sum(1) / a
    dy = ys - my.view(-1, 1, 1)
    vy = (m * dy**2).flatten(1).sum(1) / a
    skew = (m * dy**3).flatten(1).sum(1) / a / vy.clamp_min(1e-6) ** 1.5
    rows, cols = mask.any(2).sum(1), mask.any(1).sum(1)
    fill = area / (rows * cols).clamp_min(1)
    r_eq = torch.sqrt(a / math.pi)
    desc = torch.cat([mean, 1 - mean, torch.stack([fill, r_eq / (0.25 * w), vx.sqrt() / r_eq, vy.sqrt() / r_eq, skew], 1)], 1)
    return torch.where((area > 0)[:, None], desc, torch.zeros_like(desc))


def subject_consistency(video: torch.Tensor, spec: ClipSpec) -> float:
    """VBench subject consistency of the object found by :func:`detect_object`; ``video [F, 3, H, W]``."""
    video = _check_video(video)
    return _vbench_similarity(_subject_descriptor(video, detect_object(video, spec.colour)))


def background_consistency(video: torch.Tensor, spec: ClipSpec) -> float:
    """VBench background consistency: the frame outside the (dilated) object mask pooled to 8 x 8.

    The descriptor is the pooled colour and its complement (``[c, 1 - c]``), so a uniform
    brightness change lowers the cosine similarity. Blocks wholly covered by the object take
    the frame's mean background colour.
    """
    video = _check_video(video)
    keep = (~_dilate(detect_object(video, spec.colour))).float()[:, None]  # [F, 1, H, W]
    mean = (video * keep).flatten(2).sum(2) / keep.flatten(2).sum(2).clamp_min(1)  # [F, 3]
    weight = F.adaptive_avg_pool2d(keep, 8)
    pooled = F.adaptive_avg_pool2d(video * keep, 8) / weight.clamp_min(1e-6)
    pooled = torch.where(weight > 0, pooled, mean[:, :, None, None])
    return _vbench_similarity(torch.cat([pooled, 1 - pooled], 1).flatten(1))


def motion_smoothness(video: torch.Tensor, spec: ClipSpec | None = None) -> float:
    """``1 - mean |f_t - (f_{t-1} + f_{t+1}) / 2|`` over middle frames t (pixel L1, values in [0, 1]).

    ``spec`` is unused (kept for a uniform metric signature). Needs >= 3 frames.
    """
    video = _check_video(video, min_frames=3)
    return float(1 - (video[1:-1] - (video[:-2] + video[2:]) / 2).abs().mean())


def temporal_flicker(video: torch.Tensor, spec: ClipSpec) -> float:
    """``1 - mean |f_{t+1} - f_t|`` over static pixels: outside the dilated object mask in both frames.

    Only meaningful for ``spec.pan == 0``: a camera pan moves the background texture, which counts
    as change here. Returns 1.0 when no pixel is static in any pair.
    """
    video = _check_video(video)
    moving = _dilate(detect_object(video, spec.colour))
    static = (~(moving[1:] | moving[:-1])).float()  # [F-1, H, W]
    change = (video[1:] - video[:-1]).abs().mean(1)  # [F-1, H, W]
    return float(1 - (change * static).sum() / static.sum().clamp_min(1))


def identity_accuracy(video: torch.Tensor, spec: ClipSpec) -> float:
    """Fraction of frames whose detected object (:func:`identify`) has ``spec``'s colour and shape."""
    shape, colour = identify(_check_video(video, min_frames=1))
    hit = (shape == SHAPES.index(spec.shape)) & (colour == COLOURS.index(spec.colour))
    return float(hit.float().mean())


def switch_error(video: torch.Tensor, specs_per_segment: Sequence[ClipSpec], starts: Sequence[int],
                 tolerance: int = 1, hold: int = 1) -> dict[str, list]:
    """Per switch k >= 1: the first frame showing segment k's (shape, colour) minus ``starts[k]``.

    Args:
        video: ``[F, 3, H, W]``; ``starts`` are frame indices of this video (``starts[0] == 0``).
        specs_per_segment: one ClipSpec per segment; consecutive segments must differ in shape or colour.
        tolerance: frames of |error| that count as on time.
        hold: frames the new identity must persist to count (1 = the first matching frame).
    Returns:
        a JSON-ready dict of lists, one entry per switch: ``scheduled`` (``starts[k]``),
        ``detected`` (first frame showing the new identity, searched from ``starts[k-1]`` to the
        end of segment k, so an early switch gives a negative error; None if never), ``errors``
        (detected - scheduled in frames; None if never) and ``within`` (|error| <= tolerance).
    """
    video = _check_video(video, min_frames=1)
    starts, specs = [int(s) for s in starts], list(specs_per_segment)
    n = video.shape[0]
    if len(specs) != len(starts) or not starts or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])) or starts[-1] >= n:
        raise MigaValueError(bad_value("starts", starts, f"one per spec ({len(specs)}), strictly increasing from 0 and < {n} frames",
                                       "pass the schedule used to render or generate the video"))
    if tolerance < 0 or hold < 1:
        raise MigaValueError(bad_value("tolerance/hold", (tolerance, hold), "tolerance >= 0 and hold >= 1", "use tolerance=1, hold=1"))
    ident = [(SHAPES.index(s.shape), COLOURS.index(s.colour)) for s in specs]
    for k in range(1, len(specs)):
        if ident[k] == ident[k - 1]:
            raise MigaValueError(bad_value(f"specs_per_segment[{k}]", specs[k].prompt(), "a different shape or colour from the segment before",
                                           "merge segments that show the same object"))
    shape, colour = identify(video)
    out: dict[str, list] = {"scheduled": starts[1:], "detected": [], "errors": [], "within": []}
    for k in range(1, len(specs)):
        end = starts[k + 1] if k + 1 < len(starts) else n
        match = ((shape == ident[k][0]) & (colour == ident[k][1])).tolist()
        found = next((t for t in range(starts[k - 1], end - hold + 1) if all(match[t:t + hold])), None)
        error = None if found is None else found - starts[k]
        out["detected"].append(found)
        out["errors"].append(error)
        out["within"].append(error is not None and abs(error) <= tolerance)
    return out


class ObjectTrack(NamedTuple):
    """The object frame by frame, as :func:`object_track` finds it (px of the analysed frame)."""

    present: torch.Tensor  # [F] bool: the object is there
    area: torch.Tensor  # [F] soft-coverage area, px; 0 where absent
    centroid: torch.Tensor  # [F, 2] (x, y) centroid, px; NaN where absent


def object_track(video: torch.Tensor) -> ObjectTrack:
    """Presence, area and centroid of the object in each frame of ``video [F, 3, H, W]``.

    The object is the blob of :func:`identify`'s segmentation (pixels of the dominant object
    colour, whatever colour it is: a wrong colour is identity accuracy's business, not a blink).
    It is present when the blob has at least ``MIN_OBJECT_PIXELS`` pixels (scaled by
    ``(W / WORLD_SIZE)^2``); its area is the sum of the soft coverage (anti-aliased edges count
    by their coverage) and its centroid that of the coverage. Source: issue 9 ("metrics that see
    what a viewer sees").

    Raises:
        MigaValueError: ``video`` not a finite ``[F >= 1, 3, H, W]`` tensor.
    """
    video = _check_video(video, min_frames=1)
    seg = _segment(video)
    scale = video.shape[-1] / WORLD_SIZE
    present = seg.count >= MIN_OBJECT_PIXELS * scale**2
    area = torch.where(present, seg.area, torch.zeros_like(seg.area))
    centroid = torch.where(present[:, None], seg.centroid, torch.full_like(seg.centroid, math.nan))
    return ObjectTrack(present, area, centroid)


def _absent_runs(present: list[bool]) -> list[tuple[int, int]]:
    """``(first, last)`` frames of each maximal run of absent frames with a present frame on both sides."""
    runs, start = [], None
    for t, here in enumerate(present):
        if not here and start is None:
            start = t
        elif here and start is not None:
            if start > 0:
                runs.append((start, t - 1))
            start = None
    return runs


def presence(video: torch.Tensor, spec: ClipSpec | None = None) -> float:
    """Fraction of the frames of ``video [F, 3, H, W]`` in which the object is present (:func:`object_track`).

    ``spec`` is unused (the object counts in any colour). 1.0 for a video that always shows it.
    """
    return _presence(object_track(video))


def _presence(track: ObjectTrack) -> float:
    return float(track.present.double().mean())


def blink_count(video: torch.Tensor, spec: ClipSpec | None = None) -> int:
    """Times the object vanishes and comes back: maximal runs of absent frames with a present frame on both sides.

    A run at the start (the object appears late) or at the end (it leaves for good) is not a
    blink; :func:`presence` counts those frames. ``spec`` is unused. 0 is best.
    """
    return _blinks(object_track(video))


def _blinks(track: ObjectTrack) -> int:
    return len(_absent_runs(track.present.tolist()))


def jump_count(video: torch.Tensor, spec: ClipSpec | None = None, threshold: float = JUMP_PX) -> int:
    """Times the object's centroid jumps: consecutive present frames ``s < t`` with a displacement
    above ``threshold + MAX_SPEED * (t - s - 1)`` (world px, scaled by ``W / WORLD_SIZE``).

    Adjacent frames (``t = s + 1``) are held to ``threshold``; across a blink of k absent frames
    the object may also travel k frames at the world's top speed, so reappearing elsewhere counts
    as a jump while reappearing where it would have moved to does not. ``threshold`` defaults to
    ``JUMP_PX`` (see there for why). ``spec`` is unused. 0 is best.

    Raises:
        MigaValueError: ``threshold`` not > 0.
    """
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise MigaValueError(bad_value("threshold", threshold, "a number of px > 0", f"use the default JUMP_PX = {JUMP_PX}"))
    return _jumps(object_track(video), video.shape[-1] / WORLD_SIZE, threshold)


def _jumps(track: ObjectTrack, scale: float, threshold: float = JUMP_PX) -> int:
    frames = track.present.nonzero()[:, 0]
    if frames.numel() < 2:
        return 0
    step = (track.centroid[frames[1:]] - track.centroid[frames[:-1]]).norm(dim=1)
    allowed = (threshold + MAX_SPEED * (frames[1:] - frames[:-1] - 1)) * scale
    return int((step > allowed).sum())


def size_stability(video: torch.Tensor, spec: ClipSpec | None = None) -> float:
    """``max(0, 1 - cv)`` with cv the coefficient of variation (population std / mean) of the object's
    area over the frames where it is present (:func:`object_track`).

    1.0: constant size (a rendered object, up to pixelation); 0.9: the area's std is 10% of its
    mean; 0 for cv >= 1 and for a video without the object. ``spec`` is unused (the measure is
    relative, so it needs no nominal area).
    """
    return _size_stability(object_track(video))


def _size_stability(track: ObjectTrack) -> float:
    area = track.area[track.present].double()
    if area.numel() == 0:
        return 0.0
    cv = float(area.std(unbiased=False) / area.mean())
    return max(0.0, 1.0 - cv)


_METRICS = {
    "subject_consistency": subject_consistency,
    "background_consistency": background_consistency,
    "motion_smoothness": motion_smoothness,
    "temporal_flicker": temporal_flicker,
    "identity_accuracy": identity_accuracy,
    "presence": presence,
    "blink_count": blink_count,
    "jump_count": jump_count,
    "size_stability": size_stability,
}
OBJECT_METRICS = ("presence", "blink_count", "jump_count", "size_stability")  # colour-blind: one value per whole video
COUNT_METRICS = ("blink_count", "jump_count")  # counts of events, 0 is best; every other metric is in [0, 1], higher is better


def evaluate(video: torch.Tensor, spec: ClipSpec) -> dict[str, float]:
    """All single-prompt metrics of ``video [F >= 3, 3, H, W]`` asked for by ``spec``."""
    video = _check_video(video, min_frames=3)
    out = {name: fn(video, spec) for name, fn in _METRICS.items() if name not in OBJECT_METRICS}
    out.update(object_measures(video))
    return out


def object_measures(video: torch.Tensor) -> dict[str, float]:
    """``presence``, ``blink_count``, ``jump_count`` and ``size_stability`` of ``video [F, 3, H, W]`` from one
    :func:`object_track` (what the four functions of those names return). Colour-blind, so one call covers a
    whole multi-prompt video."""
    video = _check_video(video, min_frames=1)
    track = object_track(video)
    return {"presence": _presence(track), "blink_count": _blinks(track),
            "jump_count": _jumps(track, video.shape[-1] / WORLD_SIZE), "size_stability": _size_stability(track)}


def evaluate_batch(videos: torch.Tensor, specs: Sequence[ClipSpec]) -> dict[str, dict[str, float]]:
    """``{"mean": {metric: value}, "std": {metric: value}}`` over ``videos [B, F, 3, H, W]`` (population std)."""
    specs = list(specs)
    if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or videos.shape[0] != len(specs):
        shape = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
        raise MigaValueError(bad_value("videos", shape, f"a tensor [B, F, 3, H, W] with B = len(specs) = {len(specs)}",
                                       "pass one spec per video"))
    rows = [evaluate(v, s) for v, s in zip(videos, specs)]
    table = {name: torch.tensor([r[name] for r in rows], dtype=torch.float64) for name in _METRICS}
    return {"mean": {k: float(v.mean()) for k, v in table.items()},
            "std": {k: float(v.std(unbiased=False)) for k, v in table.items()}}
