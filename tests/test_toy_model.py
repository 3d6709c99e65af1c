"""The ToyDiT: per-frame noise levels, CFG, save/load without pickle (the size in the metadata),
the training schedule and smoke runs of the trainer and of the device script benchmarks/train_toy.py."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from benchmarks import train_toy
from miga_core import MigaValueError
from toyworld.model import ToyDenoiser, ToyDiT, ToyDiTConfig, config_from_metadata, load_model, save_model
from toyworld.train import clip_levels, lr_factor
from toyworld.train import main as train_main
from toyworld.world import render, sample_spec

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


def test_a_file_without_metadata_loads_as_the_default_size(tmp_path):
    torch.manual_seed(1)
    model = ToyDiT().eval()  # files written before the size was saved hold the default ToyDiTConfig
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "old.safetensors"))
    loaded = load_model(str(tmp_path / "old.safetensors"))
    assert loaded.config == ToyDiTConfig() and config_from_metadata(None) == ToyDiTConfig()
    x, s = torch.randn(1, 3, 2, 32, 32), torch.rand(1, 2)
    c = model.embed_prompt(torch.tensor([[1, 0, 2, 1]]))
    assert torch.equal(model(x, s, c), loaded(x, s, c))


def test_a_saved_size_other_than_the_default_comes_back(tmp_path):
    config = ToyDiTConfig(dim=24, depth=2, heads=3, frames=8)
    save_model(trained_like(config), str(tmp_path / "m.safetensors"))
    loaded = load_model(str(tmp_path / "m.safetensors"))
    assert loaded.config == config and len(loaded.blocks) == 2 and loaded.blocks[0].heads == 3
    assert loaded.pos_time.shape[1] == 8 and loaded.patch_embed.out_features == 24
    partial = config_from_metadata({"config": json.dumps({"dim": 64, "heads": 2})})  # missing fields: defaults
    assert partial == ToyDiTConfig(dim=64, heads=2)


def test_bad_metadata_and_unbuildable_sizes_are_refused_by_name():
    with pytest.raises(MigaValueError, match="width"):
        config_from_metadata({"config": json.dumps({"dim": 32, "width": 3})})
    with pytest.raises(MigaValueError, match="JSON"):
        config_from_metadata({"config": "{dim: 32"})
    with pytest.raises(MigaValueError, match=r"ToyDiTConfig.heads.*divisor of dim = 160"):
        ToyDiTConfig(heads=3)
    with pytest.raises(MigaValueError, match=r"ToyDiTConfig.patch.*divisor of size = 32"):
        ToyDiTConfig(patch=5)
    with pytest.raises(MigaValueError, match="ToyDiTConfig.depth"):
        ToyDiTConfig(depth=0)


def test_learning_rate_warms_up_then_follows_the_cosine_to_its_floor():
    assert lr_factor(0, 0.0, 100, "cosine", 0.1) == pytest.approx(0.01)
    assert lr_factor(49, 0.0, 100, "cosine", 0.1) == pytest.approx(0.5)
    assert lr_factor(100, 0.0, 100, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(500, 0.5, 100, "cosine", 0.1) == pytest.approx(0.55)
    assert lr_factor(900, 0.75, 100, "cosine", 0.0) == pytest.approx(0.5 * (1 + math.cos(0.75 * math.pi)))
    assert lr_factor(999, 1.0, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(999, 2.0, 100, "cosine", 0.1) == pytest.approx(0.1)  # past the end: the floor
    assert lr_factor(999, 1.0, 100, "constant", 0.1) == 1.0


def test_clip_levels_share_one_level_per_clip_unless_mixed_and_then_rise_along_the_frames():
    torch.manual_seed(0)
    shared = clip_levels(64, 16, 0.0, "cpu")
    assert shared.shape == (64, 16) and torch.equal(shared, shared[:, :1].expand(64, 16))  # the recipe: one level per clip
    torch.manual_seed(0)
    assert torch.equal(clip_levels(64, 16, 0.0, "cpu"), shared)  # same draws: the default recipe's stream is kept
    torch.manual_seed(0)
    mixed = clip_levels(4000, 16, 0.25, "cpu")
    rising = (mixed[:, -1] - mixed[:, 0]) > 1e-6
    assert 0.22 < rising.float().mean() < 0.28  # about the asked fraction
    assert bool((mixed[rising].diff(dim=1) >= 0).all()) and bool(((mixed > 0) & (mixed < 1)).all())
    steps = mixed[rising].diff(dim=1)
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), atol=1e-6)  # linear along the frames


def test_training_runs_at_the_asked_size_and_writes_weights_config_and_log(tmp_path):
    assert train_main(["--out", str(tmp_path), "--steps", "2", "--batch", "2", "--device", "cpu", "--log-every", "1",
                       "--dim", "32", "--depth", "2", "--heads", "2", "--save-raw", "--min-lr-ratio", "0.5"]) == 0
    small = ToyDiTConfig(dim=32, depth=2, heads=2)
    assert load_model(str(tmp_path / "toy_dit.safetensors")).config == small
    assert load_model(str(tmp_path / "toy_dit_raw.safetensors")).config == small
    info = json.loads((tmp_path / "train_config.json").read_text())
    assert info["params"] == sum(p.numel() for p in ToyDiT(small).parameters()) and info["result"]["steps"] == 2
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and log[1]["lr"] > log[0]["lr"]  # still warming up


def test_presence_finds_drawn_objects_and_misses_removed_ones():
    specs = [sample_spec(123 + i) for i in range(12)]
    clips = render(specs, 16, start=50)
    for video, background, spec in zip(clips.video, clips.background, specs):
        assert train_toy.score_clip(video, spec)["absent_frames"] == []
        assert train_toy.score_clip(background, spec)["absent_frames"] == list(range(16))
        assert train_toy.score_clip(video, spec)["max_jump_px"] < 2.0  # the world moves objects <= 1.5 px a frame
    blinked = clips.video[0].clone()
    blinked[[3, 4, 9]] = clips.background[0][[3, 4, 9]]
    score = train_toy.score_clip(blinked, specs[0])
    assert score["absent_frames"] == [3, 4, 9] and score["identity_accuracy"] == pytest.approx(13 / 16)


def test_device_script_trains_selects_and_scores_within_its_budget(tmp_path):
    args = ["--out", str(tmp_path), "--device", "cpu", "--budget-minutes", "3", "--prompts", "2", "--val-prompts", "1",
            "--seeds", "1", "--long-videos", "1", "--long-frames", "20", "--", "--steps", "2", "--batch", "1",
            "--dim", "16", "--depth", "1", "--heads", "1"]
    assert train_toy.main(args) == 0
    result = json.loads((tmp_path / "train_toy.json").read_text())
    summary, selected = result["summary"], result["summary"]["selected"]
    other = {"ema": "raw", "raw": "ema"}[selected]
    assert load_model(str(tmp_path / "toy_dit.safetensors")).config == ToyDiTConfig(dim=16, depth=1, heads=1)
    assert (tmp_path / f"toy_dit_{other}.safetensors").is_file() and (tmp_path / "toy_clips.png").is_file()
    assert json.loads((tmp_path / "train_config.json").read_text())["selected"] == selected
    assert [r["weights"] for r in result["rows"]] == ["ema", "raw"] and len(result["rows"][0]["test_clips"]) == 2
    assert summary["target_met"] == (summary["test_seed0_identity"] >= 0.99 and summary["test_seed0_absent_frames"] == 0)
    assert summary["long_videos"]["videos"] == 1 and len(summary["long_videos"]["per_video"]) == 1
    assert result["record"]["options"]["train_argv"][-2:] == ["--heads", "1"]
    with pytest.raises(SystemExit):  # the script owns --minutes
        train_toy.main(["--out", str(tmp_path), "--", "--minutes", "3"])
    with pytest.raises(train_toy.OutOfTime):  # the long videos stop at the budget's end
        train_toy.long_videos(trained_like(ToyDiTConfig(dim=16, depth=1, heads=1)), 1, 20, torch.device("cpu"), deadline=0.0)


def test_device_script_trains_several_recipes_at_once_and_keeps_the_selected_candidate(tmp_path):
    """--recipe: each recipe trains in its own process; the selection runs over every recipe's EMA and raw weights, and
    the selected candidate's own bytes become toy_dit.safetensors (its recipe's other weights beside it)."""
    out, work = tmp_path / "out", tmp_path / "work"
    args = ["--out", str(out), "--work", str(work), "--device", "cpu", "--budget-minutes", "3", "--prompts", "1",
            "--val-prompts", "2", "--seeds", "1", "--long-videos", "0", "--recipe", "--seed 1 --steps 3 --batch 1 --dim 16 --depth 1 --heads 1",
            "--", "--steps", "2", "--batch", "1", "--dim", "16", "--depth", "1", "--heads", "1"]
    assert train_toy.main(args) == 0
    result = json.loads((out / "train_toy.json").read_text())
    summary, selected = result["summary"], result["summary"]["selected"]
    assert [r["weights"] for r in result["rows"]] == ["r0-ema", "r0-raw", "r1-ema", "r1-raw"]
    assert [r["train"]["steps"] for r in summary["recipes"]] == [2, 3] and summary["recipes"][1]["train_argv"][:2] == ["--seed", "1"]
    key = {r["weights"]: (r["validation"]["identity_mean"], -r["validation"]["absent_frames"], r["weights"].endswith("ema"), -k)
           for k, r in enumerate(result["rows"])}
    assert selected == max(key, key=key.get)
    recipe, kind = selected.split("-")
    other = {"ema": "raw", "raw": "ema"}[kind]
    source = work / recipe / ("toy_dit.safetensors" if kind == "ema" else "toy_dit_raw.safetensors")
    assert (out / "toy_dit.safetensors").read_bytes() == source.read_bytes()
    twin = work / recipe / ("toy_dit.safetensors" if other == "ema" else "toy_dit_raw.safetensors")
    assert (out / f"toy_dit_{other}.safetensors").read_bytes() == twin.read_bytes()
    assert json.loads((out / "train_config.json").read_text())["args"]["steps"] == {"r0": 2, "r1": 3}[recipe]
    with pytest.raises(SystemExit):  # a recipe may not set what the script owns
        train_toy.main(["--out", str(out), "--recipe", "--device cpu"])


def test_the_shipped_weights_are_small_and_load():
    from toyworld.demo import WEIGHTS

    assert WEIGHTS.stat().st_size < 20e6  # issue 9: <= 20 MB of fp16 weights
    model = load_model(str(WEIGHTS))
    assert sum(p.numel() for p in model.parameters()) > 1e6


def test_training_continues_from_init_weights_at_their_size(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert train_main(["--out", str(first), "--steps", "1", "--batch", "2", "--device", "cpu", "--dim", "32", "--depth", "1",
                       "--heads", "2", "--save-raw"]) == 0
    start = load_model(str(first / "toy_dit_raw.safetensors"))
    # lr 0: the weights must come back as loaded (the size comes from the file, not from --dim)
    assert train_main(["--out", str(second), "--steps", "1", "--batch", "2", "--device", "cpu", "--lr", "0", "--save-raw",
                       "--init", str(first / "toy_dit_raw.safetensors")]) == 0
    end = load_model(str(second / "toy_dit_raw.safetensors"))
    assert end.config == start.config
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), end.state_dict().values()))
