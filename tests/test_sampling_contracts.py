"""Contracts every run must keep: Jacobi windows [D1], the Alg. 8 reduction to plain sampling,
per-latent noise [D1b], determinism, and FIFO-Diffusion's official loop [D4]."""

from __future__ import annotations

import pytest
import torch

import miga_core.passes as qp
from miga_core import (
    GuidanceOptions,
    MigaConfig,
    ReflectionOptions,
    Stream,
    add_noise,
    generate,
    latent_noise,
)
from tests.helpers import ToyDenoiser, fresh_noise

SHAPE = (1, 2, 3, 3)

RUNS = {
    "miga_euler": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=3), GuidanceOptions(2), None),
    "miga_reflect": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=3), GuidanceOptions(2),
                     ReflectionOptions(threshold=-1.0, num_candidates=2)),  # threshold < 0: every check searches
    "dpmpp_2m_former": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=4, sampler="dpmpp_2m", update="former"), None, None),
    "ancestral_eps": (MigaConfig(window_length=6, zigzag_width=3, unified_steps=2, sampler="euler_ancestral",
                                 parameterization="eps"), GuidanceOptions(1), None),
    "fifo": (MigaConfig(window_length=8, zigzag_width=1, unified_steps=0, mode="fifo"), None, None),
}


def _run(name, **over):
    cfg, guid, refl = RUNS[name]
    cfg = cfg.with_(**over)
    T = 16
    sigmas = torch.linspace(1, 0, T + 1) if cfg.parameterization == "flow" else torch.linspace(8, 0, T + 1)
    return generate(ToyDenoiser(), sigmas, 19, cfg, latent_shape=SHAPE, guidance=guid, reflection=refl)


@pytest.mark.parametrize("name", RUNS)
def test_results_are_bitwise_identical_for_window_batch_1_2_and_all(name):
    one = _run(name, window_batch=1)
    for batch in (2, 1000):
        other = _run(name, window_batch=batch)
        assert torch.equal(one.latents, other.latents), f"window_batch={batch}"
        assert one.reflection == other.reflection


@pytest.mark.parametrize("name", RUNS)
def test_results_are_bitwise_identical_when_windows_run_in_reverse_order(name, monkeypatch):
    forward = _run(name)
    real = qp.plan_windows
    monkeypatch.setattr(qp, "plan_windows", lambda *a, **k: list(reversed(real(*a, **k))))
    backward = _run(name)
    assert torch.equal(forward.latents, backward.latents)


@pytest.mark.parametrize("name", RUNS)
def test_same_seed_same_video_other_seed_other_video(name):
    a, b, c = _run(name, seed=3), _run(name, seed=3), _run(name, seed=4)
    assert torch.equal(a.latents, b.latents)
    assert not torch.allclose(a.latents, c.latents)
    assert torch.isfinite(a.latents).all()


def test_caller_tensors_are_not_modified():
    sigmas = torch.linspace(1, 0, 17)
    clip = torch.randn(1, 2, 8, 3, 3)
    s0, c0 = sigmas.clone(), clip.clone()
    generate(ToyDenoiser(), sigmas, 12, RUNS["miga_euler"][0], initial_clip=clip, guidance=GuidanceOptions(2))
    assert torch.equal(sigmas, s0) and torch.equal(clip, c0)


# --- Alg. 8 reduction: unified stage alone over one window is plain sampling -------------------------

def _plain(denoiser, sigmas, x, step):
    """A k-diffusion style loop over the whole clip (the reference)."""
    old = None
    F = x.shape[2]
    T = len(sigmas) - 1
    for i in range(T):
        s, s_next = sigmas[i], sigmas[i + 1]
        den = denoiser(x, s.expand(1, F).clone(), torch.ones(1, 1))
        x, old = step(x, den, i, s, s_next, old, T)
    return x


def _euler(x, den, i, s, s_next, old, T):
    d = (x - den) / s
    return x + d * (s_next - s), den


