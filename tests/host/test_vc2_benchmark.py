"""benchmarks/vc2_node_gpu.py end to end at a tiny size on the CPU: a random VC2-layout checkpoint written, loaded by
MigaVC2Loader, prompts encoded by its text encoder, MigaSampler run in miga and fifo mode, the official run's JSON
stored in the record. The GPU run uses the same code at full size (issue 10)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]
FRAMES, STEPS, F0 = 9, 8, 8


def test_the_vc2_benchmark_writes_both_rows_and_the_official_json(tmp_path):
    out, official = tmp_path / "vc2.json", tmp_path / "official.json"
    official.write_text(json.dumps({"s_per_frame": 1.25, "peak_vram_mib": 4321}))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "vc2_node_gpu.py"), "--comfyui", str(harness.comfyui_path()), "--tiny",
           "--device", "cpu", "--out", str(out), "--width", "64", "--height", "64", "--frames", str(FRAMES), "--steps", str(STEPS),
           "--window-length", str(F0), "--unified-steps", "3", "--num-guidance", "2", "--official-json", str(official)]
    done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    rec, rows = data["record"], data["rows"]
    assert data["benchmark"] == "vc2_node" and rec["script"] == "benchmarks/vc2_node_gpu.py"
    assert rec["official_fifo"] == {"s_per_frame": 1.25, "peak_vram_mib": 4321}  # stored verbatim
    assert rec["unet_dtype"] == "float32" and rec["file_dtype"] == "float32"  # CPU: ComfyUI keeps fp32
    assert rec["context_shape"] == [1, 77, 64]  # the tiny text tower's width, through CLIPTextEncode's call
    # parameters of the tiny text tower (3 layers of width 64, MLP 128): every tensor of the file was drawn
    c, mlp = 64, 128
    layer = 4 * c + 3 * c * c + 3 * c + c * c + c + mlp * c + mlp + c * mlp + c
    assert rec["parameters"]["clip"] == 49408 * c + 77 * c + 2 * c + c * c + 1 + 3 * layer
    assert [r["mode"] for r in rows] == ["miga", "fifo"]
    miga, fifo = rows
    for r in rows:
        assert r["num_latents"] == FRAMES and r["steps"] == STEPS and r["window_length"] == F0
        assert math.isclose(r["model_calls_per_frame"], r["model_calls"] / FRAMES, abs_tol=1e-3)
        assert math.isclose(r["timing"]["s_per_frame"], r["timing"]["sampling_s"] / FRAMES, rel_tol=0.01, abs_tol=1e-3)
        assert r["peak_rss_gib"] >= r["rss_gib"] > 0
    assert fifo["model_calls"] == fifo["windows_planned"] and fifo["reflection_n_all"] == 0  # FIFO: no search, no guidance
    assert fifo["zigzag_width"] == 1 and fifo["unified_steps"] == 0 and fifo["sampler"] == "euler_ancestral"
    assert miga["zigzag_width"] == 4 and miga["unified_steps"] == 3 and miga["num_guidance"] == 2
    assert miga["model_calls"] >= miga["windows_planned"] and miga["reflection_n_all"] > 0  # self-reflection ran
