"""benchmarks/wan_long_gpu.py at its tiny size on the CPU (issue 11): the sampler-to-MP4 workflow and the core
VAE Decode -> Create Video -> Save Video row run through ComfyUI's executor and the JSON says what the GPU run will say.

The script runs as its own process (it starts ComfyUI itself, and the core row in a child, as on the device machine).
"""

import json
import subprocess
import sys
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def test_tiny_workflow_writes_every_frame_and_its_phase_peaks(tmp_path):
    out = tmp_path / "wan_long_tiny.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "wan_long_gpu.py"), "--comfyui", str(harness.comfyui_path()), "--tiny",
           "--device", "cpu", "--width", "32", "--height", "16", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert '"planned_calls": 16' in proc.stdout and "chosen: T=4 unified_steps=0" in proc.stdout  # the estimate comes first
    data = json.loads(out.read_text())
    rec = data["record"]
    assert data["benchmark"] == "wan_long" and rec["script"] == "benchmarks/wan_long_gpu.py" and rec["options"]["tiny"] is True
    miga, core = data["rows"]
    assert miga["path"] == "miga_sampler_to_mp4" and core["path"] == "core_vae_decode_create_save_video"

    from miga_core import GuidanceOptions, MigaConfig, ReflectionOptions, plan_run

    plan = plan_run(MigaConfig(window_length=21, zigzag_width=7, unified_steps=0), 4, 22, guidance=GuidanceOptions(4),
                    reflection=ReflectionOptions(threshold=0.01))
    assert miga["completed"] and miga["planned_calls"] == plan.total_calls
    assert miga["model_calls"] == plan.total_calls + miga["reflection"]["n_eval"] * plan.search_windows  # measured in the graph
    assert miga["latent_shape"] == [1, 16, 22, 2, 4] and miga["latent_finite"]
    assert miga["mp4_frames"] == 85 and core["mp4_frames"] == 85  # decoded and counted
    assert core["completed"] and core["latent"] == "the miga row's" and core["images_shape"] == [85, 16, 32, 3]
    rss = miga["peak_rss_gib"]
    assert set(rss) == {"loaders", "sampling", "save", "workflow"} and rss["workflow"] == max(rss["sampling"], rss["save"])
    assert set(core["peak_rss_gib"]) == {"loaders", "decode", "save", "workflow"}
    assert "peak_vram_gib" not in miga  # CPU: no VRAM figures, never zeros

    from benchmarks import report

    text = report.wan_long_text(data)
    assert "No VRAM measured" in text and "`miga_sampler_to_mp4`: 85 of 85 frames" in text
    gpu = dict(miga, peak_vram_gib={"sampling": 4.0, "save": 5.5, "workflow": 5.5})
    assert "HIGHER than sampling alone: 5.5 GiB against 4.0 GiB (+1.50 GiB" in report.wan_long_verdict(gpu)
    gpu["peak_vram_gib"] = {"sampling": 4.0, "save": 3.0, "workflow": 4.0}
    assert "no higher than sampling alone (4.0 GiB" in report.wan_long_verdict(gpu)
    assert miga["save_card"] == "sampling-peak" and "save_card_gib" not in miga  # CPU: no card to shrink
    gpu.update(save_card="sampling-peak", save_card_gib=4.0, vram_held_at_phase_end_gib={"sampling": 2.5})
    gpu["peak_vram_gib"] = {"sampling": 4.0, "save": 6.0, "workflow": 6.0}
    assert "as on a card of 4.0 GiB" in report.wan_long_verdict(gpu) and "peaked 3.50 GiB above" in report.wan_long_verdict(gpu)


def test_the_save_phase_card_is_comfyuis_reserve_and_is_given_back(comfy):
    """``--save-card sampling-peak``: ComfyUI's reserve takes all of the device but the given bytes, then is restored."""
    import comfy.model_management as mm

    from benchmarks import wan_long_gpu

    before = mm.EXTRA_RESERVED_VRAM
    total = mm.get_total_memory(mm.get_torch_device())
    wan_long_gpu._card_of(2**30)
    try:
        assert mm.EXTRA_RESERVED_VRAM == total - 2**30 and wan_long_gpu.STATE["save_card_gib"] == 1.0
    finally:
        wan_long_gpu._whole_card()
    assert mm.EXTRA_RESERVED_VRAM == before


def test_resume_keeps_rows_of_the_same_options_and_code_only(tmp_path):
    out = tmp_path / "wan_long_resume.json"
    base = [sys.executable, str(ROOT / "benchmarks" / "wan_long_gpu.py"), "--comfyui", str(harness.comfyui_path()), "--tiny",
            "--device", "cpu", "--width", "32", "--height", "16", "--out", str(out)]

    def run(*extra, rc=0):
        proc = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert proc.returncode == rc, proc.stdout[-2000:] + proc.stderr[-4000:]
        return proc.stderr, json.loads(out.read_text())

    _, first = run("--rows", "miga")
    _, second = run("--rows", "core", "--resume")  # the miga row is kept as written, the core row is added
    assert [r["path"] for r in second["rows"]] == ["miga_sampler_to_mp4", "core_vae_decode_create_save_video"]
    assert second["rows"][0] == first["rows"][0]
    log, third = run("--rows", "core", "--resume", "--decode-chunk", "2", rc=1)  # other options: refused, the file kept
    assert "options.decode_chunk differ" in log and third == second
