"""A 2001-frame Wan2.1-1.3B video from MigaSampler to an MP4 in ONE ComfyUI workflow, and core VAE Decode beside it (issue 11).

    python benchmarks/wan_long_gpu.py --comfyui .comfyui                 # benchmarks/results/wan_long_cuda.json (one device call)
    python benchmarks/wan_long_gpu.py --comfyui /path/to/ComfyUI --tiny --device cpu --out /tmp/wan_long_tiny.json   # smoke test
    python benchmarks/wan_long_gpu.py --comfyui .comfyui --rows core --resume   # only the core row, kept beside a row already written

Row ``miga_sampler_to_mp4``: one API-format prompt, validated as POST /prompt does and run by ComfyUI's own
``execution.PromptExecutor`` (``benchmarks/peer_comfy.py``'s ``Comfy``):

    WanLongRandomModel (the real Wan2.1-T2V-1.3B architecture, random bf16 weights: wan_node_gpu's ``random_wan``)
    WanLongRandomVAE (the real Wan2.1 VAE architecture, random weights: wan_save_gpu's ``random_vae``)
    WanLongRandomConditioning x2 -> WanLongMark (model, vae pass through; the sampling phase starts here)
    -> MigaSampler (--frames at --width x --height, few-step: T=--steps, CFG 1, window 21, MIGA Long-Range Guidance and
       Self-Reflection) -> WanLongProbe (latent passes through; the sampling phase ends here) -> MigaSaveVideo (MP4)

The benchmark's nodes only build random weights and read the meters: ``torch.cuda.max_memory_allocated`` and the
process's peak RSS (VmHWM, reset through /proc/self/clear_refs) are read and reset at each phase boundary, so the row
holds the peak of the loaders (random weights are made on the GPU: a benchmark artefact), of sampling alone, of the save
phase, and ``workflow`` = max(sampling, save): from the sampler's start to the finished MP4. With ``--save-card
sampling-peak`` (default) ComfyUI's memory management runs the save phase as on a card whose memory is the sampling
phase's peak (its reserve takes the rest of the device): whatever it needs beyond what is free there, it must make by
unloading the diffusion model, as it would on such a card; ``whole`` leaves it the whole device (it then keeps the
diffusion model loaded, and the save phase's peak includes it). The MP4's frames are counted by
decoding it with PyAV.

Row ``core_vae_decode_create_save_video``: the same latent (the one the first row made, else a seeded random latent of
the same shape) through core VAE Decode -> Create Video -> Save Video (h264 MP4), in a child process (this script,
``--core-child``) with a time limit (``--core-timeout-s`` and what ``--deadline-s`` leaves). A WanLongImageProbe between
VAE Decode and Create Video writes the decode phase's peaks to a status file, so a run stopped by the limit or by an
out-of-memory error still records what it reached; OOM, other failures and timeouts are data, never a crash.

Before anything starts the script prints the plan's model calls and a time estimate for T=4..8 (seconds per CFG-1 model
call from benchmarks/results/wan_node_cuda.json, halved: that run used CFG batch 2; decode seconds per latent:
``--decode-s-per-latent``, a guess until measured) and refuses to start on CUDA when the chosen row's expected time
exceeds ``--budget-s``. Weights are random: the video is noise-like; what is measured is memory, frames and time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from benchmarks.wan_node_gpu import TINY, WAN_1_3B, comfyui_version, random_wan  # noqa: E402
from benchmarks.wan_save_gpu import frames_in, peak_rss_gib, peak_rss_reset, random_vae  # noqa: E402

SCRIPT = "benchmarks/wan_long_gpu.py"
PRIOR = ROOT / "benchmarks" / "results" / "wan_node_cuda.json"
MIGA_ROW, CORE_ROW = "miga_sampler_to_mp4", "core_vae_decode_create_save_video"
ROWS = {"miga": MIGA_ROW, "core": CORE_ROW}
STATE: dict = {}  # what the benchmark's nodes measured during the prompt being run


# ---------------------------------------------------------------- plan and time estimate (no ComfyUI)


def latents_of(frames: int) -> int:
    """Wan2.1's latent frames of ``frames`` video frames (4n+1)."""
    return (frames - 1) // 4 + 1


