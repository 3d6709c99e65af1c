"""Long-range frame guidance [D3] and self-reflection [D5]."""

from __future__ import annotations

import math

import pytest
import torch

from miga_core import (
    GuidanceOptions,
    LatentRun,
    MigaConfig,
    PassContext,
    Progress,
    PromptSchedule,
    ReflectionOptions,
    consistency_score,
    generate,
    guidance_positions,
    history_needed,
    plan_windows,
    plan_run,
    reflect,
)
from miga_core.reflection import ReflectionStats
from tests.helpers import ToyDenoiser

# --- guidance ---------------------------------------------------------------------------------------


def test_guidance_positions_are_evenly_spaced_one_per_zigzag_group_nearest_included():
    assert guidance_positions(30, 4, 7) == (8, 15, 22, 29)
    assert guidance_positions(10, 1, 3) == (9,)
    assert guidance_positions(5, 2, 1) == (3, 4)
    assert guidance_positions(1, 2, 4) is None  # fewer than m candidates before the local part


@pytest.mark.parametrize("f0,s,m,lz,u,T", [(21, 10, 4, 7, 9, 54), (16, 8, 6, 4, 9, 64), (8, 3, 2, 2, 2, 12)])
def test_stage1_guidance_is_earlier_cleaner_and_never_inside_the_window(f0, s, m, lz, u, T):
    h = history_needed(f0, s, m, lz)
    levels = [u] * h + [k for k in range(u + 1, T + 1) for _ in range(lz)]  # X = C + Q in stage 1
    windows = plan_windows(h, len(levels) - h, f0, s, num_guidance=m, zigzag_width=lz)
    guided = [w for w in windows if w.num_guidance]
    assert len(guided) == len(windows)  # with full history every window is guided
    for w in guided:
        g, local = w.positions[: w.num_guidance], w.positions[w.num_guidance:]
        assert len(w.positions) == f0 and len(g) == m
        assert max(g) == local[0] - 1  # nearest included, strictly before the local part
        assert not set(g) & set(local)
        gaps = {b - a for a, b in zip(g, g[1:])}
        assert gaps <= {lz} or len(gaps) <= 2 and max(gaps) - min(gaps) <= 1  # evenly spaced
        assert max(levels[p] for p in g) <= min(levels[p] for p in local)  # cleaner


def test_windows_without_enough_earlier_latents_have_no_guidance_and_full_length():
    windows = plan_windows(0, 40, 8, 4, num_guidance=3, zigzag_width=2)
    first = windows[0]
    assert first.num_guidance == 0 and len(first.positions) == 8
    assert all(w.num_guidance == 3 for w in windows[2:])


def test_guidance_changes_stage_1_and_is_absent_from_the_unified_stage():
    cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=3)
    sig = torch.linspace(1, 0, 17)
    plain = generate(ToyDenoiser(), sig, 20, cfg, latent_shape=(1, 2, 3, 3))
    den = ToyDenoiser()
    infos = []
    guided = generate(den, sig, 20, cfg, latent_shape=(1, 2, 3, 3), guidance=GuidanceOptions(2), callback=infos.append)
    assert not torch.allclose(plain.latents, guided.latents)
    unified = [c for c, i in zip(den.calls, infos) if i.stage == "unified"]
    assert unified and all(torch.all(c["sigma"] == c["sigma"][:, :1]) for c in unified)  # one level per window


# --- the score --------------------------------------------------------------------------------------


def test_consistency_score_is_one_for_identical_maps_and_minus_one_for_opposite():
    p = torch.randn(1, 4, 1, 6, 6)
    ref = p.expand(1, 4, 8, 6, 6)
    assert consistency_score(ref, p.expand(1, 4, 4, 6, 6)) == pytest.approx(1.0, abs=1e-6)
    assert consistency_score(ref, -p.expand(1, 4, 4, 6, 6)) == pytest.approx(-1.0, abs=1e-6)
    assert consistency_score(ref, 3 * p.expand(1, 4, 4, 6, 6)) == pytest.approx(1.0, abs=1e-6)  # scale-free


