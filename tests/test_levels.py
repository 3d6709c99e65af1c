"""Level bookkeeping of the queue [D1, D4], checked with a recording wrapper around Phi."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

import miga_core
import miga_core.stages as stages
from miga_core import GuidanceOptions, MigaConfig, generate, plan_windows
from tests.helpers import ToyDenoiser, init_queue

SHAPE = (1, 2, 3, 3)


@pytest.fixture
def recorded_passes(monkeypatch):
    """Wrap Phi in the stages module; record every pass's queue before/after and its window count."""
    passes = []
    real = stages.queue_pass

    def recording(ctx, queue, history, *, num_guidance=0, frames_done=0):
        before = ctx.progress.window
        out = real(ctx, queue, history, num_guidance=num_guidance, frames_done=frames_done)
        passes.append({"stage": ctx.stage, "before": queue, "after": out, "windows": ctx.progress.window - before,
                       "stride": ctx.config.stride, "history": len(history)})
        return out

    monkeypatch.setattr(stages, "queue_pass", recording)
    return passes


CONFIGS = [
    # (window_length, zigzag_width, unified_steps, T, num_frames, num_guidance)
    (8, 2, 3, 16, 23, 0),
    (8, 4, 2, 14, 17, 2),
    (6, 3, 0, 12, 10, 1),
    (8, 1, 5, 16, 9, 0),
    (7, 3, 1, 12, 11, 0),  # zigzag_width does not divide window_length: a short initial group
]


@pytest.mark.parametrize("f0,lz,u,T,N,m", CONFIGS)
def test_every_latent_passes_every_level_once_one_level_per_pass(recorded_passes, f0, lz, u, T, N, m):
    cfg = MigaConfig(window_length=f0, zigzag_width=lz, unified_steps=u)
    sigmas = torch.linspace(1, 0, T + 1)
    result = generate(ToyDenoiser(), sigmas, N, cfg, latent_shape=SHAPE,
                      guidance=GuidanceOptions(m) if m else None)
    assert result.latents.shape == (1, 2, N, 3, 3)
    n_zig = math.ceil(f0 / lz)
    seen = defaultdict(list)  # absolute index -> levels it was stepped from, in order
    for p in recorded_passes:
        before, after = p["before"], p["after"]
        # each pass updates every queue latent exactly once, one level down
        assert after.index == before.index
        assert after.level == tuple(k - 1 for k in before.level)
        assert all(after.has_denoised)
        # and costs ceil(L / s) model calls
        assert p["windows"] == math.ceil(len(before) / p["stride"])
        if p["stage"] != "initial_clip":
            for i, k in zip(before.index, before.level):
                seen[i].append(k)
    for i in range(N):
        start = T - n_zig + i // lz if i < f0 else T  # initial clip latents are renoised by Alg. 4 [D4a]
        assert seen[i] == list(range(start, 0, -1)), f"latent {i}"


@pytest.mark.parametrize("f0,lz,u,T", [(8, 2, 3, 16), (8, 4, 2, 14), (6, 3, 0, 12), (16, 4, 9, 64), (21, 7, 9, 54)])
def test_queue_length_after_init_is_T_minus_u_groups(f0, lz, u, T):
    cfg = MigaConfig(window_length=f0, zigzag_width=lz, unified_steps=u)
    state = init_queue(ToyDenoiser(), torch.linspace(1, 0, T + 1), 5, cfg,
                             initial_clip=torch.zeros(1, 1, f0, 1, 1))
    assert len(state.queue) == (T - u) * lz
    assert state.queue.groups() == [(k, lz) for k in range(u + 1, T + 1)]


