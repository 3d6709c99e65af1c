"""The main job runs end to end on the CPU and writes what it promises."""

import json

import pytest
import torch
from safetensors.torch import load_file

from miga_core import MigaConfig, generate
from miga_core.demo import main
from miga_core.gp_denoiser import GaussianProcessDenoiser


@pytest.mark.parametrize("score_on", ["latent", "denoised"])
def test_demo_writes_latents_and_metrics(tmp_path, capsys, score_on):
    metrics = main(["--num-frames", "40", "--steps", "12", "--score-on", score_on, "--out", str(tmp_path)])
    saved = load_file(str(tmp_path / "latents.safetensors"))["latents"]
    assert saved.shape == (1, 4, 40, 8, 8) and torch.isfinite(saved).all()
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["model_calls"] > 0 and metrics["finite"]
    assert "100%" in capsys.readouterr().err


def test_gp_denoiser_recovers_clean_latents_at_zero_noise_and_the_prior_mean_at_full_noise():
    den = GaussianProcessDenoiser(length_scale=2.0, prompt_means=torch.tensor([[2.0, -1.0]]))
    x = torch.randn(1, 2, 5, 3, 3)
    clean = den(x, torch.zeros(1, 5), torch.ones(1, 1))
    assert torch.allclose(clean, x, atol=1e-4)
    full = den(x, torch.ones(1, 5), torch.ones(1, 1))  # flow at sigma 1: x is pure noise
    assert torch.allclose(full[:, 0], torch.full_like(full[:, 0], 2.0), atol=1e-4)


def test_gp_model_videos_are_smoother_than_noise():
    r = generate(GaussianProcessDenoiser(4.0), torch.linspace(1, 0, 13), 48, MigaConfig(window_length=8, zigzag_width=2, unified_steps=2),
                 latent_shape=(1, 2, 4, 4))
    x = r.latents
    change = (x[:, :, 1:] - x[:, :, :-1]).abs().mean()
    assert change < 0.5 * x.abs().mean()
