"""benchmarks/wan_perf_gpu.py at its tiny size on the CPU (issue 13): every kind of row runs through ComfyUI and the
JSON says what the GPU run will say.

The script runs as its own process (it starts ComfyUI itself, as on the device machine). Rows of the paper's steps
are stopped after 3 windows (``--stop-after-windows``, not by time), so every status below is fixed by the options;
nothing here depends on the machine's speed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def test_tiny_run_rows_and_measured_calls_equal_the_plan(tmp_path):
    out = tmp_path / "wan_perf_tiny.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "wan_perf_gpu.py"), "--comfyui", str(harness.comfyui_path()), "--tiny",
           "--device", "cpu", "--out", str(out), "--peer-steps", "3", "--peer-repeats", "2", "--few-step", "4:7:0",
           "--few-step-repeats", "1", "--stop-after-windows", "3", "--min-partial-s", "0", "--budget-s", "100000",
           "--compile-estimate-s", "1e9", "--paper-sizes", "32x16"]  # a compile that can never fit: the row is recorded as skipped, with its estimate
    env = {**os.environ, "MIGA_PIPELINE": "1"}  # pipelined on the CPU too: the "one call at a time" row is then its A/B
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    data = json.loads(out.read_text())
    rec = data["record"]
    assert data["benchmark"] == "wan_perf" and rec["script"] == "benchmarks/wan_perf_gpu.py"
    assert rec["options"]["tiny"] is True and "benchmarks/wan_perf_gpu.py" in rec["code"]["sha256"]
    rows = {r["name"]: r for r in data["rows"]}
    assert list(rows) == ["fifo T22", "miga no DCE T22", "miga full T22", "wan21-official T22", "fifo T22 32x16", "miga no DCE T22 32x16",
                          "miga full T22 32x16", "wan21-official T22 32x16", "core context windows 3 steps",
                          "fifo T4 cfg1", "miga full T4 cfg1", "miga full T4 cfg1 one call at a time", "memory 41f T4 cfg1", "memory 121f T4 cfg1", "miga full T4 cfg1 compiled"]

    from miga_core import (
        GuidanceOptions,
        MigaConfig,
        ReflectionOptions,
        plan_run,
        preset,
    )

    N = 31  # 121 pixel frames
    plans = {
        "fifo T22": plan_run(MigaConfig(window_length=21, zigzag_width=1, unified_steps=0, mode="fifo"), 22, N),
        "miga no DCE T22": plan_run(preset("wan21-paper")[0], 22, N),
        "miga full T22": plan_run(preset("wan21-paper")[0], 22, N, guidance=GuidanceOptions(4), reflection=ReflectionOptions()),
        "wan21-official T22": plan_run(preset("wan21-official")[0], 22, N, guidance=preset("wan21-official")[1],
                                       reflection=preset("wan21-official")[2], has_initial_clip=True),
    }
    for name, plan in [*plans.items(), *((f"{k} 32x16", p) for k, p in plans.items())]:  # stopped rows: 3 windows measured
        row = rows[name]
        assert row["status"] == "partial" and row["planned_calls"] == plan.total_calls, name
        run = row["timing"]["runs"][0]
        assert run["windows_done"] == 3 and run["dit_forwards"] >= 3 and 0 < run["dit_fraction"] <= 1, name
        assert run["projected_s_per_pixel_frame"] > 0, name
        assert 0 < run["to_last_forward_end_s"] <= run["to_last_window_s"], name  # on the CPU the forwards end before the mark

    few = rows["miga full T4 cfg1"]  # completed: every model call of the run is counted twice, by the core and by ComfyUI
    plan = plan_run(MigaConfig(window_length=21, zigzag_width=7, unified_steps=0), 4, N, guidance=GuidanceOptions(4),
                    reflection=ReflectionOptions())
    assert few["status"] == "completed" and few["finite"]
    assert few["planned_calls"] == plan.total_calls == few["windows_planned"]
    assert few["model_calls"] == plan.total_calls + few["reflection"]["n_eval"] * plan.search_windows == few["dit_forwards"]
    assert few["plan_space"]["with_dce"]["7"]["accepted_unified_steps"] == [0]
    assert "zigzag_width >= 7" in few["plan_space"]["with_dce"]["1"]["refused_next"]
    assert rows["fifo T4 cfg1"]["status"] == "refused" and "at least 21 steps" in rows["fifo T4 cfg1"]["refusal"]
    one = rows["miga full T4 cfg1 one call at a time"]  # the same run not pipelined: the same latents, bit for bit
    assert one["pipelined"] is False
    assert one["status"] == "completed" and one["model_calls"] == few["model_calls"] and one["max_abs_diff_vs_ref"] == 0.0

    peer = rows["core context windows 3 steps"]  # 31 latents in 21-latent windows overlapping by 8: 2 windows per step
    assert peer["status"] == "completed" and peer["planned_calls"] == 3 * 2 == peer["dit_forwards"]
    assert len(peer["timing"]["runs"]) == 2 and "repeat_spread" in peer["timing"]

    assert rows["miga full T4 cfg1 compiled"]["status"] == "skipped"

    short, long = rows["memory 41f T4 cfg1"], rows["memory 121f T4 cfg1"]  # the longest stops after the shorter's whole run
    cap = plan_run(MigaConfig(window_length=21, zigzag_width=7, unified_steps=0), 4, 11, guidance=GuidanceOptions(4),
                   reflection=ReflectionOptions()).total_calls
    assert short["status"] == "completed" and short["width"] == 64 and long["status"] == "partial"
    assert long["timing"]["runs"][0]["windows_done"] == cap and f"stopped after {cap} planned windows" in long["note"]

    from benchmarks import report

    text = report.wan_perf_text(data)
    assert f"`miga full T4 cfg1`: {few['model_calls']} measured model calls" in text and ": equal;" in text
    assert "core context windows at 3 steps (projected)" in text and "Not measured for lack of time" in text
    assert "Peak VRAM by video length (64x32, T=4, CFG 1.0): 41 frames n/a GiB; 121 frames n/a GiB (stopped after" in text
    assert one["ref"] == "miga full T4 cfg1"  # the pipelining verdict needs it
    assert "Pipelined calls (model call k+1 queued before the host steps window k): `miga full T4 cfg1` " in text
    assert "latents bit-identical." in text


def test_torch_compile_model_keeps_our_path_working_without_recompiles_in_the_second_run(tmp_path):
    """ComfyUI's TorchCompileModel (inductor, here on the CPU) on the tiny model: the MigaSampler run works, equals the
    eager run, and its second run compiles no new frame (window shapes repeat: no recompile after the first run)."""
    out = tmp_path / "wan_perf_compile.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "wan_perf_gpu.py"), "--comfyui", str(harness.comfyui_path()), "--tiny",
           "--device", "cpu", "--out", str(out), "--groups", "few_step,compile", "--few-step", "8:7:3", "--few-step-repeats", "1",
           "--compile-estimate-s", "60", "--budget-s", "100000"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = {r["name"]: r for r in json.loads(out.read_text())["rows"]}
    compiled = rows["miga full T8 cfg1 compiled"]
    assert compiled["status"] == "completed", compiled.get("error")
    first, second = compiled["dynamo_per_run"]
    assert first["frames_compiled"] > 0 and second["frames_compiled"] == 0  # compiled in run 1, reused in run 2
    assert compiled["max_abs_diff_vs_ref"] == 0.0 and compiled["model_calls"] == rows["miga full T8 cfg1"]["model_calls"]
    from benchmarks import report

    assert "warm compiled run " in report.wan_perf_findings(json.loads(out.read_text()))  # the speedup verdict (needs "ref")