def plan(args: argparse.Namespace, steps: int, unified_steps: int):
    """plan_run of the sampler row's options at ``steps``/``unified_steps`` (raises MigaError where it refuses)."""
    from miga_core import GuidanceOptions, MigaConfig, ReflectionOptions, plan_run

    return plan_run(MigaConfig(window_length=args.window, zigzag_width=args.zigzag_width, unified_steps=unified_steps),
                    steps, latents_of(args.frames), guidance=GuidanceOptions(args.guidance) if args.guidance else None,
                    reflection=ReflectionOptions(threshold=args.reflection_threshold) if args.reflection_threshold >= 0 else None)


def prior_s_per_call(path: pathlib.Path = PRIOR) -> tuple[float, str]:
    """Seconds per CFG-1 model call at wan_node_cuda.json's size: its measured s per call, halved when it ran CFG != 1
    (a CFG batch of 2 per call). 1.0 s without the file."""
    if not path.exists():
        return 1.0, "no wan_node_cuda.json: 1.0 s per call assumed"
    data = json.loads(path.read_text())
    s, cfg = data["rows"][0]["timing"]["s_per_model_call"], data["record"]["options"]["cfg"]
    per = s / 2 if cfg != 1.0 else s
    return round(per, 4), f"{path.name}: {s} s per call at CFG {cfg} (batch {2 if cfg != 1.0 else 1}), so {per:.3f} s at CFG 1"


def estimate(args: argparse.Namespace, the_plan, s_per_call: float) -> dict:
    """Seconds of the sampler row: expected (no self-reflection search fires: wan_node_cuda.json's random-weight run
    measured exactly its planned calls) and worst case (every check searches), plus decode and startup."""
    extra = the_plan.num_checks * the_plan.search_windows
    decode = args.decode_s_per_latent * latents_of(args.frames)
    fixed = decode + args.startup_s
    return {"planned_calls": the_plan.total_calls, "worst_case_calls": the_plan.total_calls + extra,
            "expected_s": round(the_plan.total_calls * s_per_call + fixed), "worst_case_s": round((the_plan.total_calls + extra) * s_per_call + fixed),
            "decode_s": round(decode)}


def estimates(args: argparse.Namespace, s_per_call: float) -> list[dict]:
    """For T = 4..8 at --zigzag-width: the unified_steps plan_run accepts and, at --unified-steps (else the largest
    accepted), the plan's calls and the time estimate."""
    from miga_core import MigaError

    out = []
    for steps in range(4, 9):
        accepted = []
        for u in range(steps + 1):
            try:
                plan(args, steps, u)
                accepted.append(u)
            except MigaError:
                pass
        row = {"steps": steps, "accepted_unified_steps": accepted}
        if accepted:
            u = args.unified_steps if args.unified_steps in accepted else accepted[-1]
            row.update({"unified_steps": u, **estimate(args, plan(args, steps, u), s_per_call)})
        out.append(row)
    return out


# ---------------------------------------------------------------- the benchmark's nodes


def _cuda() -> bool:
    return STATE.get("device", "cpu").startswith("cuda")


def _phase(name: str) -> None:
    """Close the phase running since the last call: record its peak VRAM / RSS and time, then reset the meters."""
    now = time.perf_counter()
    if _cuda():
        torch.cuda.synchronize()
        STATE["peak_bytes"][name] = torch.cuda.max_memory_allocated()
        STATE["vram"][name] = round(STATE["peak_bytes"][name] / 2**30, 2)
        STATE["vram_now"][name] = round(torch.cuda.memory_allocated() / 2**30, 2)
        torch.cuda.reset_peak_memory_stats()
    STATE["rss"][name] = peak_rss_gib()
    STATE["seconds"][name] = round(now - STATE["t"], 1)
    peak_rss_reset()
    STATE["t"] = time.perf_counter()
    if STATE.get("status"):
        pathlib.Path(STATE["status"]).write_text(json.dumps({k: STATE[k] for k in ("vram", "vram_now", "rss", "seconds")}))


