"""MIGA's time per frame on Wan2.1-1.3B (random bf16 weights) in ComfyUI, against FIFO, the official profile and core context windows.

    python benchmarks/wan_perf_gpu.py --comfyui /path/to/ComfyUI          # benchmarks/results/wan_perf_cuda.json, within --budget-s 540 (one device call)
    python benchmarks/wan_perf_gpu.py --comfyui /path/to/ComfyUI --dry-run --device cpu   # the plan and estimates only
    python benchmarks/wan_perf_gpu.py --comfyui /path/to/ComfyUI --tiny --device cpu --out /tmp/wan_perf_tiny.json   # smoke test
    python benchmarks/wan_perf_gpu.py --comfyui /path/to/ComfyUI --sync-debug --groups paper_steps --paper-sizes '' \
        --width 832 --height 480 --budget-s 200 --stop-after-windows 8 --memory-frames '' --extra '' \
        --out benchmarks/results/wan_sync_cuda.json   # synchronizations by Python line (its own BENCHMARKS.md section)
    python benchmarks/wan_perf_gpu.py --comfyui /path/to/ComfyUI --groups paper_steps --given-clip --paper-sizes '' \
        --width 832 --height 480 --budget-s 270 --memory-frames '' --extra '' \
        --out benchmarks/results/wan_perf_paper_cuda.json   # the DiT share over queue windows (its own section)

Issue 13. The model is ComfyUI's WanModel with Wan2.1-T2V-1.3B's dimensions and random weights
(``benchmarks/wan_node_gpu.py`` builds it), so what is measured is cost, not quality. Rows, in priority order:

1. ``paper_steps``: T=54 (the paper's steps) at 416x240, 161 frames: FIFO mode, MIGA without DCE (no guidance, no
   reflection), full MIGA (wan21-paper preset) through the MigaSampler node, and the ``wan21-official`` profile through the
   node's runner (its ladder, ``official_flow_ladder(54)``, and a random 21-latent initial clip, whose KSampler cost
   is not included); the same four again at ``--paper-sizes`` (832x480: the size of the 97% DiT-share target), all
   sharing the time the other rows leave. With ``--given-clip`` the FIFO and MIGA rows start from a random 21-latent clip
   too, so a stopped row's windows are queue windows (initial clip neither run nor planned).
2. ``peer``: ComfyUI core context windows (WanContextWindowsManual: 81-frame = 21-latent windows, 30-frame overlap,
   static schedule, pyramid fuse, FreeNoise) + core KSampler (uni_pc, simple) at 20 and 30 steps, same model and length.
3. ``few_step``: T=4 and T=8 at CFG 1 (the distilled-LoRA regime) with the MIGA configuration that plan_run accepts
   there (paper's zigzag width, the largest unified_steps that keeps DCE); FIFO, which needs T >= 21, is recorded as refused.
   The T=8 row again with ``MIGA_PIPELINE=0`` (each model call waits for the host's step of the previous window): the
   executor's pipelining measured against one call at a time, and their latents compared.
4. ``memory``: peak VRAM and host RSS by video length at 832x480 (``--memory-frames``, 101, 481 and 2,001 frames), T=4
   CFG 1 with the few-step row's configuration (windows of one size whatever the length; the longest stops through the
   interrupt after as many windows as the whole run of the length before it, so its peak covers that many windows).
5. ``compile``: ComfyUI's TorchCompileModel (inductor) on the model, the T=8 few-step MigaSampler run twice: whether it
   works, dynamo's compiled frames per run (a recompile shows as a frame after the first run), speedup vs eager.
6. ``extra``: 481 frames at 416x240, only with time left.

Every row measures wall time, CUDA-event time inside the model's forward (an APPLY_MODEL wrapper around the DiT
forward and ComfyUI's input/output scaling), model calls (windows) next to the plan's count, peak VRAM and peak host
RSS. The run must fit one device call: ``--budget-s`` is this script's wall time. It estimates every row first
(printed), calibrates on a warm-up run, and then gives the ``paper_steps`` rows what the other rows leave: a row that
cannot finish in its share is stopped through ComfyUI's interrupt and reports its measured seconds per window and a
time per frame *projected* from the plan's windows (``status: partial``). Rows that do not fit are recorded as skipped
with their estimate. The JSON is rewritten after every row, so a kill keeps the finished rows.

What it cannot measure: quality (random weights); self-reflection's real trigger rate (searches depend on the content,
so full MIGA's search windows here are not those of real weights); a stopped row's later stages (its seconds per
window come from its first windows: initial clip and queue build); the official profile's initial clip (given, not
sampled); run-to-run noise other than that of the repeated peer and few-step rows; the compile time with a warm cache.
Host RSS is the whole process's (ComfyUI and torch included): each row also reports its growth during the row.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # the budget counts from here (before torch and ComfyUI are imported)

import argparse
import contextlib
import json
import math
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, replace

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record
from benchmarks.wan_node_gpu import (
    TINY,
    WAN_1_3B,
    comfyui_version,
    random_wan,
    start_comfyui,
)

SCRIPT = "benchmarks/wan_perf_gpu.py"
GROUPS = ("paper_steps", "peer", "few_step", "memory", "compile", "extra")
TIMER_KEY = "miga_perf_timer"
PRIOR = ROOT / "benchmarks" / "results" / "wan_node_cuda.json"  # 1.185 s per CFG call at 832x480 (issue 13's prior)
MARGIN_S = 6.0  # kept free at the end (last JSON write, interpreter exit)


@dataclass
class Spec:
    """One row to measure.

    kind: "node" (MigaSampler.execute), "official" (runner.sample with the wan21-official profile), "context_windows"
    (core WanContextWindowsManual + KSampler), "compile" (TorchCompileModel, then MigaSampler twice), "refused" (a
    configuration plan_run refuses: recorded with its message, nothing runs).
    """

    name: str
    group: str
    kind: str
    width: int
    height: int
    frames: int
    steps: int
    cfg: float
    mode: str = "miga"
    zigzag_width: int = 7
    unified_steps: int = 9
    sampler: str = "euler"
    dce: bool = False  # long-range guidance (4) and self-reflection (threshold 0.01): the wan21-paper preset
    partial: bool = False  # may be stopped at its time share (paper_steps, extra)
    max_windows: int | None = None  # stopped through the interrupt after this many planned windows (a whole row otherwise)
    repeats: int = 1
    note: str = ""
    ref: str | None = None  # compile, one call at a time: the row whose latent it is compared with
    pipelined: bool | None = None  # MIGA_PIPELINE for this row (None: the executor's default)
    given_clip: bool = False  # node rows: start from a random 21-latent clip (its T-step sampling neither run nor planned)


def build_specs(args) -> list[Spec]:
    """The rows in priority order (see the module docstring)."""
    W, H, F, T = args.width, args.height, args.frames, args.steps
    off = "the authors' released loop: uni_pc, stride 10, official ladder, random initial clip given (its sampling not timed)"
    specs = []
    given = "a random initial clip given (its sampling not timed)" if args.given_clip else ""

    def node(name: str, note: str = "", **kw) -> Spec:
        return Spec(name, "paper_steps", "node", w, h, F, T, args.cfg, partial=True, given_clip=args.given_clip,
                    note="; ".join(x for x in (note, given) if x), **kw)

    for k, (w, h) in enumerate([(W, H), *args.paper_sizes]):  # the first size's rows keep the short names
        at = "" if k == 0 else f" {w}x{h}"
        specs += [
            node(f"fifo T{T}{at}", mode="fifo", zigzag_width=1, unified_steps=0),
            node(f"miga no DCE T{T}{at}", "wan21-paper preset without guidance and reflection"),
            node(f"miga full T{T}{at}", "wan21-paper preset", dce=True),
            Spec(f"wan21-official T{T}{at}", "paper_steps", "official", w, h, F, T, args.cfg, sampler="uni_pc", partial=True, note=off),
        ]
    for j, steps in enumerate(args.peer_steps):
        reps = args.peer_repeats if j == 0 else 1
        specs.append(Spec(f"core context windows {steps} steps", "peer", "context_windows", W, H, F, steps, args.cfg, sampler="uni_pc",
                          repeats=reps, note="WanContextWindowsManual 81/30 frames, standard_static, pyramid, FreeNoise; KSampler uni_pc simple"))
    for steps, (lz, u) in sorted(args.few_step.items()):
        specs.append(Spec(f"fifo T{steps} cfg1", "few_step", "refused", W, H, F, steps, 1.0, mode="fifo", zigzag_width=1, unified_steps=0))
        specs.append(Spec(f"miga full T{steps} cfg1", "few_step", "node", W, H, F, steps, 1.0, zigzag_width=lz, unified_steps=u, dce=True,
                          repeats=args.few_step_repeats))
    first, last = min(args.few_step), max(args.few_step)
    lz, u = args.few_step[last]  # the one-call-at-a-time and compiled rows repeat the last few-step row
    specs.append(Spec(f"miga full T{last} cfg1 one call at a time", "few_step", "node", W, H, F, last, 1.0, zigzag_width=lz,
                      unified_steps=u, dce=True, repeats=args.few_step_repeats, pipelined=False, ref=f"miga full T{last} cfg1",
                      note="MIGA_PIPELINE=0: each model call starts after the host stepped the previous window"))
    mw, mh = args.memory_size
    lengths = sorted(args.memory_frames)
    memory = [Spec(f"memory {f}f T{first} cfg1", "memory", "node", mw, mh, f, first, 1.0, zigzag_width=args.few_step[first][0],
                   unified_steps=args.few_step[first][1], dce=True, note="peak VRAM and host RSS by length") for f in lengths]
    if len(memory) > 1:  # the longest runs as many windows as the whole run of the one before it, then stops
        cap = plan_of(memory[-2]).total_calls
        memory[-1] = replace(memory[-1], max_windows=cap,
                             note=f"{memory[-1].note}; stopped after {cap} planned windows, the whole run of {lengths[-2]} frames")
    specs += memory
    specs.append(Spec(f"miga full T{last} cfg1 compiled", "compile", "compile", W, H, F, last, 1.0, zigzag_width=lz, unified_steps=u,
                      dce=True, ref=f"miga full T{last} cfg1", note="TorchCompileModel inductor; run 1 compiles, run 2 reuses"))
    for w, h, f in args.extra:
        specs.append(Spec(f"miga full T{T} {w}x{h} {f}f", "extra", "node", w, h, f, T, args.cfg, dce=True, partial=True))
    return [s for s in specs if s.group in args.groups]


# ---------------------------------------------------------------- plans and estimates


def plan_of(spec: Spec):
    """The RunPlan of a MIGA row (None for the peer) and its planned windows."""
    from comfyui_miga.miga_core import (
        GuidanceOptions,
        MigaConfig,
        ReflectionOptions,
        plan_run,
        preset,
    )
    from comfyui_miga.miga_core.frames import num_latent_frames

    N = num_latent_frames(spec.frames, "wan21")
    if spec.kind == "official":
        cfg, guidance, reflection = preset("wan21-official")
        return plan_run(cfg, spec.steps, N, guidance=guidance, reflection=reflection, has_initial_clip=True)
    config = MigaConfig(window_length=21, zigzag_width=spec.zigzag_width, unified_steps=spec.unified_steps, sampler=spec.sampler,
                        mode=spec.mode)
    return plan_run(config, spec.steps, N, guidance=GuidanceOptions(4) if spec.dce else None,
                    reflection=ReflectionOptions(threshold=0.01) if spec.dce else None, has_initial_clip=spec.given_clip)


def context_windows(num_latents: int, length: int = 21, overlap: int = 8) -> int:
    """Windows per step of ComfyUI's static standard schedule (comfy.context_windows)."""
    import comfy.context_windows as cw

    handler = cw.IndexListContextHandler(cw.get_matching_context_schedule(cw.ContextSchedules.STATIC_STANDARD),
                                         cw.get_matching_fuse_method(cw.ContextFuseMethods.PYRAMID), context_length=length,
                                         context_overlap=overlap, dim=2)
    return len(cw.create_windows_static_standard(num_latents, handler, {}))


