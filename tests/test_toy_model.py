"""The ToyDiT: per-frame noise levels, CFG, save/load without pickle, and a training smoke run."""

import json

import pytest
import torch

from toyworld.model import ToyDenoiser, ToyDiT, ToyDiTConfig, load_model, save_model
from toyworld.train import main as train_main

SMALL = ToyDiTConfig(dim=32, depth=1, heads=2)


def trained_like(config=SMALL, seed=0):
    torch.manual_seed(seed)
    model = ToyDiT(config)
    with torch.no_grad():  # adaLN-zero starts as identity: make every layer matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_each_frame_has_its_own_noise_level():
    model = trained_like()
    x = torch.randn(1, 3, 4, 32, 32)
    cond = model.embed_prompt(torch.tensor([[0, 1, 2, 1]]))
    shared = model(x, torch.full((1, 4), 0.5), cond)
    sigma = torch.full((1, 4), 0.5)
    sigma[0, 3] = 0.9
    per_frame = model(x, sigma, cond)
    assert not torch.allclose(shared, per_frame)
    # the frames' outputs move most where the level changed
    change = (per_frame - shared).abs().mean(dim=(0, 1, 3, 4))
    assert int(change.argmax()) == 3


def test_denoiser_applies_cfg_and_returns_x0_per_frame():
    model = trained_like()
    attrs = torch.tensor([[[0, 1, 2, 1]]])
    x, sigma, prompt = torch.randn(2, 3, 4, 32, 32), torch.rand(2, 4) * 0.9 + 0.05, torch.ones(2, 1)
    plain = ToyDenoiser(model, attrs, cfg_scale=1.0)(x, sigma, prompt)
    v = model(x, sigma, model.embed_prompt(attrs[:, 0]).expand(2, -1))
    assert torch.allclose(plain, x - sigma[:, None, :, None, None] * v, atol=1e-5)
    guided = ToyDenoiser(model, attrs, cfg_scale=3.0)(x, sigma, prompt)
    assert not torch.allclose(guided, plain)


def test_window_rows_map_to_their_videos():
    model = trained_like()
    attrs = torch.tensor([[[0, 1, 2, 1]], [[2, 3, 0, 0]]])  # two videos
    x, sigma = torch.randn(1, 3, 4, 32, 32).expand(4, -1, -1, -1, -1), torch.full((4, 4), 0.5)
    out = ToyDenoiser(model, attrs, cfg_scale=2.0)(x, sigma, torch.ones(4, 1))
    assert torch.allclose(out[0], out[2]) and torch.allclose(out[1], out[3]) and not torch.allclose(out[0], out[1])


def test_save_and_load_round_trip_without_pickle(tmp_path):
    model = trained_like()
    save_model(model, str(tmp_path / "m.safetensors"), dtype=torch.float32)
    loaded = load_model(str(tmp_path / "m.safetensors"))
    assert loaded.config == SMALL
    x, s = torch.randn(1, 3, 2, 32, 32), torch.rand(1, 2)
    c = model.embed_prompt(torch.tensor([[1, 1, 1, 1]]))
    assert torch.allclose(model(x, s, c), loaded(x, s, c))


def test_input_of_the_wrong_size_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="window_length <= 16"):
        trained_like()(torch.randn(1, 3, 17, 32, 32), torch.rand(1, 17), torch.zeros(1, 32))


def test_training_runs_and_writes_weights_config_and_log(tmp_path):
    assert train_main(["--out", str(tmp_path), "--steps", "2", "--batch", "2", "--device", "cpu", "--log-every", "1"]) == 0
    assert load_model(str(tmp_path / "toy_dit.safetensors")).config == ToyDiTConfig()
    assert json.loads((tmp_path / "train_config.json").read_text())["params"] > 1e6
    assert len((tmp_path / "train_log.jsonl").read_text().splitlines()) == 2


def test_the_shipped_weights_are_small_and_load():
    from toyworld.demo import WEIGHTS

    assert WEIGHTS.stat().st_size < 8e6
    model = load_model(str(WEIGHTS))
    assert sum(p.numel() for p in model.parameters()) > 1e6