def _card_of(nbytes: int) -> None:
    """From now on ComfyUI's memory management acts as on a card of ``nbytes`` (``--save-card sampling-peak``): its
    reserve (``EXTRA_RESERVED_VRAM``, what ``--reserve-vram`` sets) takes the rest of the device, so a load that needs
    room unloads other models as it would there. Undone by :func:`_whole_card`."""
    import comfy.model_management as mm

    STATE.setdefault("reserved_before", mm.EXTRA_RESERVED_VRAM)
    total = mm.get_total_memory(mm.get_torch_device())
    mm.EXTRA_RESERVED_VRAM = max(0, int(total - nbytes))
    STATE["save_card_gib"] = round(nbytes / 2**30, 2)


def _whole_card() -> None:
    import comfy.model_management as mm

    if "reserved_before" in STATE:
        mm.EXTRA_RESERVED_VRAM = STATE.pop("reserved_before")


def start_meters(status: str | None = None) -> None:
    """Reset the meters at the start of a prompt (``status``: a file rewritten at each phase boundary)."""
    STATE.update({"vram": {}, "vram_now": {}, "peak_bytes": {}, "rss": {}, "seconds": {}, "status": status})
    if _cuda():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    peak_rss_reset()
    STATE["t"] = time.perf_counter()


def helper_nodes() -> dict:
    """The benchmark's nodes (module doc), ComfyUI's classic node classes."""
    import comfy.sd

    class WanLongRandomModel:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"tiny": ("BOOLEAN", {"default": False}), "seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

        RETURN_TYPES = ("MODEL",)
        FUNCTION = "load"
        CATEGORY = "benchmark"

        def load(self, tiny, seed):
            device = STATE["device"]
            dtype = torch.float32 if device == "cpu" else torch.bfloat16
            sd = random_wan(TINY if tiny else WAN_1_3B, dtype, device, seed)
            return (comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": dtype}),)

    class WanLongRandomVAE:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"base_width": ("INT", {"default": 96, "min": 8, "max": 96}), "seed": ("INT", {"default": 0, "min": 0})}}

        RETURN_TYPES = ("VAE",)
        FUNCTION = "load"
        CATEGORY = "benchmark"

        def load(self, base_width, seed):
            return (random_vae(base_width, seed),)

    class WanLongRandomConditioning:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"seed": ("INT", {"default": 1, "min": 0}), "text_len": ("INT", {"default": 512, "min": 1, "max": 512})}}

        RETURN_TYPES = ("CONDITIONING",)
        FUNCTION = "encode"
        CATEGORY = "benchmark"

        def encode(self, seed, text_len):
            g = torch.Generator().manual_seed(seed)
            return ([[torch.randn(1, text_len, 4096, generator=g) * 0.1, {}]],)

    class WanLongMark:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"vae": ("VAE",)}, "optional": {"model": ("MODEL",)}}

        RETURN_TYPES = ("MODEL", "VAE")
        FUNCTION = "mark"
        CATEGORY = "benchmark"

        def mark(self, vae, model=None):
            _phase("loaders")
            return (model, vae)

    class WanLongProbe:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"samples": ("LATENT",)}, "optional": {"report": ("STRING", {"forceInput": True})}}

        RETURN_TYPES = ("LATENT",)
        FUNCTION = "probe"
        CATEGORY = "benchmark"

        def probe(self, samples, report=None):
            _phase("sampling")
            if _cuda() and STATE.get("save_card") == "sampling-peak":
                _card_of(STATE["peak_bytes"]["sampling"])
            STATE["report"] = json.loads(report) if report else None
            latent = samples["samples"]
            STATE["latent_shape"] = list(latent.shape)
            STATE["latent_finite"] = bool(torch.isfinite(latent).all())
            if STATE.get("keep_latent"):
                torch.save(latent.detach().cpu(), STATE["keep_latent"])
            STATE["t"] = time.perf_counter()  # saving the latent for the core row is not part of the workflow
            return (samples,)

    class WanLongLatentFile:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"path": ("STRING", {"default": ""})}}

        RETURN_TYPES = ("LATENT",)
        FUNCTION = "load"
        CATEGORY = "benchmark"

        def load(self, path):
            return ({"samples": torch.load(path)},)

    class WanLongImageProbe:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"images": ("IMAGE",)}}

        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "probe"
        CATEGORY = "benchmark"

        def probe(self, images):
            _phase("decode")
            STATE["images_shape"] = list(images.shape)
            return (images,)

    return {c.__name__: c for c in (WanLongRandomModel, WanLongRandomVAE, WanLongRandomConditioning, WanLongMark, WanLongProbe,
                                    WanLongLatentFile, WanLongImageProbe)}