def test_consistency_score_averages_channels_before_comparing_maps():
    """Eq. 5-6: mean over channels first, so maps that differ only in channel split still agree."""
    a = torch.zeros(1, 2, 1, 4, 4)
    a[:, 0] = torch.arange(16.0).view(4, 4)
    b = torch.zeros(1, 2, 1, 4, 4)
    b[:, 1] = torch.arange(16.0).view(4, 4)
    assert consistency_score(a, b) == pytest.approx(1.0, abs=1e-6)


# --- the check and the search -----------------------------------------------------------------------

T, F0, LZ, U = 20, 8, 2, 3
SIGMAS = torch.linspace(1, 0, T + 1)
CFG = MigaConfig(window_length=F0, zigzag_width=LZ, unified_steps=U)
OPTS = ReflectionOptions(threshold=0.01, num_candidates=3)
H, W = 8, 8
P = torch.randn(1, 1, 1, H, W, generator=torch.Generator().manual_seed(1)) * 3  # the reference pattern
Q = torch.randn(1, 1, 1, H, W, generator=torch.Generator().manual_seed(2)) * 3  # an unrelated one


def _queue(tail_pattern):
    """A stage-1 queue whose frames show P, except the tail (from the judge on) shows ``tail_pattern``."""
    plan = plan_run(CFG, T, 24, reflection=OPTS)  # it resolves the judge level and f_guid [D5]
    levels = [k for k in range(U + 1, T + 1) for _ in range(LZ)]
    j = levels.index(plan.judge_level)
    frames = [P if i < j else tail_pattern for i in range(len(levels))]
    x = torch.cat(frames, dim=2).expand(1, 4, -1, H, W) + 0.05 * torch.randn(1, 4, len(levels), H, W, generator=torch.Generator().manual_seed(3))
    return LatentRun.fresh(x.contiguous(), levels, range(100, 100 + len(levels))), plan, j


def _ctx(denoiser):
    return PassContext(denoiser, SIGMAS, CFG, PromptSchedule.single(), Progress({}))


def _constant(pattern, calls):
    def denoiser(x, sigma, prompt):
        calls.append(1)
        return pattern.expand(x.shape[0], x.shape[1], x.shape[2], H, W).clone()
    return denoiser


def test_a_smooth_sequence_does_not_trigger_a_search():
    queue, plan, _ = _queue(P)
    calls = []
    first, stats = reflect(_ctx(_constant(P, calls)), queue, plan, ReflectionStats())
    again, stats = reflect(_ctx(_constant(P, calls)), first, plan, stats)
    assert (stats.n_all, stats.n_eval, stats.n_corr) == (2, 0, 0)
    assert calls == [] and again is queue


def test_a_planted_drop_triggers_a_search_and_a_better_candidate_replaces_only_the_tail():
    smooth, plan, j = _queue(P)
    _, stats = reflect(_ctx(_constant(P, [])), smooth, plan, ReflectionStats())
    planted, _, _ = _queue(Q)
    calls = []
    fixed, stats = reflect(_ctx(_constant(P, calls)), planted, plan, stats)
    assert (stats.n_all, stats.n_eval, stats.n_corr) == (2, 1, 1)
    assert calls  # the search ran the model
    assert torch.equal(fixed.x[:, :, :j], planted.x[:, :, :j])  # the head is untouched
    assert not torch.allclose(fixed.x[:, :, j:], planted.x[:, :, j:])
    assert fixed.level == planted.level and fixed.index == planted.index
    assert stats.last_score > stats.scores[-1]  # C_prev is now the accepted candidate's score


def test_a_search_whose_candidates_score_lower_keeps_the_queue():
    smooth, plan, _ = _queue(P)
    _, stats = reflect(_ctx(_constant(P, [])), smooth, plan, ReflectionStats())
    planted, _, _ = _queue(Q)
    kept, stats = reflect(_ctx(_constant(-P, [])), planted, plan, stats)  # candidates drift to -P
    assert (stats.n_all, stats.n_eval, stats.n_corr) == (2, 1, 0)
    assert kept is planted
    assert stats.last_score == stats.scores[-1]


