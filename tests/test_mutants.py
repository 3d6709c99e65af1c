"""Regressions that see levels and positions: each test fails on a bug the order-free toy denoiser
used to let through (issue 8): context shown at level 0, FIFO history left at level 0, the eps
noising rule in flow runs, ``eta`` ignored, reflection candidates guided by the whole prefix.

The model's view is recorded through the public API only: ``generate`` with a recording denoiser
and a callback that tags each call with its stage (``window_batch=1``: one call per window).
"""

from __future__ import annotations

import math

import pytest
import torch

from miga_core import SAMPLERS, GuidanceOptions, MigaConfig, ReflectionOptions, add_noise, generate
from miga_core.samplers import StepInputs
from tests.helpers import ToyDenoiser

SHAPE = (1, 2, 3, 3)


def _levels_seen(cfg: MigaConfig, sigmas: torch.Tensor, num_frames: int, **kw) -> list[tuple[str, list[int]]]:
    """Run ``generate``; return ``(stage, levels of the window's frames)`` for every model call."""
    den, seen = ToyDenoiser(), []
    T = len(sigmas) - 1

    def level(s: float) -> int:
        return T - int((sigmas - s).abs().argmin())

    def tag(info):
        seen.append((info.stage, [level(float(v)) for v in den.calls[-1]["sigma"][0]]))

    generate(den, sigmas, num_frames, cfg.with_(window_batch=1), latent_shape=SHAPE, callback=tag, **kw)
    assert len(seen) == len(den.calls)
    return seen


# --- the shared denoiser itself ---------------------------------------------------------------------

def test_the_toy_denoiser_output_depends_on_neighbour_levels_positions_and_frame_order():
    den = ToyDenoiser()
    g = torch.Generator().manual_seed(0)
    x, sigma, prompt = torch.randn(1, 2, 5, 3, 3, generator=g), torch.linspace(0.2, 0.9, 5).view(1, 5), torch.ones(1, 1)
    out = den(x, sigma, prompt)
    # a neighbour shown at another level changes the other frames
    other = sigma.clone()
    other[0, 0] = 0.0
    assert not torch.allclose(den(x, other, prompt)[:, :, 1:], out[:, :, 1:])
    # the same frames and levels at other positions give other outputs (position in the window)
    same = x[:, :, [2]].expand(1, 2, 5, 3, 3).contiguous()
    flat = den(same, torch.full((1, 5), 0.5), prompt)
    assert not torch.allclose(flat[:, :, 1], flat[:, :, 3])
    # reversing the frames does not just reverse the outputs (frame order)
    rev = den(x.flip(2), sigma.flip(1), prompt).flip(2)
    assert not torch.allclose(rev, out)
    # prompt weights matter, and a row's result does not depend on the rows stacked with it
    assert not torch.allclose(den(x, sigma, torch.zeros(1, 1)), out)
    pair = den(torch.cat([x, x.flip(2)]), torch.cat([sigma, sigma.flip(1)]), torch.ones(2, 1))
    assert torch.equal(pair[:1], out)


# --- mutant 1: history and guidance latents shown at level 0 (passes.py) ------------------------------

@pytest.mark.parametrize("m", [0, 2])
def test_zigzag_windows_show_history_and_guidance_latents_at_their_level_u_never_at_0(m):
    T, u = 16, 3
    cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=u)
    seen = _levels_seen(cfg, torch.linspace(1, 0, T + 1), 20, guidance=GuidanceOptions(m) if m else None)
    zigzag = [lv for stage, lv in seen if stage == "zigzag"]
    assert zigzag
    # the queue holds levels u+1..T, so a frame at level u is history or guidance: it must be shown at u
    assert min(min(lv) for lv in zigzag) == u
    assert sum(lv.count(u) for lv in zigzag) > 0
    # lookahead windows read older latents first: levels never fall along a window
    assert all(lv == sorted(lv) for lv in zigzag)


def test_with_unified_steps_above_0_the_model_never_sees_a_finished_latent():
    T = 12
    cfg = MigaConfig(window_length=6, zigzag_width=3, unified_steps=2)
    seen = _levels_seen(cfg, torch.linspace(1, 0, T + 1), 14, guidance=GuidanceOptions(1))
    assert {stage for stage, _ in seen} == {"initial_clip", "init", "zigzag", "unified"}
    assert all(min(lv) >= 1 for _, lv in seen)


# --- mutants 1 and 2: FIFO history shown at level 1, as FIFO-Diffusion shows its pad (stages.py) -----