# ---------------------------------------------------------------- the two workflows (API format)


def miga_prompt(args: argparse.Namespace) -> dict:
    """The sampler-to-MP4 workflow (module doc)."""
    from benchmarks.peer_comfy import Graph

    g = Graph()
    model = g.add("WanLongRandomModel", tiny=args.tiny, seed=0)
    vae = g.add("WanLongRandomVAE", base_width=8 if args.tiny else 96, seed=0)
    text_len = 8 if args.tiny else 512
    positive = g.add("WanLongRandomConditioning", seed=1, text_len=text_len)
    negative = g.add("WanLongRandomConditioning", seed=2, text_len=text_len)
    mark = g.add("WanLongMark", vae=[vae, 0], model=[model, 0])
    links = {}
    if args.guidance:
        links["guidance"] = [g.add("MigaGuidanceOptions", num_guidance=args.guidance, positions="even"), 0]
    if args.reflection_threshold >= 0:
        links["reflection"] = [g.add("MigaReflectionOptions", threshold=args.reflection_threshold, num_eval=4, num_ref=8, num_candidates=4,
                                     score_on="latent", num_guide=-1, judge_position=-1, phase="stage1"), 0]
    sampler = g.add("MigaSampler", model=[mark, 0], positive=[positive, 0], negative=[negative, 0], width=args.width, height=args.height,
                    num_pixel_frames=args.frames, batch_size=1, seed=0, steps=args.steps, cfg=1.0, scheduler="simple", mode="miga",
                    window_length=args.window, zigzag_width=args.zigzag_width, unified_steps=args.unified_steps, sampler="euler",
                    window_stride=0, update="lookahead", window_batch=1, resume_from="", checkpoint_minutes=0.0, devices="",
                    borders="fixed", **links)  # the paper profile, explicitly: what plan() plans (wan21-paper's rules)
    probe = g.add("WanLongProbe", samples=[sampler, 0], report=[sampler, 1])
    g.add("MigaSaveVideo", samples=[probe, 0], vae=[mark, 1], filename_prefix="wan_long/miga", fps=16.0, codec="h264", crf=19,
          decode_chunk=args.decode_chunk, image_frames=0)
    return g.nodes


def core_prompt(args: argparse.Namespace, latent_path: str) -> dict:
    """Core VAE Decode -> Create Video -> Save Video of the latent in ``latent_path``."""
    from benchmarks.peer_comfy import Graph

    g = Graph()
    latent = g.add("WanLongLatentFile", path=latent_path)
    vae = g.add("WanLongRandomVAE", base_width=8 if args.tiny else 96, seed=0)
    mark = g.add("WanLongMark", vae=[vae, 0])
    images = g.add("WanLongImageProbe", images=[g.add("VAEDecode", samples=[latent, 0], vae=[mark, 1]), 0])
    video = g.add("CreateVideo", images=[images, 0], fps=16.0)
    g.add("SaveVideo", video=[video, 0], filename_prefix="wan_long/core", format="mp4", codec="h264")
    return g.nodes


# ---------------------------------------------------------------- rows


def start(args: argparse.Namespace):
    """ComfyUI in this process (peer_comfy's ``Comfy``: built-in nodes, the pack, validation and executor) plus our nodes."""
    from benchmarks.peer_comfy import Comfy

    comfy = Comfy(args.comfyui, args.device, None)
    import nodes

    nodes.NODE_CLASS_MAPPINGS.update(helper_nodes())
    STATE["device"] = args.device
    return comfy


def output_dir() -> pathlib.Path:
    import folder_paths

    return pathlib.Path(folder_paths.get_output_directory())


def _error(exc: BaseException) -> str:
    text = str(exc)
    if "OutOfMemoryError" in text or "out of memory" in text.lower():
        return "CUDA out of memory: " + text[:400]
    return f"{type(exc).__name__}: {text[:600]}"