def _dpmpp_2m(sigmas):
    def step(x, den, i, s, s_next, old, T):
        t, t_next = -torch.log(s), -torch.log(s_next) if s_next > 0 else torch.tensor(float("inf"))
        h = t_next - t
        if old is None or s_next == 0:
            return (s_next / s) * x - torch.expm1(-h) * den, den
        h_last = t - (-torch.log(sigmas[i - 1]))
        r = h_last / h
        den_d = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
        return (s_next / s) * x - torch.expm1(-h) * den_d, den
    return step


def _euler_ancestral(seed, eta, F):
    def step(x, den, i, s, s_next, old, T):
        level = T - i
        up = min(s_next, eta * (s_next**2 * (s**2 - s_next**2) / s**2) ** 0.5)
        down = (s_next**2 - up**2) ** 0.5
        x = x + (x - den) / s * (down - s)
        if up > 0:
            x = x + latent_noise(seed, Stream.ANCESTRAL, range(F), [level] * F, (1, 2, 3, 3)) * up
        return x, den
    return step


@pytest.mark.parametrize("sampler,param", [("euler", "flow"), ("euler", "eps"), ("dpmpp_2m", "flow"), ("dpmpp_2m", "eps"),
                                           ("euler_ancestral", "eps")])
@pytest.mark.parametrize("f0,stride", [(8, None), (7, 3), (8, 7)])
def test_unified_only_run_of_one_window_equals_plain_sampling(sampler, param, f0, stride):
    """Paper Alg. 8 with N == f0: every window sees the whole clip, so Phi is one plain step."""
    T, seed = 12, 5
    sigmas = torch.linspace(1, 0, T + 1) if param == "flow" else torch.tensor([14.6, 9, 6, 4, 2.8, 2, 1.4, 1, .7, .45, .25, .1, 0])
    cfg = MigaConfig(window_length=f0, window_stride=stride, zigzag_width=1, unified_steps=T, sampler=sampler,
                     parameterization=param, seed=seed)
    den = ToyDenoiser()
    got = generate(den, sigmas, f0, cfg, latent_shape=SHAPE).latents
    x = fresh_noise(seed, f0, SHAPE, T) * sigmas[0]
    step = {"euler": _euler, "dpmpp_2m": _dpmpp_2m(sigmas), "euler_ancestral": _euler_ancestral(seed, 1.0, f0)}[sampler]
    want = _plain(ToyDenoiser(), sigmas, x, step)
    assert (got - want).abs().max() <= 1e-6


def test_a_longer_unified_only_run_uses_ceil_N_over_s_windows_per_step():
    T, N, f0 = 6, 20, 8
    den = ToyDenoiser()
    r = generate(den, torch.linspace(1, 0, T + 1), N, MigaConfig(window_length=f0, zigzag_width=1, unified_steps=T),
                 latent_shape=SHAPE)
    assert r.num_windows == T * 5 == len(den.calls)
    assert all(c["shape"][2] == f0 for c in den.calls)


# --- FIFO-Diffusion mode reproduces the official loop ------------------------------------------------

