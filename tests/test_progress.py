"""The ETA of :class:`miga_core.protocols.Progress`: median window time, the search prior and its update [D5]."""

import pytest
import torch

from miga_core.protocols import Progress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _report(progress: Progress, clock: Clock, seconds: float, *, batch: int = 1, search: bool = False) -> None:
    clock.t += seconds
    progress.report("zigzag", 0, 10, torch.zeros(batch, 1, 1, 1, 1), (0,), (1,), search=search)


def test_eta_uses_the_recent_half_of_the_windows_so_a_slow_first_call_drops_out():
    clock = Clock()
    progress = Progress({"init": 6, "zigzag": 6}, clock=clock)
    _report(progress, clock, 5.0)  # a slow first window (warm-up)
    assert progress.eta_seconds() is None  # no rate from one window
    for seconds in (1.0, 1.0, 3.0):  # then the steady rate, and a pass's own work landing on one window
        _report(progress, clock, seconds)
    assert progress.seconds_per_window() == pytest.approx(2.0)  # the last two of four windows: (1 + 3) / 2
    assert progress.eta_seconds() == pytest.approx(2.0 * 8)  # 12 planned - 4 done, no checks
    for seconds in (4.0, 4.0, 4.0, 4.0):  # the windows got slower (a later stage): the recent half follows
        _report(progress, clock, seconds)
    assert progress.seconds_per_window() == pytest.approx(4.0)


def test_search_windows_cost_time_but_do_not_advance_the_bar():
    clock = Clock()
    progress = Progress({"zigzag": 4}, clock=clock)
    _report(progress, clock, 2.0)
    _report(progress, clock, 2.0, search=True)
    _report(progress, clock, 2.0, search=True)
    assert (progress.window, progress.search_windows) == (1, 2)
    assert progress.eta_seconds() == pytest.approx(2.0 * 3)


def test_search_chance_starts_at_the_prior_and_grows_with_the_batch():
    progress = Progress({"zigzag": 1}, checks=10, search_cost=6)
    assert progress.search_chance() == pytest.approx(0.25)
    assert progress.expected_search_windows() == pytest.approx(9 * 0.25 * 6)  # the first check cannot search
    progress.batch = 16  # any of 16 videos triggering makes the check search
    assert progress.search_chance() == pytest.approx(1 - 0.75 ** 16)


def test_the_runs_own_checks_outweigh_the_prior():
    progress = Progress({"zigzag": 1}, checks=50, search_cost=6)
    progress.count_check(0, 0)  # the first check: nothing to compare with
    for _ in range(20):
        progress.count_check(1, 0)
    assert progress.search_chance() == pytest.approx(1 / 24)  # (0 + 1) / (20 + 4)
    assert progress.expected_search_windows() == pytest.approx(29 * 6 / 24)
    for _ in range(20):
        progress.count_check(1, 1)
    assert progress.videos_triggered == 20 and progress.search_chance() == pytest.approx(21 / 44)