def miga_row(args: argparse.Namespace, comfy, keep_latent: str | None) -> dict:
    """Run the sampler-to-MP4 workflow once and measure it."""
    row = {"path": MIGA_ROW, "num_pixel_frames": args.frames, "num_latents": latents_of(args.frames), "width": args.width,
           "height": args.height, "steps": args.steps, "cfg": 1.0, "window_length": args.window, "zigzag_width": args.zigzag_width,
           "unified_steps": args.unified_steps, "num_guidance": args.guidance, "reflection_threshold": args.reflection_threshold,
           "decode_chunk": args.decode_chunk, "planned_calls": plan(args, args.steps, args.unified_steps).total_calls}
    STATE.update({"keep_latent": keep_latent, "report": None, "save_card": args.save_card})
    STATE.pop("save_card_gib", None)
    start_meters()
    t0 = time.perf_counter()
    try:
        comfy.run(miga_prompt(args))
        _phase("save")
        row["completed"] = True
    except Exception as exc:  # noqa: BLE001  an OOM or any failure is this row's data
        row.update({"completed": False, "error": _error(exc)})
        _phase("until_failure")
    finally:
        _whole_card()
    row["save_card"] = args.save_card
    if "save_card_gib" in STATE:
        row["save_card_gib"] = STATE["save_card_gib"]
    wall = time.perf_counter() - t0
    _fill_peaks(row)
    report = STATE.get("report")
    if report:
        row.update({"model_calls": report["model_calls"], "model_calls_per_latent": report["model_calls_per_latent"],
                    "reflection": {k: report["reflection"][k] for k in ("n_all", "n_eval", "n_corr") if k in report["reflection"]}})
    if "latent_shape" in STATE:
        row.update({"latent_shape": STATE["latent_shape"], "latent_finite": STATE["latent_finite"]})
    row["timing"] = _count_mp4(row, "miga", wall)
    return row


def _count_mp4(row: dict, prefix: str, wall: float) -> dict:
    """Frames and size of the newest ``<prefix>*.mp4`` the row wrote (decoded and counted) into ``row``; its timing dict."""
    files = sorted((output_dir() / "wan_long").glob(f"{prefix}*.mp4"))
    timing = {"workflow_s": round(wall, 1), **{f"{k}_s": v for k, v in STATE["seconds"].items()}}
    if row["completed"] and files:
        t1 = time.perf_counter()
        row["mp4_frames"], _ = frames_in(str(files[-1]))
        row["mp4_mib"] = round(files[-1].stat().st_size / 2**20, 1)
        timing["count_frames_s"] = round(time.perf_counter() - t1, 1)
    return timing


def _fill_peaks(row: dict) -> None:
    """``peak_vram_gib`` / ``peak_rss_gib`` per phase from STATE, and ``workflow``: the max over the phases after the loaders."""
    for key, source in (("peak_vram_gib", "vram"), ("peak_rss_gib", "rss")):
        phases = {k: v for k, v in STATE[source].items() if v is not None}
        if phases:
            after = [v for k, v in phases.items() if k != "loaders"]
            row[key] = {**phases, **({"workflow": max(after)} if after else {})}
    if STATE["vram_now"]:
        row["vram_held_at_phase_end_gib"] = dict(STATE["vram_now"])


def core_row(args: argparse.Namespace, latent_path: str | None, deadline: float) -> dict:
    """The core row in a child process with a time limit; the child's status file keeps what it measured before a stop."""
    row = {"path": CORE_ROW, "num_pixel_frames": args.frames, "num_latents": latents_of(args.frames), "width": args.width,
           "height": args.height, "latent": "the miga row's" if latent_path else "random (seed 1), the miga row's shape"}
    limit = min(args.core_timeout_s, deadline - time.perf_counter())
    row["time_limit_s"] = round(limit, 1)
    if limit < 20:
        row.update({"completed": False, "error": f"not run: {limit:.0f} s left of --deadline-s {args.deadline_s}", "timing": {}})
        return row
    work = tempfile.mkdtemp(prefix="wan_long_core_")
    status, result = os.path.join(work, "status.json"), os.path.join(work, "result.json")
    cmd = [sys.executable, str(ROOT / SCRIPT), "--core-child", work, "--comfyui", args.comfyui, "--device", args.device, "--frames",
           str(args.frames), "--width", str(args.width), "--height", str(args.height), *(["--tiny"] if args.tiny else []),
           *(["--latent", latent_path] if latent_path else [])]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        rc = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child we started, and its own children
        proc.wait()
        rc = None
    wall = time.perf_counter() - t0
    measured = json.loads(pathlib.Path(result).read_text()) if os.path.exists(result) else None
    if measured is None and os.path.exists(status):  # stopped before the end: what the phases recorded so far
        measured = {"completed": False, **{k: v for k, v in json.loads(pathlib.Path(status).read_text()).items()}}
        measured = {"completed": False, "partial": measured}
    if measured:
        row.update(measured)
    if rc is None:
        row.update({"completed": False, "error": f"stopped by the time limit of {limit:.0f} s (not a failure of the path)"})
    elif rc != 0 and "error" not in row:
        row.update({"completed": False, "error": f"child exited with {rc} (killed by the OS: host out of memory?)" if rc < 0 else f"child exited with {rc}"})
    row.setdefault("timing", {})["child_wall_s"] = round(wall, 1)
    return row


