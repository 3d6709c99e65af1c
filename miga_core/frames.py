"""Pixel frames <-> latent frames: the one place this rule lives (docs/algorithm.md "Terms").

``"wan21"``: Wan2.1's causal VAE keeps pixel frame 0 alone in latent 0 and packs 4 frames in
every later latent, so a video has ``4n+1`` pixel frames and ``n+1`` latents. ``"vc2"``:
VideoCrafter2 has one latent per frame. The web extension keeps a JavaScript twin of
:func:`num_latent_frames` (``web/miga_frame_rule.js``); a test checks both agree.
"""

from __future__ import annotations

from typing import Literal, get_args

from .errors import InvalidConfigError, bad_value

__all__ = ["LatentRule", "pixel_to_latent", "num_latent_frames", "num_pixel_frames"]

LatentRule = Literal["wan21", "vc2"]

# latents per pixel frame after the first, and pixel frames alone in latent 0
_PACKING: dict[str, int] = {"wan21": 4, "vc2": 1}


def _packing(rule: str) -> int:
    if rule not in _PACKING:
        raise InvalidConfigError(bad_value("latent_rule", rule, f"one of {get_args(LatentRule)}", "pick the model's rule"))
    return _PACKING[rule]


def pixel_to_latent(frame: int, rule: LatentRule) -> int:
    """The latent frame that holds pixel frame ``frame`` (0-based).

    ``"wan21"``: latent 0 holds frame 0 alone, latent j >= 1 frames ``4j-3 .. 4j``, so
    ``(frame - 1) // 4 + 1`` (frame 0 -> 0, 1..4 -> 1, 120 -> 30). ``"vc2"``: ``frame``.
    """
    k = _packing(rule)
    return frame if k == 1 else (frame - 1) // k + 1


def num_latent_frames(num_pixel_frames: object, rule: LatentRule) -> int:
    """Latent frames of a video of ``num_pixel_frames`` frames: ``(f - 1) // 4 + 1`` for Wan2.1 (4n+1 frames).

    Raises:
        InvalidConfigError: not an integer >= 1, or (Wan2.1) not of the form 4n+1; the message names
            the two nearest valid counts.
    """
    k = _packing(rule)
    if isinstance(num_pixel_frames, bool) or not isinstance(num_pixel_frames, int) or num_pixel_frames < 1:
        raise InvalidConfigError(bad_value("num_pixel_frames", num_pixel_frames, "an integer >= 1",
                                           "ask for at least one frame" + (" (4n+1 for Wan2.1, e.g. 81)" if k > 1 else "")))
    if (num_pixel_frames - 1) % k:
        lower = (num_pixel_frames - 1) // k * k + 1
        raise InvalidConfigError(bad_value("num_pixel_frames", num_pixel_frames,
                                           f"{k}n+1 video frames (the VAE packs {k} frames per latent after the first)",
                                           f"use {lower} or {lower + k}"))
    return (num_pixel_frames - 1) // k + 1


def num_pixel_frames(num_latents: int, rule: LatentRule) -> int:
    """Pixel frames decoded from ``num_latents`` latent frames (inverse of :func:`num_latent_frames`)."""
    return (num_latents - 1) * _packing(rule) + 1