def test_initial_latents_use_the_floor_rule_not_the_papers_ceil():
    """Alg. 4 line 9 prints ceil((i-1)/L_zig); [D4a] uses floor(i/L_zig) (0-based) so groups are L_zig wide."""
    f0, lz, T, u = 8, 4, 10, 6  # T - n_zig - (u+1) = 1 init pass
    calls = []

    def denoiser(x, sigma, prompt):
        calls.append(sigma.clone())
        return torch.zeros_like(x)

    cfg = MigaConfig(window_length=f0, zigzag_width=lz, unified_steps=u, window_stride=4)
    init_queue(denoiser, torch.linspace(1, 0, T + 1), 4, cfg, initial_clip=torch.zeros(1, 1, f0, 1, 1))
    sig = torch.linspace(1, 0, T + 1)
    n_zig = 2
    floor_levels = [T - n_zig + i // lz for i in range(f0)]  # [8]*4 + [9]*4
    ceil_levels = [T - n_zig + math.ceil(i / lz) for i in range(f0)]  # the printed rule, 1-based i-1 -> i
    # the first init pass's first window is the 8 initial latents (lookahead from X[0])
    assert torch.equal(calls[0][0], sig[[T - k for k in floor_levels]])
    assert not torch.equal(calls[0][0], sig[[T - k for k in ceil_levels]])


def test_window_count_of_a_pass_is_ceil_L_over_s_and_regions_tile_the_queue():
    for h, L, f0, s, m, lz in [(0, 20, 8, 4, 0, 1), (12, 28, 21, 10, 4, 7), (6, 13, 8, 3, 2, 2), (0, 5, 8, 4, 0, 1)]:
        for update in ("lookahead", "former"):
            ws = plan_windows(h, L, f0, s, num_guidance=m, zigzag_width=lz, update=update)
            assert len(ws) == math.ceil(L / s)
            covered = [p for w in ws for p in range(*w.region)]
            assert covered == list(range(h, h + L))
            for w in ws:
                assert len(w.positions) <= f0
                assert len(w.positions) == min(f0, h + L) or w.num_guidance == 0 and len(w.positions) == min(f0, h + L)
                lo, hi = w.local
                assert lo <= w.region[0] and w.region[1] <= hi
                assert list(w.positions[w.num_guidance:]) == list(range(lo, hi))


def test_lookahead_puts_the_region_at_the_end_and_former_at_the_start():
    h, L, f0, s = 4, 16, 8, 4
    for w in plan_windows(h, L, f0, s, update="lookahead"):
        assert w.region[1] == w.local[1] or w.local[0] == 0
    for w in plan_windows(h, L, f0, s, update="former"):
        assert w.region[0] == w.local[0] or w.local[1] == h + L


def test_planned_window_total_matches_the_calls_made():
    cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=3)
    infos = []
    generate(ToyDenoiser(), torch.linspace(1, 0, 17), 21, cfg, latent_shape=SHAPE, callback=infos.append)
    assert [i.window for i in infos] == list(range(1, len(infos) + 1))
    assert {i.total_windows for i in infos} == {len(infos)}
    assert infos[-1].frames_done == 21 and infos[-1].num_frames == 21


def test_fifo_mode_discards_the_first_T_minus_f0_outputs_and_keeps_N():
    T, f0, N = 16, 8, 12
    cfg = MigaConfig(window_length=f0, zigzag_width=1, unified_steps=0, mode="fifo")
    state = init_queue(ToyDenoiser(), torch.linspace(1, 0, T + 1), N, cfg, latent_shape=SHAPE)
    assert state.queue.level == tuple(range(1, T + 1))
    assert state.queue.index == tuple(range(-(T - f0), f0))
    assert len(state.history) == f0 // 2 and set(state.history.level) == {1}
    out = miga_core.zigzag_stage(ToyDenoiser(), state)
    assert out.outputs.index == tuple(range(N)) and set(out.outputs.level) == {0}


@pytest.mark.parametrize("f0,lz,u,T,N,m", CONFIGS)
def test_history_never_exceeds_what_a_window_can_read(recorded_passes, f0, lz, u, T, N, m):
    """[D1]: history needed is f0 - m - s + m*L_zig at most; nothing else of the past is kept."""
    cfg = MigaConfig(window_length=f0, zigzag_width=lz, unified_steps=u)
    generate(ToyDenoiser(), torch.linspace(1, 0, T + 1), N, cfg, latent_shape=SHAPE, guidance=GuidanceOptions(m) if m else None)
    bound = miga_core.history_needed(f0, cfg.stride, m, lz)
    zigzag = [p["history"] for p in recorded_passes if p["stage"] == "zigzag"]
    assert zigzag and max(zigzag) == min(bound, N)


@pytest.mark.parametrize("mode", ["miga", "fifo"])
def test_each_composable_stage_reports_a_total_equal_to_its_own_calls(mode):
    """Hosts show one progress bar per node: each stage's planned total must be exact."""
    cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=3) if mode == "miga" else \
        MigaConfig(window_length=8, zigzag_width=1, unified_steps=0, mode="fifo")
    den, sig = ToyDenoiser(), torch.linspace(1, 0, 17)
    for stage in ("init", "zigzag", "unified"):
        infos = []
        if stage == "init":
            state = init_queue(den, sig, 15, cfg, latent_shape=SHAPE, callback=infos.append)
        elif stage == "zigzag":
            state = miga_core.zigzag_stage(den, state, callback=infos.append)
        else:
            state = miga_core.unified_stage(den, state, callback=infos.append)
        if infos:
            assert {i.total_windows for i in infos} == {len(infos)}, stage
    assert state.outputs.x.shape[2] == 15 and set(state.outputs.level) == {0}