def test_reflection_that_never_fires_leaves_the_video_bitwise_unchanged_and_checks_every_stage1_pass():
    sig = torch.linspace(1, 0, 21)
    base = generate(ToyDenoiser(), sig, 24, CFG, latent_shape=(1, 2, 4, 4))
    checked = generate(ToyDenoiser(), sig, 24, CFG, latent_shape=(1, 2, 4, 4), reflection=ReflectionOptions(threshold=1e9))
    assert torch.equal(base.latents, checked.latents)
    assert checked.reflection.n_all == math.ceil(24 / LZ) and checked.reflection.n_eval == 0


def test_a_prompt_change_fires_reflection_near_the_boundary_but_a_single_prompt_does_not():
    """A model that draws pattern P for prompt 0 and Q for prompt 1: consistency drops when the
    tail reaches the prompt boundary. Scored on x0 predictions (``score_on="denoised"``) so the
    smooth run's score is exactly flat; on noisy latents it fluctuates by more than 0.01 [D5]."""

    def denoiser(x, sigma, prompt):
        pat = torch.where(prompt.argmax(-1).view(-1, 1, 1, 1, 1) == 0, P, Q)
        return pat.expand(x.shape[0], x.shape[1], x.shape[2], H, W).clone()

    sig = torch.linspace(1, 0, T + 1)
    opts = ReflectionOptions(threshold=0.01, num_candidates=3, score_on="denoised")
    single = generate(denoiser, sig, 60, CFG, latent_shape=(1, 4, H, W), reflection=opts)
    story = generate(denoiser, sig, 60, CFG, latent_shape=(1, 4, H, W), reflection=opts,
                     prompts=PromptSchedule(starts=(0, 48), prompt_indices=(0, 1), num_prompts=2))
    assert single.reflection.n_all == story.reflection.n_all == 30
    assert single.reflection.n_eval == 0
    assert story.reflection.n_eval >= 1


def test_in_a_batch_each_video_is_judged_searched_and_corrected_on_its_own():
    smooth, plan, j = _queue(P)
    planted, _, _ = _queue(Q)
    both_smooth = LatentRun.fresh(torch.cat([smooth.x, smooth.x]), smooth.level, smooth.index)
    mixed = LatentRun.fresh(torch.cat([planted.x, smooth.x]), smooth.level, smooth.index)  # video 0 drops, video 1 does not
    _, stats = reflect(_ctx(_constant(P, [])), both_smooth, plan, ReflectionStats())
    fixed, stats = reflect(_ctx(_constant(P, [])), mixed, plan, stats)
    assert (stats.n_all, stats.n_eval, stats.n_corr) == (4, 1, 1)  # two checks of two videos
    assert not torch.allclose(fixed.x[0, :, j:], mixed.x[0, :, j:])  # video 0's tail regenerated
    assert torch.equal(fixed.x[1], mixed.x[1])  # video 1 untouched
    assert len(stats.last_score) == 2 and stats.last_score[0] > stats.scores[-1][0]


def test_a_batched_run_with_reflection_equals_the_first_video_run_alone():
    """Video 0 of a batch draws the same noise as a batch of one; per-video decisions keep it independent."""
    sig = torch.linspace(1, 0, T + 1)
    opts = ReflectionOptions(threshold=0.0, num_candidates=2)  # search at every drop
    alone = generate(ToyDenoiser(), sig, 24, CFG, latent_shape=(1, 2, 4, 4), reflection=opts)
    batch = generate(ToyDenoiser(), sig, 24, CFG, latent_shape=(2, 2, 4, 4), reflection=opts)
    assert alone.reflection.n_eval >= 1
    assert torch.equal(batch.latents[:1], alone.latents)
