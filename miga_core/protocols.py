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
            window's prompt except inside a blended boundary [D6]. On ``x``'s device, or on the host (CPU) for a
            denoiser whose ``prompt_on_host`` attribute is True: one that reads the weights in Python (to pick a
            conditioning) then never waits for the device, so the executor's pipelined calls stay ahead.
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
        eta_seconds: estimated seconds left (None at the first window): remaining planned windows plus the
            self-reflection search windows expected (:meth:`Progress.expected_search_windows`), at the mean seconds
            per window of the recent half of the windows (:meth:`Progress.seconds_per_window`).
        reflection_checks / reflection_corrections: self-reflection's checks so far and the checks whose search replaced
            the tail, per video (the report's ``n_all`` and ``n_corr``) [D5].
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
    reflection_checks: int = 0
    reflection_corrections: int = 0


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

    #: Prior chance that one video's self-reflection check searches, before the run has shown its own rate, and the
    #: weight of that prior in checks (a Beta(1, 3) prior). From the toy benchmark at the preset threshold (n_eval / n_all
    #: 0.25 and 0.28 in ``benchmarks/results/toy_quality_cuda.json``); the run's own checks outweigh it after a few.
    SEARCH_PRIOR, SEARCH_PRIOR_WEIGHT = 0.25, 4.0

    def __init__(self, planned: Mapping[str, int], callback: Callback | None = None, *, checks: int = 0, search_cost: int = 0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.planned = dict(planned)
        self.total_windows = sum(self.planned.values())
        self.window = 0
        self.search_windows = 0
        self.model_calls = 0
        self.checks, self.search_cost = checks, search_cost
        self.checks_done = 0
        self.videos_checked = self.videos_triggered = 0
        self.reflection_checks = self.reflection_corrections = 0
        self.batch = 1
        self.callback = callback
        self.clock = clock
        self.start = clock()
        self.stamps: list[float] = []  # clock after each window (planned and search), for the rate of the recent half

    #: The counters a checkpoint carries (:meth:`counters`, :meth:`restore`); the clock stamps are not among them.
    COUNTERS = ("total_windows", "window", "search_windows", "model_calls", "checks_done", "videos_checked",
                "videos_triggered", "batch")

    def counters(self) -> dict[str, int]:
        """The counts so far (:attr:`COUNTERS`), as plain ints: what a checkpoint saves so a resumed bar continues."""
        return {k: int(getattr(self, k)) for k in self.COUNTERS}

    def restore(self, counters: Mapping[str, int]) -> None:
        """Continue from :meth:`counters` of an interrupted run of the same plan: the next window is ``window + 1``.

        The ETA starts anew (its clock stamps are not saved; None until the second window after the resume).

        Raises:
            ValueError: ``counters`` lacks a key or is for another total (a checkpoint of another plan; a bug here).
        """
        missing = [k for k in self.COUNTERS if k not in counters]
        if missing or int(counters["total_windows"]) != self.total_windows:
            raise ValueError(f"progress counters {dict(counters)} do not fit this run (total {self.total_windows} windows, "
                             f"keys {self.COUNTERS}; missing {missing}). Fix: resume with the plan the counters were saved with.")
        for k in self.COUNTERS[1:]:
            setattr(self, k, int(counters[k]))

    def count_call(self) -> None:
        """Count one denoiser invocation."""
        self.model_calls += 1

    def count_check(self, checked: int, triggered: int) -> None:
        """Count one self-reflection check [D5]: ``checked`` videos were compared with their previous score (0 at the
        first check, which has none), ``triggered`` of them crossed the threshold (the check searches if any did)."""
        self.checks_done += 1
        self.videos_checked += checked
        self.videos_triggered += triggered

    def note_reflection(self, checks: int, corrections: int) -> None:
        """Self-reflection's counters so far (``n_all``, ``n_corr``), passed on in every later :class:`WindowInfo`."""
        self.reflection_checks, self.reflection_corrections = checks, corrections

    def search_chance(self) -> float:
        """Chance that a coming check searches: ``1 - (1 - p)^B`` for B videos, each triggering with
        ``p = (triggered + 4 * 0.25) / (checked + 4)`` (the :attr:`SEARCH_PRIOR` updated by the run's own checks)."""
        a = self.SEARCH_PRIOR * self.SEARCH_PRIOR_WEIGHT
        p = (self.videos_triggered + a) / (self.videos_checked + self.SEARCH_PRIOR_WEIGHT)
        return 1.0 - (1.0 - p) ** self.batch

    def expected_search_windows(self) -> float:
        """Search windows still to come: checks left that can search x :meth:`search_chance` x the windows of a search.

        The run's first check cannot search (it has no previous score to compare with)."""
        left = max(0, self.checks - max(self.checks_done, 1))
        return left * self.search_chance() * self.search_cost

    def seconds_per_window(self) -> float | None:
        """Mean duration of the most recent half of the windows so far (None before the second window).

        The first window (model load, first call of each input shape, compilation) leaves the average at the second;
        the recent half follows the run when a stage's windows cost more or less than the last stage's; a mean, not a
        median, because a pass's own work (fresh noise, dequeue, the self-reflection score) lands on one of its windows."""
        n = len(self.stamps)
        if n < 2:
            return None
        half = n // 2
        return (self.stamps[-1] - self.stamps[half - 1]) / (n - half)

    def eta_seconds(self) -> float | None:
        """Seconds left: planned windows left plus :meth:`expected_search_windows`, at :meth:`seconds_per_window`."""
        per_window = self.seconds_per_window()
        if per_window is None:
            return None
        return per_window * (self.total_windows - self.window + self.expected_search_windows())

    def report(self, stage: str, frames_done: int, num_frames: int, denoised: torch.Tensor, indices: tuple[int, ...],
               levels: tuple[int, ...] = (), *, search: bool = False) -> None:
        """Count one window (a search window if ``search``) and call the callback with its :class:`WindowInfo`."""
        self.stamps.append(self.clock())
        self.batch = int(denoised.shape[0])
        if search:
            self.search_windows += 1
        else:
            self.window += 1
            if self.window > self.total_windows:
                raise RuntimeError(f"miga_core bug: window {self.window} of a run planned for {self.total_windows} "
                                   f"({self.planned}) in stage {stage!r}; please report it with the options used.")
        if self.callback is not None:
            self.callback(WindowInfo(stage, self.window, self.total_windows, frames_done, num_frames, denoised, indices, levels,
                                     self.model_calls, self.search_windows, self.eta_seconds(), self.reflection_checks,
                                     self.reflection_corrections))
