"""FIFO mode against FIFO-Diffusion's released ``fifo_ddim_sampling`` [D4, D7], and the DDIM convention options.

The records in ``tests/fixtures/fifo_official/`` were made by running the official loop (outside this project,
docs/official_equivalence.md "FIFO-Diffusion") with our stand-in eps model (``tests/fifo_standin.py``) and our keyed
noise. Here our ``vc2-fifo`` preset runs the same stand-in, ladder, initial clip and noise and must give the same video.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from miga_core import GuidanceOptions, MigaConfig, ddim_ladder, generate, plan_run, preset
from miga_core.errors import InvalidConfigError
from miga_core.noise import KeyedNoise, NoiseDraw, Stream, latent_noise
from miga_core.passes import PassContext, queue_pass
from miga_core.latents import LatentRun, TailSource
from miga_core.prompts import PromptSchedule
from miga_core.protocols import Progress
from miga_core.windows import plan_windows
from tests.fifo_standin import EpsStandinDenoiser

FIXTURES = Path(__file__).parent / "fixtures" / "fifo_official"
SETTINGS = json.loads((FIXTURES / "settings.json").read_text())


def _our_run(name: str, **changes):
    """Our FIFO run of record ``name`` with the ``vc2-fifo`` preset (``changes`` applied): ``(ours in DDPM space, official)``."""
    s = SETTINGS[name]
    rec = load_file(FIXTURES / f"{name}.safetensors")
    T, f0, N = s["num_steps"], s["window_length"], s["new_video_length"]
    sigmas, timesteps, alphacums = ddim_ladder(T)
    config = preset("vc2-fifo")[0].with_(window_length=f0, window_stride=f0 // 2 if s["lookahead_denoising"] else f0,
                                         eta=s["eta"], seed=s["seed"], **changes)
    den = EpsStandinDenoiser(sigmas, timesteps, [s["prompt"]], s["negative_prompt"], s["cfg"])
    out = generate(den, sigmas, N, config, initial_clip=rec["clip"][None], guidance=GuidanceOptions(num_guidance=0)).latents[0]
    # the official loop hands the VAE its DDPM-space latent at t = 0: x_sigma * sqrt(alphacums[0])
    return out * math.sqrt(float(alphacums[0])), rec["frames"][:, -N:], den


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_fifo_mode_equals_the_official_fifo_ddim_sampling(name):
    """eta 0 and 1, lookahead on and off, >= 16 output frames, <= 1e-5 (measured <= 1e-6)."""
    ours, official, den = _our_run(name)
    s = SETTINGS[name]
    assert official.shape[1] >= 16
    assert (ours - official).abs().max() <= 1e-5
    assert 2 * den.calls == s["model_calls"]  # the official unet() calls the model twice per window (CFG)


@pytest.mark.parametrize("change", [{"final_step": "x0"}, {"tail_noise": "sigma"}])
def test_each_official_convention_is_needed(change):
    """Without either option the run leaves the official one (the corrected variant differs by ~0.04 here)."""
    ours, official, _ = _our_run("la_eta1", **change)
    assert (ours - official).abs().max() > 1e-4


def test_the_ladder_is_the_official_ddim_schedule():
    for name, s in SETTINGS.items():
        T = s["num_steps"]
        sigmas, timesteps, alphacums = ddim_ladder(T)
        assert timesteps.flip(0).tolist() == s["ddim_timesteps"]
        a = alphacums[timesteps.flip(0)].to(torch.float64)
        assert a.tolist() == pytest.approx(s["ddim_alphas"], abs=0, rel=0)
        assert torch.allclose(sigmas[:-1].flip(0), ((1 - a) / a).sqrt())
        # DDIM's last step: alphas_prev[0] = alphacums[0] = alphas[0] (t_0 = 0), no noise even with eta 1
        assert s["ddim_alphas_prev"][0] == s["ddim_alphas"][0] and s["ddim_sigmas"][0] == 0
        assert s["ddim_alphas_prev"][1:] == s["ddim_alphas"][:-1]


# --- the options on their own ---------------------------------------------------------------------------------

def _ctx(config: MigaConfig, sigmas: torch.Tensor, den) -> PassContext:
    return PassContext(den, sigmas, config, PromptSchedule.single(), Progress({"zigzag": 100}, None))


def test_identity_final_step_keeps_level_1_latents_and_still_calls_the_model():
    sigmas, timesteps, _ = ddim_ladder(6)
    den = EpsStandinDenoiser(sigmas, timesteps, ["p"])
    x = torch.randn(1, 2, 4, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    q = LatentRun.fresh(x, [1, 2, 1, 3], [0, 1, 2, 3])
    base = MigaConfig(window_length=4, window_stride=4, zigzag_width=1, unified_steps=0, mode="fifo", parameterization="eps")
    x0 = queue_pass(_ctx(base, sigmas, den), q, LatentRun.empty_like(x))
    ident = queue_pass(_ctx(base.with_(final_step="identity"), sigmas, den), q, LatentRun.empty_like(x))
    assert torch.equal(ident.x[:, :, [0, 2]], x[:, :, [0, 2]])  # level 1 -> 0 keeps x (DDIM alphas_prev[0] = alphacums[0])
    assert torch.equal(ident.x[:, :, [1, 3]], x0.x[:, :, [1, 3]])  # other levels step as before
    assert not torch.allclose(x0.x[:, :, [0, 2]], x[:, :, [0, 2]])
    assert torch.equal(ident.denoised, x0.denoised) and ident.level == (0, 1, 0, 2)


def test_ddpm_tail_noise_is_randn_in_ddpm_space():
    sigmas, _, _ = ddim_ladder(8)
    like = torch.zeros(1, 2, 0, 3, 3, dtype=torch.float64)
    draw = NoiseDraw("fresh", "zigzag", Stream.FRESH, (5, 6), (8, 8))
    n = latent_noise(4, Stream.FRESH, [5, 6], [8, 8], (1, 2, 3, 3), dtype=torch.float64)
    top = sigmas[0]
    assert torch.allclose(TailSource(KeyedNoise(4), sigmas, tail_noise="ddpm")(draw, like).x, n * torch.sqrt(1 + top**2))
    assert torch.equal(TailSource(KeyedNoise(4), sigmas)(draw, like).x, n * top)


def test_convention_options_refuse_what_they_cannot_mean():
    with pytest.raises(InvalidConfigError, match="tail_noise"):
        MigaConfig(parameterization="flow", tail_noise="ddpm").validate()
    with pytest.raises(InvalidConfigError, match="final_step"):
        MigaConfig(unified_steps=0, final_step="identity").validate()
    with pytest.raises(InvalidConfigError, match="final_step"):
        MigaConfig(final_step="ddim").validate()


def test_non_lookahead_fifo_windows_sit_side_by_side_and_update_all_of_themselves():
    cfg = MigaConfig(window_length=8, window_stride=8, zigzag_width=1, unified_steps=0, mode="fifo", parameterization="eps")
    plan = plan_run(cfg, 24, 16)
    assert plan.history_size == 0 and plan.calls["zigzag"] == (16 + 24 - 8) * 3
    wins = plan_windows(0, 24, 8, 8)
    assert [(w.positions, w.region) for w in wins] == [(tuple(range(b, b + 8)), (b, b + 8)) for b in (0, 8, 16)]
    with pytest.raises(InvalidConfigError, match="window_length"):  # MIGA keeps one context latent per window [D1]
        MigaConfig(window_length=8, window_stride=8).validate()


def test_vc2_fifo_presets_plan_the_official_geometry():
    sigmas, _, _ = ddim_ladder(64)
    for name, (final, tail) in {"vc2-fifo": ("identity", "ddpm"), "vc2-fifo-x0": ("x0", "sigma")}.items():
        config, guidance, reflection = preset(name)
        assert (config.final_step, config.tail_noise, reflection) == (final, tail, None)
        plan = plan_run(config, len(sigmas) - 1, 100, guidance=guidance, reflection=reflection, has_initial_clip=True)
        assert plan.calls["zigzag"] == (100 + 64 - 16) * 8  # 2 * 4 partitions of lookahead windows per pass