def planned(spec: Spec) -> dict:
    """Planned model calls of a row (windows; one DiT forward of a CFG batch each) and their long-video limit.

    ``marginal_calls_per_latent``: (calls(N + 2000) - calls(N)) / 2000, the cost per latent of a long video, where the
    fixed cost (initial clip, queue build) no longer counts.
    """
    from comfyui_miga.miga_core.frames import num_latent_frames

    N = num_latent_frames(spec.frames, "wan21")
    if spec.kind == "context_windows":
        calls = spec.steps * context_windows(N)
        longer = spec.steps * context_windows(N + 2000)
        return {"planned_calls": calls, "planned_calls_per_latent": round(calls / N, 4),
                "marginal_calls_per_latent": round((longer - calls) / 2000, 4)}
    plan = plan_of(spec)
    longer = plan_of(replace(spec, frames=spec.frames + 4 * 2000))
    out = {"planned_calls": plan.total_calls, "planned_calls_per_latent": round(plan.total_calls / N, 4),
           "planned_calls_by_stage": plan.calls, "marginal_calls_per_latent": round((longer.total_calls - plan.total_calls) / 2000, 4)}
    if plan.reflection is not None:
        out.update({"planned_checks": plan.num_checks, "search_windows_per_search": plan.search_windows})
    return out