def core_child(args: argparse.Namespace) -> int:
    """``--core-child DIR``: run the core workflow here and write DIR/result.json (DIR/status.json after each phase)."""
    comfy = start(args)
    latent_path = args.latent
    if not latent_path:
        latent_path = os.path.join(args.core_child, "latent.pt")
        torch.save(torch.randn(1, 16, latents_of(args.frames), args.height // 8, args.width // 8,
                               generator=torch.Generator().manual_seed(1)), latent_path)
    row: dict = {}
    fallback = []

    class Catch(logging.Handler):  # core VAE Decode retries tiled after an OOM and says so only in the log
        def emit(self, rec: logging.LogRecord) -> None:
            if "retrying with tiled" in rec.getMessage():
                fallback.append(rec.getMessage())

    logging.getLogger().addHandler(Catch(logging.WARNING))
    start_meters(os.path.join(args.core_child, "status.json"))
    t0 = time.perf_counter()
    try:
        comfy.run(core_prompt(args, latent_path))
        _phase("save")
        row["completed"] = True
    except Exception as exc:  # noqa: BLE001
        row.update({"completed": False, "error": _error(exc)})
        _phase("until_failure")
    wall = time.perf_counter() - t0
    row["tiled_retry_after_oom"] = bool(fallback)
    _fill_peaks(row)
    if "images_shape" in STATE:
        row["images_shape"] = STATE["images_shape"]
    row["timing"] = _count_mp4(row, "core", wall)
    pathlib.Path(args.core_child, "result.json").write_text(json.dumps(row))
    return 0