def test_fifo_windows_show_their_history_at_level_1_never_at_0():
    T, f0 = 16, 8
    cfg = MigaConfig(window_length=f0, zigzag_width=1, unified_steps=0, mode="fifo")
    seen = _levels_seen(cfg, torch.linspace(1, 0, T + 1), 12)
    fifo = [lv for stage, lv in seen if stage == "zigzag"]
    assert fifo and min(min(lv) for lv in fifo) == 1
    # the first window of every pass: f0 - s history latents at level 1, then the head of the queue at 1, 2, ...
    firsts = fifo[:: math.ceil(T / (f0 // 2))]
    assert all(lv == [1] * (f0 // 2) + [1, 2, 3, 4] for lv in firsts)


# --- mutant 3: flow add_noise (noise.py) ------------------------------------------------------------

def test_flow_add_noise_blends_clean_latent_and_noise_and_eps_adds_scaled_noise():
    g = torch.Generator().manual_seed(1)
    x0, n = torch.randn(2, 3, 4, 2, 2, generator=g), torch.randn(2, 3, 4, 2, 2, generator=g)
    sigma = torch.tensor([0.0, 0.25, 0.7, 1.0])
    s = sigma.view(1, 1, 4, 1, 1)
    flow = add_noise(x0, n, sigma, "flow")
    assert torch.allclose(flow, (1 - s) * x0 + s * n, atol=1e-6)
    assert torch.equal(flow[:, :, 0], x0[:, :, 0]) and torch.allclose(flow[:, :, 3], n[:, :, 3], atol=1e-6)
    eps_sigma = torch.tensor([0.0, 0.5, 3.0, 14.6])
    assert torch.allclose(add_noise(x0, n, eps_sigma, "eps"), x0 + eps_sigma.view(1, 1, 4, 1, 1) * n, atol=1e-5)


def test_an_initial_clip_enters_a_flow_run_noised_by_the_flow_rule():
    """The first init window of a run from a clip shows the clip noised as (1 - sigma) x0 + sigma n."""
    T, f0 = 10, 8
    clip = torch.full((1, 2, f0, 3, 3), 3.0)  # far from 0, so (1 - s) x0 and x0 differ plainly
    cfg = MigaConfig(window_length=f0, zigzag_width=4, unified_steps=6, window_stride=4)
    seen_x = []
    den = ToyDenoiser()

    def recording(x, sigma, prompt):
        seen_x.append(x.clone())
        return den(x, sigma, prompt)

    generate(recording, torch.linspace(1, 0, T + 1), 4, cfg, initial_clip=clip)
    first, sig = seen_x[0], den.calls[0]["sigma"][0]
    # mean over the noise: (1 - sigma) * 3 under the flow rule, 3 under the eps rule
    mean = first.mean(dim=(0, 1, 3, 4))
    assert torch.allclose(mean, (1 - sig) * 3.0, atol=1.0)
    assert (mean - 3.0).abs().min() > 0.5


# --- mutant 4: eta in the ancestral step (samplers.py) ----------------------------------------------

def _step_inputs(eta: float, noise: torch.Tensor) -> StepInputs:
    g = torch.Generator().manual_seed(2)
    x, den = torch.randn(1, 2, 3, 2, 2, generator=g) * 4, torch.randn(1, 2, 3, 2, 2, generator=g)
    return StepInputs(x=x, denoised=den, sigma=torch.tensor([4.0, 2.0, 1.0]), sigma_next=torch.tensor([2.0, 1.0, 0.5]),
                      eta=eta, noise=lambda: noise)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_the_ancestral_step_scales_its_noise_by_eta(eta):
    noise = torch.randn(1, 2, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    s = _step_inputs(eta, noise)
    sig, nxt = s.sigma.view(1, 1, -1, 1, 1), s.sigma_next.view(1, 1, -1, 1, 1)
    up = torch.minimum(nxt, eta * torch.sqrt(nxt**2 * (sig**2 - nxt**2) / sig**2))  # k-diffusion get_ancestral_step
    down = torch.sqrt(nxt**2 - up**2)
    want = s.x + (s.x - s.denoised) / sig * (down - sig) + noise * up
    assert torch.allclose(SAMPLERS["euler_ancestral"](s), want, atol=1e-5)


def test_ancestral_sampling_with_eta_0_is_euler_and_eta_changes_the_video():
    sig = torch.tensor([14.6, 9, 6, 4, 2.8, 2, 1.4, 1, .7, .45, .25, .1, 0])
    cfg = MigaConfig(window_length=6, zigzag_width=3, unified_steps=2, parameterization="eps")
    run = lambda **kw: generate(ToyDenoiser(), sig, 10, cfg.with_(**kw), latent_shape=SHAPE).latents  # noqa: E731
    euler = run(sampler="euler")
    assert torch.allclose(run(sampler="euler_ancestral", eta=0.0), euler, atol=1e-5)
    half, full = run(sampler="euler_ancestral", eta=0.5), run(sampler="euler_ancestral", eta=1.0)
    assert not torch.allclose(half, full, atol=1e-3) and not torch.allclose(half, euler, atol=1e-3)


# --- mutant 5: reflection candidates guided by f_guid latents only (reflection.py) ------------------

@pytest.mark.parametrize("num_guide", [2, 4])
def test_reflection_candidates_read_only_the_f_guid_latents_before_the_judge(num_guide):
    """Queue levels u+1..T, L_zig each; judge at the level nearest 0.8 T. A candidate's windows may show
    the f_guid latents just before the judge (levels >= judge - f_guid / L_zig), nothing older."""
    T, u, lz = 16, 3, 2
    cfg = MigaConfig(window_length=8, zigzag_width=lz, unified_steps=u)
    opts = ReflectionOptions(threshold=-3.0, num_candidates=1, num_guide=num_guide)  # C_prev - C >= -2 > -3: every check searches
    seen = _levels_seen(cfg, torch.linspace(1, 0, T + 1), 16, reflection=opts)
    judge = min(range(u + 1, T), key=lambda k: (abs(k - 0.8 * T), k))
    lowest = judge - num_guide // lz
    search = [lv for stage, lv in seen if stage == "reflection"]
    assert search
    assert min(min(lv) for lv in search) == lowest
    # the guide latents, then the candidate's own latents (from the judge's level up)
    assert all(lv == sorted(lv) and sum(k < judge for k in lv) <= num_guide for lv in search)