def few_step_space(T: int, frames: int, dce: bool, widths=(1, 3, 7, 11, 21)) -> dict:
    """Which (zigzag_width, unified_steps) plan_run accepts at T steps, window 21: per width the accepted unified_steps and
    plan_run's message for the next value (or for 0 when none is accepted), i.e. why the range ends there."""
    from comfyui_miga.miga_core import (
        GuidanceOptions,
        MigaConfig,
        MigaError,
        ReflectionOptions,
        plan_run,
    )
    from comfyui_miga.miga_core.frames import num_latent_frames

    out = {}
    for lz in widths:
        ok, refusal = [], None
        for u in range(T + 1):
            try:
                plan_run(MigaConfig(window_length=21, zigzag_width=lz, unified_steps=u), T, num_latent_frames(frames, "wan21"),
                         guidance=GuidanceOptions(4) if dce else None, reflection=ReflectionOptions(threshold=0.01) if dce else None)
                ok.append(u)
            except MigaError as exc:
                if refusal is None and (not ok or u == ok[-1] + 1):
                    refusal = str(exc)
        out[str(lz)] = {"accepted_unified_steps": ok, "refused_next": refusal}
    return out


def token_flops(width: int, height: int, batch: int, dims: dict, latents: int = 21) -> float:
    """Approximate FLOPs of one Wan DiT forward over a window of ``latents`` (2x2 patches): linear layers on video tokens
    (self-attention qkvo, cross-attention q and o, FFN) plus self-attention's two matmuls."""
    tokens = latents * (height // 16) * (width // 16)
    d, L = dims["dim"], dims["num_layers"]
    return batch * (2 * L * (6 * d * d + 2 * d * dims["ffn_dim"]) * tokens + 4 * L * d * tokens * tokens)


@dataclass
class Calibration:
    """Seconds of one DiT forward per FLOP (from the prior, then from the warm-up) and the wall/DiT overhead factor."""

    s_per_flop: float
    overhead: float = 1.15
    source: str = "prior"

    def forward_s(self, spec: Spec, dims: dict) -> float:
        return self.s_per_flop * token_flops(spec.width, spec.height, 2 if spec.cfg != 1.0 else 1, dims)

    def estimate(self, spec: Spec, dims: dict, calls: int, compile_s: float) -> float:
        """Seconds for the whole row (all repeats; a compile row adds ``compile_s``)."""
        if spec.kind == "refused":
            return 0.0
        runs = 2 if spec.kind == "compile" else spec.repeats
        return runs * calls * self.forward_s(spec, dims) * self.overhead + (compile_s if spec.kind == "compile" else 0.0)


def prior_calibration(dims: dict) -> Calibration:
    """From benchmarks/results/wan_node_cuda.json (s per CFG call at its size), scaled by FLOPs; 1e-13 s/FLOP without it."""
    if PRIOR.exists():
        data = json.loads(PRIOR.read_text())
        row, opts = data["rows"][0], data["record"]["options"]
        flops = token_flops(opts["width"], opts["height"], 2, WAN_1_3B)
        return Calibration(row["timing"]["s_per_model_call"] / flops, 1.0, f"prior: {PRIOR.name}, {row['timing']['s_per_model_call']} s per call "
                           f"at {opts['width']}x{opts['height']}, scaled by FLOPs")
    return Calibration(1e-13, 1.15, "prior: 1e-13 s per FLOP (no wan_node_cuda.json)")


def decide(spec: Spec, later: list[Spec], left: float, estimate, min_partial_s: float) -> tuple[str, float | None, str]:
    """``("run" | "partial" | "skip", share in seconds or None, reason)`` for a row with ``left`` seconds of budget.

    A whole row (peer, few_step, compile) runs when its estimate fits. A stoppable row gets an equal share of what is
    left after the later whole rows that still fit (taken in order) are reserved; the ``extra`` rows share what is left.
    """
    est = estimate(spec)
    if not spec.partial:
        return ("run", None, "") if est <= left else ("skip", None, f"estimated {est:.0f} s, {max(left, 0):.0f} s of the budget left")
    reserve = 0.0
    if spec.group != "extra":
        for s in later:
            if not s.partial and s.group != "extra" and reserve + estimate(s) <= left:
                reserve += estimate(s)
    share = (left - reserve) / (1 + sum(1 for s in later if s.partial and s.group == spec.group))
    if est <= share:
        return "run", share, ""
    if share < min_partial_s:
        return "skip", share, f"its share {max(share, 0):.0f} s of the budget is under {min_partial_s:.0f} s (whole row estimated {est:.0f} s)"
    return "partial", share, ""


def simulate(specs: list[Spec], left: float, estimate, min_partial_s: float) -> list[tuple[str, str, float]]:
    """The run's plan if every row took its estimate (a stopped row: its share): ``(name, action, seconds)``."""
    out = []
    for i, spec in enumerate(specs):
        if spec.kind == "refused":
            out.append((spec.name, "refused", 0.0))
            continue
        action, share, _ = decide(spec, specs[i + 1:], left, estimate, min_partial_s)
        spent = 0.0 if action == "skip" else share if action == "partial" else estimate(spec)
        left -= spent
        out.append((spec.name, action, spent))
    return out


# ---------------------------------------------------------------- measuring


class DitTimer:
    """ComfyUI APPLY_MODEL wrapper timing every DiT forward (CUDA events on a GPU, perf_counter on the CPU), and when each
    one ended on the device's timeline, counted from :meth:`reset`."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.reset()

    def reset(self) -> None:
        """Forget the forwards so far; the time origin of :meth:`ends` is now (call it with the device idle)."""
        self.events: list = []
        self.cpu: list[float] = []
        self.cpu_ends: list[float] = []
        self.origin = time.perf_counter()
        if self.cuda:
            self.origin_event = torch.cuda.Event(enable_timing=True)
            self.origin_event.record()

    def __call__(self, executor, *args, **kwargs):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = executor(*args, **kwargs)
            end.record()
            self.events.append((start, end))
            return out
        t0 = time.perf_counter()
        out = executor(*args, **kwargs)
        self.cpu.append(time.perf_counter() - t0)
        self.cpu_ends.append(time.perf_counter() - self.origin)
        return out

    def seconds(self) -> list[float]:
        """Per-forward seconds (call after ``torch.cuda.synchronize()``)."""
        return [s.elapsed_time(e) / 1000 for s, e in self.events] if self.cuda else list(self.cpu)

    def ends(self) -> list[float]:
        """Seconds from :meth:`reset` to the end of each forward on the device (call after ``torch.cuda.synchronize()``)."""
        return [self.origin_event.elapsed_time(e) / 1000 for _, e in self.events] if self.cuda else list(self.cpu_ends)


class RssPeak:
    """Peak resident set size of this process while in the ``with`` block (polls /proc/self/statm; None elsewhere)."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s, self.peak, self._stop = every_s, None, threading.Event()

    @staticmethod
    def now() -> int | None:
        try:
            return int(pathlib.Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def _poll(self) -> None:
        while not self._stop.is_set():
            v = self.now()
            if v is not None:
                self.peak = max(self.peak or 0, v)
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stats(values: list[float]) -> dict:
    """Count, mean, standard deviation, median and largest value, in seconds."""
    if not values:
        return {"n": 0}
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"n": len(values), "mean_s": round(m, 5), "std_s": round(sd, 5), "median_s": round(statistics.median(values), 5),
            "max_s": round(max(values), 5)}


def device_gaps(dit: list[float], ends: list[float]) -> list[float]:
    """Seconds on the device's timeline from the end of each DiT forward to the start of the next (``dit[i]`` long,
    ending ``ends[i]`` after the timer's origin): the GPU's time outside the model between two forwards, idle or not.
    Their distribution tells steady per-window work (every gap alike) from stalls (a few long gaps)."""
    return [max(0.0, (ends[i + 1] - dit[i + 1]) - ends[i]) for i in range(min(len(dit), len(ends)) - 1)]


def dynamo_frames() -> dict:
    """torch._dynamo's counters of compiled frames and graphs (cumulative over the process)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {}
    return {"frames_compiled": counters["frames"]["total"], "frames_ok": counters["frames"]["ok"],
            "unique_graphs": counters["stats"]["unique_graphs"], "graph_breaks": sum(counters["graph_break"].values()),
            "reasons": dict(counters["graph_break"])}


def dynamo_delta(before: dict, after: dict) -> dict:
    """What one run added to :func:`dynamo_frames` (graph-break reasons: the 5 most frequent, shortened)."""
    out = {k: after[k] - before.get(k, 0) for k in after if k != "reasons"}
    reasons = {k: v - before.get("reasons", {}).get(k, 0) for k, v in after.get("reasons", {}).items()}
    top = sorted(((v, k) for k, v in reasons.items() if v > 0), reverse=True)[:5]
    out["graph_break_reasons"] = [f"{v}x {' '.join(k.split())[:200]}" for v, k in top]
    return out


# ---------------------------------------------------------------- the benchmark


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", required=True, help="a ComfyUI v0.8.0 checkout")
    ap.add_argument("--out", default="benchmarks/results/wan_perf_cuda.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny dims, 64x32, T=22, 121 frames (CPU smoke test)")
    ap.add_argument("--width", type=int, default=416)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--frames", type=int, default=161)
    ap.add_argument("--steps", type=int, default=54, help="T of the paper_steps rows")
    ap.add_argument("--cfg", type=float, default=6.0)
    ap.add_argument("--budget-s", type=float, default=540.0, help="this script's wall-time budget (from its start), seconds")
    ap.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated subset of {','.join(GROUPS)}")
    ap.add_argument("--few-step", default="4:7:0,8:7:3", help="T:zigzag_width:unified_steps of the few-step rows")
    ap.add_argument("--peer-steps", default="20,30", help="steps of the core context-window rows")
    ap.add_argument("--peer-repeats", type=int, default=2, help="runs of the first peer row (their spread is the repeat noise)")
    ap.add_argument("--few-step-repeats", type=int, default=2)
    ap.add_argument("--compile-estimate-s", type=float, default=150.0, help="assumed inductor compile time (first compiled run)")
    ap.add_argument("--given-clip", action="store_true",
                    help="paper_steps MIGA/FIFO rows start from a random initial clip, so a stopped row measures queue windows")
    ap.add_argument("--paper-sizes", default="832x480", help="WxH: the paper_steps rows again at these sizes, sharing their time ('' for none)")
    ap.add_argument("--extra", default="416x240x481", help="WxHxF rows run with time left ('' for none)")
    ap.add_argument("--memory-frames", default="101,481,2001", help="video lengths of the memory rows ('' for none)")
    ap.add_argument("--memory-size", default="832x480", help="WxH of the memory rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-partial-s", type=float, default=12.0, help="a stoppable row whose share is shorter is skipped")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and the estimates (no model is built) and exit")
    ap.add_argument("--startup-s", type=float, default=35.0, help="--dry-run: seconds assumed for ComfyUI, the model and the warm-up")
    ap.add_argument("--stop-after-windows", type=int, default=0,
                    help="also stop paper_steps/extra rows after this many planned windows (0: only their time share); for tests")
    ap.add_argument("--sync-debug", action="store_true",
                    help="CUDA: count the host-device synchronizations of every run by the Python line that made them "
                         "(torch.cuda.set_sync_debug_mode; a diagnostic: the warnings slow the run, so its times are not ours)")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.tiny:
        defaults = {"width": 416, "height": 240, "frames": 161, "steps": 54, "extra": "416x240x481", "compile_estimate_s": 150.0,
                    "memory_frames": "101,481,2001", "memory_size": "832x480", "paper_sizes": "832x480"}
        tiny = {"width": 64, "height": 32, "frames": 121, "steps": 22, "extra": "", "compile_estimate_s": 60.0,
                "memory_frames": "41,121", "memory_size": "64x32", "paper_sizes": ""}
        for k, v in tiny.items():  # only where the command line left the default
            if getattr(args, k) == defaults[k]:
                setattr(args, k, v)
    options = dict(vars(args))
    args.groups = tuple(g for g in args.groups.split(",") if g)
    args.peer_steps = [int(x) for x in args.peer_steps.split(",") if x]
    args.few_step = {int(t): (int(lz), int(u)) for t, lz, u in (x.split(":") for x in args.few_step.split(",") if x)}
    args.extra = [tuple(int(v) for v in x.split("x")) for x in args.extra.split(",") if x]
    args.memory_frames = [int(x) for x in args.memory_frames.split(",") if x]
    args.memory_size = tuple(int(v) for v in args.memory_size.split("x"))
    args.paper_sizes = [tuple(int(v) for v in x.split("x")) for x in args.paper_sizes.split(",") if x]
    date = record.now()
    deadline = T_START + args.budget_s

    start_comfyui(args.comfyui, args.device)
    import comfy.model_management as mm
    import comfy.patcher_extension
    import comfy.sd
    import comfy.utils
    import folder_paths
    from comfyui_miga.miga_core import GuidanceOptions, ReflectionOptions, preset
    from comfyui_miga.miga_core.errors import MigaError
    from comfyui_miga.miga_core.frames import num_latent_frames
    from comfyui_miga.miga_core.ladder import official_flow_ladder
    from comfyui_miga.nodes import runner
    from comfyui_miga.nodes.nodes_sampler import MigaSampler

    # ---- rows, plans and the estimate (before the model is built)
    dims = TINY if args.tiny else WAN_1_3B
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    calib = prior_calibration(dims)
    specs = build_specs(args)
    plans = {}
    for s in specs:
        try:
            plans[s.name] = planned(s)
        except MigaError as exc:
            plans[s.name] = {"refused": str(exc)}

    def estimate(s: Spec) -> float:
        p = plans[s.name]
        if "refused" in p:
            return 0.0
        return calib.estimate(s, dims, min(p["planned_calls"], s.max_windows or p["planned_calls"]), args.compile_estimate_s)

    def show(title: str, startup: float = 0.0) -> None:
        print(f"--- {title} ({calib.source}; wall/DiT {calib.overhead:.2f}); budget {args.budget_s:.0f} s, "
              f"{deadline - time.perf_counter():.0f} s left", flush=True)
        left = deadline - time.perf_counter() - MARGIN_S - (startup if startup else 0.0)
        for (name, action, spent), s in zip(simulate(specs, left, estimate, args.min_partial_s), specs):
            calls = plans[s.name].get("planned_calls", "refused")
            print(f"  {s.group:12s} {s.name:38s} {s.width}x{s.height} {s.frames}f T={s.steps:<3d} calls {calls!s:>6s}  "
                  f"whole row {estimate(s):7.1f} s -> {action:8s} {spent:6.1f} s", flush=True)

    show("estimate before the run" + (f", {args.startup_s:.0f} s assumed for the model and the warm-up" if args.dry_run else ""),
         args.startup_s if args.dry_run else 0.0)
    if args.dry_run:
        return 0

    scratch = tempfile.TemporaryDirectory(prefix="wan_perf_")  # interrupted MIGA runs save a checkpoint on cancel: not into ComfyUI's output
    folder_paths.set_output_directory(scratch.name)
    model = comfy.sd.load_diffusion_model_state_dict(random_wan(dims, dtype, args.device), model_options={"dtype": dtype})
    timer = DitTimer(cuda)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, TIMER_KEY, timer)
    text_len = 8 if args.tiny else 512
    g = torch.Generator().manual_seed(1)
    positive = [[torch.randn(1, text_len, 4096, generator=g) * 0.1, {}]]
    negative = [[torch.randn(1, text_len, 4096, generator=g) * 0.1, {}]]

    marks: list[tuple[float, int, int]] = []  # (time, planned windows done, DiT forwards so far: search windows included)
    stop = {"at": None, "windows": None}

    def hook(value, total, preview, node_id=None):
        marks.append((time.perf_counter(), value, len(timer.events) + len(timer.cpu)))
        if (stop["at"] is not None and time.perf_counter() >= stop["at"]) or (stop["windows"] is not None and value >= stop["windows"]):
            mm.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)
    comfy.utils.PROGRESS_BAR_ENABLED = False  # no tqdm bars in the log (the hook above still sees every step)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def given_clip(spec: Spec) -> dict:
        """A random 21-latent initial clip (LATENT), the same for every row of a size."""
        return {"samples": torch.randn(1, 16, 21, spec.height // 8, spec.width // 8, generator=torch.Generator().manual_seed(2))}

    def execute(spec: Spec, use_model) -> tuple[torch.Tensor, dict | None]:
        """One run of a row: (output latent, the MIGA report or None for the peer)."""
        if spec.kind in ("node", "compile"):
            guidance = GuidanceOptions(4) if spec.dce else None
            reflection = ReflectionOptions(threshold=0.01) if spec.dce else None
            out = MigaSampler.execute(use_model, positive, negative, spec.width, spec.height, spec.frames, 1, args.seed, spec.steps, spec.cfg,
                                      "simple", spec.mode, 21, spec.zigzag_width, spec.unified_steps, spec.sampler, 0, "lookahead", 1,
                                      initial_clip=given_clip(spec) if spec.given_clip else None,
                                      guidance=guidance, reflection=reflection, checkpoint_minutes=0.0, borders="fixed")
            latent, report = out.result
            return latent["samples"], json.loads(report)
        if spec.kind == "official":
            config, guidance, reflection = preset("wan21-official")
            run = runner.model_run(use_model, positive, negative, spec.cfg, "simple", spec.steps, args.seed, None)
            run = replace(run, sigmas=official_flow_ladder(spec.steps)[0])
            latent, report = runner.sample(run, config, runner.VideoRequest(spec.frames, 1, spec.height, spec.width, given_clip(spec)), guidance,
                                           reflection, "", 0.0)
            return latent["samples"], json.loads(report)
        if spec.kind == "context_windows":
            from comfy_extras.nodes_context_windows import WanContextWindowsManualNode

            import nodes

            windowed = WanContextWindowsManualNode.execute(use_model, 81, 30, "standard_static", 1, False, "pyramid", True).result[0]
            N = num_latent_frames(spec.frames, "wan21")
            latent = {"samples": torch.zeros(1, 16, N, spec.height // 8, spec.width // 8)}
            return nodes.common_ksampler(windowed, args.seed, spec.steps, spec.cfg, spec.sampler, "simple", positive, negative, latent)[0]["samples"], None
        raise ValueError(spec.kind)

    def measure(spec: Spec, use_model, stop_at: float | None) -> dict:
        """Run once and measure: status, windows, DiT time, wall, peak VRAM and host RSS."""
        mm.interrupt_current_processing(False)
        marks.clear()
        stop["at"] = stop_at
        stop["windows"] = spec.max_windows or (args.stop_after_windows if spec.partial and args.stop_after_windows > 0 else None)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        timer.reset()
        before = dynamo_frames()
        result: dict = {"status": "completed", "rss_start": RssPeak.now()}
        t0 = time.perf_counter()
        debug = args.sync_debug and cuda
        with RssPeak() as rss, torch.inference_mode(), warnings.catch_warnings(record=True) if debug else contextlib.nullcontext() as caught:
            if debug:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
            setting = os.environ.get("MIGA_PIPELINE")
            try:
                if spec.pipelined is not None:
                    os.environ["MIGA_PIPELINE"] = "1" if spec.pipelined else "0"
                samples, report = execute(spec, use_model)
                result["finite"] = bool(torch.isfinite(samples).all())
                result["latent"] = samples
                result["report"] = report
            except mm.InterruptProcessingException:
                result["status"] = "partial"
            except Exception as exc:  # a failing row (e.g. a compile error) is recorded, the others still run
                result.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[:400]}")
            finally:  # the process's own setting again
                os.environ.pop("MIGA_PIPELINE", None)
                if setting is not None:
                    os.environ["MIGA_PIPELINE"] = setting
                if debug:
                    torch.cuda.set_sync_debug_mode(0)
            sync()
        wall = time.perf_counter() - t0
        if debug:  # where each synchronization came from: file:line of the Python frame that asked
            result["syncs"] = Counter(f"{pathlib.Path(w.filename).name}:{w.lineno}" for w in caught
                                      if "synchroniz" in str(w.message))
        stop["at"] = stop["windows"] = None
        dit, dit_ends = timer.seconds(), timer.ends()
        last = marks[-1] if marks else (t0, 0, 0)
        per_window = [b[0] - a[0] for a, b in zip(marks, marks[1:]) if b[1] > a[1]]
        result.update(wall_s=wall, dit=dit, dit_ends=dit_ends, marks=list(marks), windows_done=last[1], forwards_done=last[2], to_last_window_s=last[0] - t0, per_window=per_window,
                      rss=rss.peak, vram=torch.cuda.max_memory_allocated() if cuda else None,
                      vram_reserved=torch.cuda.max_memory_reserved() if cuda else None)
        after = dynamo_frames()
        if after:
            result["dynamo"] = dynamo_delta(before, after)
        return result

    # ---- warm-up (and calibration)
    main_spec = Spec("warm-up", "warmup", "node", args.width, args.height, 81, 4, args.cfg, zigzag_width=7, unified_steps=0)
    warm = measure(main_spec, model, None)
    dit = warm["dit"][2:] or warm["dit"]
    if dit:
        per_fwd = sorted(dit)[len(dit) // 2]
        (t1, _, f1), (t2, _, f2) = (warm["marks"][0], warm["marks"][-1]) if warm["marks"] else ((0.0, 0, 0), (0.0, 0, 0))
        # wall/DiT between the first and the last window: the model's loading before the first one does not count
        overhead = (t2 - t1) / sum(warm["dit"][f1:f2]) if f2 > f1 and sum(warm["dit"][f1:f2]) > 0 else warm["wall_s"] / max(sum(warm["dit"]), 1e-9)
        calib = Calibration(per_fwd / token_flops(args.width, args.height, 2 if args.cfg != 1.0 else 1, dims), max(1.0, overhead),
                            f"warm-up: {per_fwd:.4f} s per forward at {args.width}x{args.height}, scaled by FLOPs")
    show("estimate after the warm-up")

    head = record.header(SCRIPT, {k: v for k, v in options.items() if k not in ("out", "comfyui")}, args.device, dtype=dtype,
                         code=("miga_core", "nodes", "__init__.py", "benchmarks/record.py", "benchmarks/wan_node_gpu.py"), argv=argv)
    head.update({"model": "tiny Wan (random weights)" if args.tiny else "Wan2.1-T2V-1.3B architecture, random weights",
                 "comfyui": comfyui_version(args.comfyui), "text_tokens": text_len,
                 "weights_gib": round(sum(p.numel() * p.element_size() for p in model.model.diffusion_model.parameters()) / 2**30, 3),
                 "dit_timer": "CUDA events around BaseModel.apply_model (APPLY_MODEL wrapper): the DiT forward plus ComfyUI's input "
                              "scaling and output conversion" if cuda else "perf_counter around BaseModel.apply_model (APPLY_MODEL wrapper)"})
    out = record.resolve_out(args.out)
    rows: list[dict] = []
    run_timing = {"date": date, "warmup": {"wall_s": round(warm["wall_s"], 2), "dit": stats(warm["dit"]), "status": warm["status"]},
                  "calibration": calib.source, "estimates_s": {s.name: round(estimate(s), 1) for s in specs}}
    latents: dict[str, torch.Tensor] = {}

    def save() -> None:
        run_timing["seconds"] = round(time.perf_counter() - T_START, 1)
        record.write(out, "wan_perf", head, rows, run_timing)

    for i, spec in enumerate(specs):
        p = plans[spec.name]
        N = num_latent_frames(spec.frames, "wan21")
        row = {"name": spec.name, "group": spec.group, "kind": spec.kind, "width": spec.width, "height": spec.height,
               "num_pixel_frames": spec.frames, "num_latents": N, "steps": spec.steps, "cfg": spec.cfg, "sampler": spec.sampler}
        if spec.kind in ("node", "compile"):
            row.update({"mode": spec.mode, "zigzag_width": spec.zigzag_width, "unified_steps": spec.unified_steps,
                        "guidance": 4 if spec.dce else 0, "reflection": 0.01 if spec.dce else None})
            if spec.pipelined is not None:
                row["pipelined"] = spec.pipelined
            if spec.given_clip:
                row["given_clip"] = True
            if spec.ref:
                row["ref"] = spec.ref  # the report's compile speedup and pipelining verdicts compare with this row
        if spec.note:
            row["note"] = spec.note
        if spec.group == "few_step" and spec.kind == "node":
            row["plan_space"] = {"with_dce": few_step_space(spec.steps, spec.frames, True),
                                 "without_dce": few_step_space(spec.steps, spec.frames, False)}
        row.update({k: v for k, v in p.items() if k != "refused"})
        timing: dict = {}
        row["timing"] = timing
        if "refused" in p:
            row.update(status="refused", refusal=p["refused"])
            rows.append(row)
            save()
            continue
        now = time.perf_counter()
        action, share, why = decide(spec, specs[i + 1:], deadline - now - MARGIN_S, estimate, args.min_partial_s)
        timing["estimate_s"] = round(estimate(spec), 1)
        if share is not None:
            timing["share_s"] = round(share, 1)
        if action == "skip":
            row.update(status="skipped", skipped=why)
            rows.append(row)
            save()
            continue
        stop_at = now + share if action == "partial" else None
        use_model = model
        if spec.kind == "compile":
            from comfy_extras.nodes_torch_compile import TorchCompileModel

            use_model = TorchCompileModel.execute(model, "inductor").result[0]
        runs = [measure(spec, use_model, stop_at if stop_at is not None else deadline)
                for _ in range(2 if spec.kind == "compile" else spec.repeats)]
        first = runs[0]
        statuses = [r["status"] for r in runs]
        row["status"] = "completed" if all(s == "completed" for s in statuses) else first["status"] if len(set(statuses)) == 1 else "mixed"
        if first.get("error"):
            row["error"] = first["error"]
        done = [r for r in runs if r["status"] == "completed"]
        if done and done[0].get("report") is not None:
            rep = done[0]["report"]
            row.update({"model_calls": rep["model_calls"], "model_calls_per_latent": rep["model_calls_per_latent"],
                        "windows": rep["windows"], "windows_planned": rep["windows_planned"],
                        "search_calls": rep["model_calls"] - p["planned_calls"], "reflection": rep["reflection"]})
        if done:
            row["dit_forwards"] = len(done[0]["dit"])
            row["finite"] = all(r.get("finite", False) for r in done)
            latents[spec.name] = done[-1]["latent"]
        if spec.ref and spec.ref in latents and done:
            a, b = latents[spec.ref].float(), done[-1]["latent"].float()
            row["max_abs_diff_vs_ref"] = round(float((a - b).abs().max()), 5) if a.shape == b.shape else None
            row["max_abs_ref"] = round(float(a.abs().max()), 5)
        if spec.kind == "compile":
            row["dynamo_per_run"] = [r.get("dynamo", {}) for r in runs]
            try:
                import torch._dynamo.config as dcfg

                row["recompile_limit"] = getattr(dcfg, "recompile_limit", getattr(dcfg, "cache_size_limit", None))
            except ImportError:
                pass
        timing["runs"] = [run_summary(r, spec, p, N) for r in runs]
        if cuda:
            row["peak_vram_gib"] = round(max(r["vram"] for r in runs) / 2**30, 3)
            row["peak_vram_reserved_gib"] = round(max(r["vram_reserved"] for r in runs) / 2**30, 3)
        rss = [r["rss"] for r in runs if r["rss"] is not None]
        if rss:
            timing["host_rss_peak_gib"] = round(max(rss) / 2**30, 3)
            timing["host_rss_growth_gib"] = round(max(r["rss"] - r["rss_start"] for r in runs if r["rss"] and r["rss_start"]) / 2**30, 3)
        seconds = [r["wall_s"] for r in runs if r["status"] == "completed"]
        if len(seconds) > 1 and spec.kind != "compile":
            timing["repeat_spread"] = round((max(seconds) - min(seconds)) / (sum(seconds) / len(seconds)), 4)
        last = runs[-1]
        if last["dit"] and spec.kind != "compile":
            calib.overhead = max(1.0, last["to_last_window_s"] / max(sum(last["dit"][:last["forwards_done"]]), 1e-9)) \
                if spec.kind != "context_windows" else calib.overhead
        rows.append(row)
        save()
        print(json.dumps({k: v for k, v in row.items() if k not in ("planned_calls_by_stage",)}), flush=True)
    save()
    scratch.cleanup()
    return 0


def run_summary(r: dict, spec: Spec, p: dict, N: int) -> dict:
    """The speed figures of one run (all in the row's ``timing``: they depend on the machine)."""
    dit = r["dit"]
    out = {"status": r["status"], "wall_s": round(r["wall_s"], 3), "dit_s": round(sum(dit), 3), "dit_forwards": len(dit),
           "dit_forward": stats(dit)}
    if r["status"] == "completed":
        wall = r["wall_s"]
        out.update({"dit_fraction": round(sum(dit) / wall, 4), "s_per_pixel_frame": round(wall / spec.frames, 4),
                    "s_per_latent": round(wall / N, 4), "s_per_model_call": round(wall / max(len(dit), 1), 4)})
    elif r["status"] == "partial" and r["windows_done"]:
        # projected: the measured seconds per model call, times the plan's windows. The forwards counted are those begun
        # by the last finished window (self-reflection's search windows included; with the executor's pipelining one more
        # than the windows handed back), timed to the end of the last of them on the device's timeline
        n = r["forwards_done"]
        span = r["dit_ends"][n - 1] if 0 < n <= len(r["dit_ends"]) else r["to_last_window_s"]
        per_call = span / max(n, r["windows_done"])
        out.update({"windows_done": r["windows_done"], "forwards_done": n, "to_last_window_s": round(r["to_last_window_s"], 3),
                    "to_last_forward_end_s": round(span, 3),
                    "dit_fraction": round(sum(dit[:n]) / span, 4) if span > 0 else None,
                    "s_per_model_call": round(per_call, 4),
                    "projected_s_per_pixel_frame": round(per_call * p["planned_calls"] / spec.frames, 4),
                    "projected_s_per_latent": round(per_call * p["planned_calls"] / N, 4)})
    if r["per_window"]:
        out["per_window"] = stats(r["per_window"])
    if len(dit) > 1 and len(r.get("dit_ends", [])) == len(dit):
        out["device_gap"] = stats(device_gaps(dit, r["dit_ends"]))
    if "dynamo" in r:
        out["dynamo"] = r["dynamo"]
    if "syncs" in r:
        out["syncs"] = {"total": sum(r["syncs"].values()), "per_model_call": round(sum(r["syncs"].values()) / max(len(dit), 1), 2),
                        "sites": dict(r["syncs"].most_common(15))}
    return out


if __name__ == "__main__":
    sys.exit(main())