def test_fifo_mode_matches_an_array_reimplementation_of_the_official_loop():
    """Re-implements FIFO-Diffusion's ``fifo_ddim_sampling`` (lookahead) on a padded array:
    ``prepare_latents`` (f0/2 pad copies of latent 0 at the lowest level, position i holds latent
    max(0, i-(T-f0)) noised to level i+1), ranks in reverse order each updating the second half of
    a window that starts at rank*f0/2, the pad always shown at the lowest level, output = first
    non-pad latent, then ``shift_latents``. Noise comes from our keyed streams so both match."""
    T, f0, N, seed = 16, 8, 13, 2
    s = f0 // 2
    sigmas = torch.linspace(1, 0, T + 1)
    clip = torch.randn(1, 2, f0, 3, 3, generator=torch.Generator().manual_seed(9))
    cfg = MigaConfig(window_length=f0, zigzag_width=1, unified_steps=0, mode="fifo", seed=seed)
    got = generate(ToyDenoiser(), sigmas, N, cfg, initial_clip=clip).latents

    def renoise(frame, level, index):
        n = latent_noise(seed, Stream.RENOISE, [index], [level], (1, 2, 3, 3))
        return add_noise(clip[:, :, [frame]], n, sigmas[[T - level]], "flow")

    off = T - f0
    lat = [renoise(0, 1, -off - s + i) for i in range(s)] + [renoise(max(0, i - off), i + 1, i - off) for i in range(T)]
    lat = torch.cat(lat, dim=2)
    levels = [1] * s + list(range(1, T + 1))  # the pad is always "timesteps[0]"
    den = ToyDenoiser()
    outs, next_index = [], f0
    for _ in range(N + T - f0):
        new = lat.clone()
        for rank in reversed(range(2 * T // f0)):
            a, mid, b = rank * s, rank * s + s, rank * s + f0
            sig = sigmas[[T - k for k in levels[a:b]]]
            x0 = den(lat[:, :, a:b], sig.view(1, -1), torch.ones(1, 1))
            step = (lat[:, :, mid:b] - x0[:, :, s:]) / sig[s:].view(1, 1, -1, 1, 1)
            new[:, :, mid:b] = lat[:, :, mid:b] + step * (sigmas[[T - k + 1 for k in levels[mid:b]]] - sig[s:]).view(1, 1, -1, 1, 1)
        lat = new
        outs.append(lat[:, :, [s]])
        fresh = latent_noise(seed, Stream.FRESH, [next_index], [T], (1, 2, 3, 3)) * sigmas[0]
        next_index += 1
        lat = torch.cat([lat[:, :, 1:], fresh], dim=2)  # shift_latents
    want = torch.cat(outs[-N:], dim=2)  # video_frames[-new_video_length:]
    assert (got - want).abs().max() <= 1e-6


def test_dpmpp_2m_history_travels_with_each_latent_into_the_unified_stage():
    """[D2]: each stage-1 output carries its last x0 prediction; stage 2's first step is second order."""
    from dataclasses import replace

    from miga_core import unified_stage, zigzag_stage
    from tests.helpers import init_queue

    cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=4, sampler="dpmpp_2m")
    sig = torch.linspace(1, 0, 17)
    state = zigzag_stage(ToyDenoiser(), init_queue(ToyDenoiser(), sig, 12, cfg, latent_shape=SHAPE))
    assert all(state.outputs.has_denoised) and state.outputs.denoised.abs().sum() > 0
    kept = unified_stage(ToyDenoiser(), state).outputs.x
    forgotten = replace(state, outputs=replace(state.outputs, has_denoised=(False,) * 12))
    assert not torch.allclose(kept, unified_stage(ToyDenoiser(), forgotten).outputs.x)


@pytest.mark.parametrize("name", ["miga_euler", "fifo"])
def test_a_latent_batch_of_two_is_window_batch_invariant_too(name):
    cfg, guid, refl = RUNS[name]
    runs = [generate(ToyDenoiser(), torch.linspace(1, 0, 17), 11, cfg.with_(window_batch=b), latent_shape=(2, 2, 3, 3),
                     guidance=guid).latents for b in (1, 3)]
    assert runs[0].shape == (2, 2, 11, 3, 3)
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0][0], runs[0][1])  # each sample has its own noise


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", ["miga_euler", "dpmpp_2m_former", "fifo"])
def test_latents_keep_their_dtype_through_every_stage(name, dtype):
    cfg, guid, refl = RUNS[name]
    out = generate(ToyDenoiser(), torch.linspace(1, 0, 13), 10, cfg, latent_shape=SHAPE, dtype=dtype, guidance=guid).latents
    assert out.dtype == dtype and torch.isfinite(out.float()).all()


def test_a_callback_that_raises_cancels_and_a_rerun_matches_a_clean_run():
    cfg, guid, _ = RUNS["miga_euler"]
    clean = _run("miga_euler").latents

    class Interrupted(Exception):
        pass

    def cancel_at_40(info):
        if info.window == 40:
            raise Interrupted

    with pytest.raises(Interrupted):
        generate(ToyDenoiser(), torch.linspace(1, 0, 17), 19, cfg, latent_shape=SHAPE, guidance=guid, callback=cancel_at_40)
    assert torch.equal(_run("miga_euler").latents, clean)


def test_naming_the_compute_device_explicitly_changes_nothing():
    a = _run("miga_euler")
    b = _run("miga_euler", compute_device="cpu")
    assert torch.equal(a.latents, b.latents)
