"""The two contracts a host implements: the denoiser and the progress callback."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
    """What the callback gets after each window (one region of one pass, ``window_batch`` per model call).

    Attributes:
        stage: ``"initial_clip"``, ``"init"``, ``"zigzag"``, ``"reflection"`` or ``"unified"``.
        window: planned windows done so far in this run (1-based); self-reflection's search windows
            are not counted here, so the value never goes back and reaches ``total_windows`` at the end.
        total_windows: planned windows of the run, fixed when it starts (the plan's count).
        frames_done: output latents that left the stage-1 queue (stage 2: all of them).
        num_frames: N, latents of the output video.
        denoised: ``[B, C, r, H, W]`` x0 prediction of the window's updated region (for previews).
        indices: absolute latent indices of that region.
        levels: their levels before this step (each goes one level down).
        model_calls: denoiser invocations so far, search included (a call holds up to ``window_batch`` windows).
        search_windows: windows spent on self-reflection's candidate search so far [D5].
        eta_seconds: estimated seconds left (None before the first window): remaining planned windows plus the
            self-reflection search windows expected (:meth:`Progress.expected_search_windows`), at the seconds per
            window seen so far.
    """

    stage: str
    window: int
    total_windows: int
    frames_done: int
    num_frames: int
    denoised: torch.Tensor
    indices: tuple[int, ...]
    levels: tuple[int, ...] = ()
    model_calls: int = 0
    search_windows: int = 0
    eta_seconds: float | None = None


Callback = Callable[[WindowInfo], None]


class Progress:
    """Counts the windows of one run against its plan and forwards them to the callback.

    ``planned`` maps each stage to its planned windows (:attr:`miga_core.plan.RunPlan.calls`);
    the total is fixed here and never changes. Search windows (self-reflection) are counted
    apart and do not advance ``window``. ``checks`` self-reflection checks lie ahead, each costing
    ``search_cost`` windows when it fires (the plan's ``num_checks`` and ``search_windows``).
    A callback may raise (e.g. the host's interrupt) to cancel: the exception propagates and
    nothing the caller passed in has been modified.

    Raises:
        RuntimeError: (from :meth:`report`) more planned windows ran than the plan holds (a bug).
    """

    def __init__(self, planned: Mapping[str, int], callback: Callback | None = None, *, checks: int = 0, search_cost: int = 0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.planned = dict(planned)
        self.total_windows = sum(self.planned.values())
        self.window = 0
        self.search_windows = 0
        self.model_calls = 0
        self.checks, self.search_cost = checks, search_cost
        self.checks_done = self.searches = 0
        self.callback = callback
        self.clock = clock
        self.start = clock()

    def count_call(self) -> None:
        """Count one denoiser invocation."""
        self.model_calls += 1

    def count_check(self, searched: bool) -> None:
        """Count one self-reflection check, and whether it searched [D5]."""
        self.checks_done += 1
        self.searches += int(searched)

    def expected_search_windows(self) -> float:
        """Search windows still to come: checks left x the chance a check searches x its cost.

        The chance is Laplace's rule of succession over the checks so far, ``(searches + 1) / (checks + 2)``:
        one half before any check (the stated budget: half the checks search), then the run's own rate.
        """
        left = max(0, self.checks - self.checks_done)
        return left * (self.searches + 1) / (self.checks_done + 2) * self.search_cost

    def eta_seconds(self) -> float | None:
        """Seconds left: planned windows left plus :meth:`expected_search_windows`, at the seconds per window so far."""
        spent = self.window + self.search_windows
        if not spent:
            return None
        per_window = (self.clock() - self.start) / spent
        return per_window * (self.total_windows - self.window + self.expected_search_windows())

    def report(self, stage: str, frames_done: int, num_frames: int, denoised: torch.Tensor, indices: tuple[int, ...],
               levels: tuple[int, ...] = (), *, search: bool = False) -> None:
        """Count one window (a search window if ``search``) and call the callback with its :class:`WindowInfo`."""
        if search:
            self.search_windows += 1
        else:
            self.window += 1
            if self.window > self.total_windows:
                raise RuntimeError(f"miga_core bug: window {self.window} of a run planned for {self.total_windows} "
                                   f"({self.planned}) in stage {stage!r}; please report it with the options used.")
        if self.callback is not None:
            self.callback(WindowInfo(stage, self.window, self.total_windows, frames_done, num_frames, denoised, indices, levels,
                                     self.model_calls, self.search_windows, self.eta_seconds()))
