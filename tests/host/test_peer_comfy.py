"""The peer benchmark (benchmarks/peer_comfy.py) runs through ComfyUI's executor at a tiny size and writes every row.

The script starts its own ComfyUI, so it runs in a subprocess (this process may already host one). The toy model is a
small random ToyDiT written here (``--toy-weights``): the plumbing, not the model's quality, is under test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import harness
import torch

ROOT = Path(__file__).resolve().parents[2]
PEER_ROWS = ("MIGA (default profile)", "MIGA (official profile)", "FIFO-Diffusion", "context windows (defaults)",
             "context windows (best of sweep)", "chained clips")


def tiny_weights(path: Path) -> Path:
    from toyworld.model import ToyDiT, ToyDiTConfig, save_model

    torch.manual_seed(0)
    model = ToyDiT(ToyDiTConfig(size=32, patch=8, dim=16, depth=1, heads=1))
    for layer in (model.mod_out, model.out):  # zero at init: the video would stay noise
        torch.nn.init.normal_(layer.weight, std=0.05)
    save_model(model, str(path), dtype=torch.float32)
    return path


def test_the_peer_benchmark_writes_every_row_with_finite_metrics_for_both_settings(tmp_path):
    out = tmp_path / "peer.json"
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(harness.PYCACHE_DIR))  # keep the ComfyUI checkout free of __pycache__
    cmd = [sys.executable, "benchmarks/peer_comfy.py", "--comfyui", str(harness.comfyui_path()), "--device", "cpu", "--tiny",
           "--toy-weights", str(tiny_weights(tmp_path / "tiny.safetensors")), "--threads", "1", "--out", str(out)]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "peer_comfy" and data["record"]["comfyui"] == "0.8.0"
    frames, videos = data["record"]["options"]["num_frames"], 2  # --tiny: 2 prompts x 1 seed
    sweep = [r for r in data["rows"] if r["group"] == "sweep"]
    assert [r["labels"][0] for r in sweep] == data["record"]["sweep"]["configs"] and len(sweep) == 2
    for setting in ("1 prompt", "2 prompts"):
        rows = [r for r in data["rows"] if r["group"] == "peer" and r["setting"] == setting]
        assert sorted(label for r in rows for label in r["labels"]) == sorted(PEER_ROWS)
        for row in rows:
            for key, values in row["per_video"].items():
                assert len(values) == videos and all(math.isfinite(v) for v in values), (row["labels"], key)
            assert row["network_calls"] > 0 and row["timing"]["seconds_per_frame"] > 0 and row["timing"]["peak_memory_gib"] > 0
            if setting == "2 prompts":
                assert len(row["switch_error_frames"]) == videos
        by = {label: r for r in rows for label in r["labels"]}
        assert by["context windows (defaults)"]["videos_per_graph"] == 1 and by["MIGA (default profile)"]["videos_per_graph"] == videos
        assert by["MIGA (default profile)"]["reflection"]["n_all"] > 0 and "reflection" in by["MIGA (official profile)"]
        # the official profile's refinement pass and uni_pc make other windows than the default profile
        assert by["MIGA (official profile)"]["windows"] != by["MIGA (default profile)"]["windows"]
        assert by["FIFO-Diffusion"]["reflection"]["n_all"] == 0
        # the default row ran the pack's default profile: its windows are that plan's, plus its self-reflection searches
        from benchmarks.peer_comfy import default_profile
        from miga_core import plan_run

        config, guidance, reflection = default_profile(data["record"]["options"]["steps"])
        plan = plan_run(config, data["record"]["options"]["steps"], frames, guidance=guidance, reflection=reflection)
        row = by["MIGA (default profile)"]
        assert row["windows"] == plan.total_calls + row["reflection"]["n_eval"] * plan.search_windows
        # counted at the network: 2 windows (or 2 clips) of 16 frames, 16 steps, cond and uncond, over 24 frames
        steps = data["record"]["options"]["steps"]
        for label in ("context windows (defaults)", "chained clips"):
            assert by[label]["frame_evals_per_frame"] == round(2 * 16 * steps * 2 / frames, 3), label
        assert by["context windows (best of sweep)"]["method"]["config"] in [r["method"]["config"] for r in sweep]
    from benchmarks import report

    text = report.peer_text(data)
    assert "Where MIGA beats core context windows" in text and "not measured" not in text


def test_the_two_parts_run_apart_make_the_whole_table(tmp_path):
    """--part core and --part miga (two device calls on a GPU): each file holds only its rows, and the report joins them
    into the table a whole run makes, every row present in both settings."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(harness.PYCACHE_DIR))
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    datas = []
    for part in ("core", "miga"):
        out = tmp_path / f"peer_{part}.json"
        cmd = [sys.executable, "benchmarks/peer_comfy.py", "--comfyui", str(harness.comfyui_path()), "--device", "cpu", "--tiny",
               "--toy-weights", str(weights), "--threads", "1", "--part", part, "--out", str(out)]
        run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-4000:]
        datas.append(json.loads(out.read_text()))
    core, miga = datas
    assert {label for r in miga["rows"] for label in r["labels"]} == {"MIGA (default profile)", "MIGA (official profile)", "FIFO-Diffusion"}
    assert not any(r["group"] == "sweep" for r in miga["rows"]) and any(r["group"] == "sweep" for r in core["rows"])
    from benchmarks import report

    merged = report.merge_peer([core, miga])
    for setting in ("1 prompt", "2 prompts"):
        labels = [label for r in merged["rows"] if r["group"] == "peer" and r["setting"] == setting for label in r["labels"]]
        assert sorted(labels) == sorted(PEER_ROWS), setting
    text = report.peer_text(merged)
    assert "Where MIGA beats core context windows" in text and "not measured" not in text and "not run" not in text
