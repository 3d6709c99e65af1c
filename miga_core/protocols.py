"""The two contracts a host implements: the denoiser and the progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

__all__ = ["Denoiser", "WindowInfo", "Callback", "Progress"]


class Denoiser(Protocol):
    """``D(x, sigma, prompt) -> denoised``, one x0 prediction per latent frame.

    Args:
        x: ``[B, C, F, H, W]`` latents of B windows (stacked along the batch).
        sigma: ``[B, F]`` noise of each frame, in the host's sigma units (may be 0 for a
            clean context frame).
        prompt: ``[B, P]`` convex weights over the P prompts of the schedule; one-hot on the
            window's prompt except inside a blended boundary [D6].
    Returns:
        ``[B, C, F, H, W]`` x0 predictions. CFG, if any, happens inside.
    """

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class WindowInfo:
    """What the callback gets after each model call.

    Attributes:
        stage: ``"initial_clip"``, ``"init"``, ``"zigzag"``, ``"reflection"`` or ``"unified"``.
        window: model calls done so far in this run (1-based).
        total_windows: calls planned for the run (grows when self-reflection searches).
        frames_done: output latents that left the stage-1 queue (stage 2: all of them).
        num_frames: N, latents of the output video.
        denoised: ``[B, C, r, H, W]`` x0 prediction of the window's updated region (for previews).
        indices: absolute latent indices of that region.
        levels: their levels before this step (each goes one level down).
    """

    stage: str
    window: int
    total_windows: int
    frames_done: int
    num_frames: int
    denoised: torch.Tensor
    indices: tuple[int, ...]
    levels: tuple[int, ...] = ()


Callback = Callable[[WindowInfo], None]


class Progress:
    """Counts model calls across the stages of one run and forwards them to the callback.

    A callback may raise (e.g. the host's interrupt) to cancel: the exception propagates
    and nothing the caller passed in has been modified.
    """

    def __init__(self, total_windows: int, callback: Callback | None = None) -> None:
        self.total_windows = total_windows
        self.window = 0
        self.callback = callback

    def add_planned(self, n: int) -> None:
        """Announce ``n`` more calls (self-reflection's search)."""
        self.total_windows += n

    def report(self, stage: str, frames_done: int, num_frames: int, denoised: torch.Tensor, indices: tuple[int, ...],
               levels: tuple[int, ...] = ()) -> None:
        """Count one window and call the callback with its :class:`WindowInfo`."""
        self.window += 1
        self.total_windows = max(self.total_windows, self.window)
        if self.callback is not None:
            self.callback(WindowInfo(stage, self.window, self.total_windows, frames_done, num_frames, denoised, indices, levels))