# ---------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", required=True, help="a ComfyUI v0.8.0 checkout")
    ap.add_argument("--out", default="benchmarks/results/wan_long_cuda.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny DiT, VAE base width 8, 64x32, 85 frames (CPU smoke test)")
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=2001, help="video frames, 4n+1")
    ap.add_argument("--steps", type=int, default=4, help="T (few-step regime, CFG 1)")
    ap.add_argument("--window", type=int, default=21)
    ap.add_argument("--zigzag-width", type=int, default=7)
    ap.add_argument("--unified-steps", type=int, default=0)
    ap.add_argument("--guidance", type=int, default=4, help="MIGA Long-Range Guidance num_guidance (0: off)")
    ap.add_argument("--reflection-threshold", type=float, default=0.01, help="MIGA Self-Reflection threshold (negative: off)")
    ap.add_argument("--decode-chunk", type=int, default=4, help="MigaSaveVideo's decode_chunk")
    ap.add_argument("--save-card", choices=("sampling-peak", "whole"), default="sampling-peak",
                    help="the save phase under ComfyUI's memory management as on a card holding only the sampling phase's "
                         "peak (it unloads the diffusion model if the decode needs the room), or on the whole device")
    ap.add_argument("--rows", default="miga,core", help="which rows: miga, core (comma-separated)")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out and run only the others")
    ap.add_argument("--core-timeout-s", type=float, default=600.0, help="the core row's time limit (also bounded by --deadline-s)")
    ap.add_argument("--deadline-s", type=float, default=560.0, help="the whole script's time: the core row gets what is left")
    ap.add_argument("--budget-s", type=float, default=420.0, help="on CUDA, refuse a sampler row whose expected time exceeds this")
    ap.add_argument("--decode-s-per-latent", type=float, default=0.3, help="time-estimate prior for decode + encode (a guess)")
    ap.add_argument("--startup-s", type=float, default=45.0, help="time-estimate prior for ComfyUI start and random weights")
    ap.add_argument("--core-child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--latent", default="", help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.tiny:
        for k, v in {"width": 64, "height": 32, "frames": 85}.items():  # only where the command line left the default
            if getattr(args, k) == parser().get_default(k):
                setattr(args, k, v)
    if args.core_child:
        return core_child(args)
    t_start, date = time.perf_counter(), record.now()
    deadline = t_start + args.deadline_s
    wanted = [x.strip() for x in args.rows.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in ROWS]
    if unknown or not wanted:
        raise SystemExit(f"--rows={args.rows!r}: allowed is a comma-separated subset of {list(ROWS)}. Fix: --rows miga,core")

    s_per_call, source = prior_s_per_call()
    print(f"time estimate (s per CFG-1 model call {s_per_call}: {source}; decode + encode {args.decode_s_per_latent} s per latent "
          f"(a guess); startup {args.startup_s} s); {latents_of(args.frames)} latents, window {args.window}, zigzag {args.zigzag_width}:",
          flush=True)
    for e in estimates(args, s_per_call):
        print("  " + json.dumps(e), flush=True)
    chosen = estimate(args, plan(args, args.steps, args.unified_steps), s_per_call)
    print(f"chosen: T={args.steps} unified_steps={args.unified_steps}: {json.dumps(chosen)}", flush=True)
    cuda = args.device.startswith("cuda")
    if cuda and "miga" in wanted and chosen["expected_s"] > args.budget_s:
        raise SystemExit(f"--steps={args.steps}: the sampler row's expected time is {chosen['expected_s']} s, over --budget-s "
                         f"{args.budget_s}. Fix: fewer steps (the table above), or raise --budget-s.")

    out = record.resolve_out(args.out)
    comfy = start(args)
    head = record.header(SCRIPT, {k: v for k, v in vars(args).items() if k not in ("out", "comfyui", "core_child", "latent", "rows", "resume")},
                         args.device, dtype=torch.bfloat16 if cuda else torch.float32, argv=argv,
                         code=("miga_core", "nodes", "__init__.py", "benchmarks/record.py", "benchmarks/peer_comfy.py",
                               "benchmarks/wan_node_gpu.py", "benchmarks/wan_save_gpu.py"))
    head.update({"model": "tiny Wan (random weights)" if args.tiny else "Wan2.1-T2V-1.3B architecture, random weights",
                 "vae": "tiny Wan VAE (width 8)" if args.tiny else "Wan2.1 VAE architecture, random weights",
                 "comfyui": comfyui_version(args.comfyui), "estimate": {"s_per_cfg1_call": s_per_call, "source": source, **chosen}})
    rows: list[dict] = []
    if args.resume:  # rows of the same options and code only (the command line may differ in --rows; the estimate is a prior)
        rows = [r for r in record.resumable_rows(out, head, ignore=("estimate",)) if r.get("path") in ROWS.values()]
    done = {r["path"] for r in rows}

    def write() -> None:
        rows.sort(key=lambda r: list(ROWS.values()).index(r["path"]))
        record.write(out, "wan_long", head, rows, {"date": date, "seconds": round(time.perf_counter() - t_start, 1)})

    latent_path = None
    if "miga" in wanted and MIGA_ROW not in done:
        latent_path = os.path.join(tempfile.mkdtemp(prefix="wan_long_"), "latent.pt") if "core" in wanted else None
        rows.append(miga_row(args, comfy, latent_path))
        print(json.dumps(rows[-1]), flush=True)
        write()
        if not rows[-1].get("latent_shape"):
            latent_path = None
    if "core" in wanted and CORE_ROW not in done:
        if cuda:  # the child needs the GPU: give back what this process holds
            import comfy.model_management as mm

            mm.unload_all_models()
            mm.soft_empty_cache()
        rows.append(core_row(args, latent_path, deadline))
        print(json.dumps(rows[-1]), flush=True)
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
