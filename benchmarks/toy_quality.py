"""FIFO-Diffusion vs MIGA on the toy world: the paper's ablation rows, sweeps and the open choices of docs/algorithm.md.

    python benchmarks/toy_quality.py --device cuda --out benchmarks/results/toy_quality_cuda.json      # full (GPU)
    python benchmarks/toy_quality.py --reduced --out /tmp/toy_quality_ci.json                         # CI size (CPU)

The full run was split by row group over three device commands (``--only``), merged in row order.

Every row generates the same videos (``--prompts`` prompts x ``--seeds`` seeds, ``--num-frames``
frames, prompts drawn from evaluation seeds never used in training) with the shipped ToyDiT and
scores them with ``toyworld.metrics`` (mean and std over videos). A row's videos run as one latent
batch, so self-reflection decides per batch (its score averages the batch's videos) — a
simplification of the paper's per-video search. ``multi_prompt`` rows switch the object's colour
at the middle frame and report how far from the scheduled frame the switch lands.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import platform
import sys
import time
from dataclasses import replace

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miga_core import GuidanceOptions, ReflectionOptions  # noqa: E402
from toyworld.demo import WEIGHTS  # noqa: E402
from toyworld.metrics import evaluate, switch_error  # noqa: E402
from toyworld.model import load_model  # noqa: E402
from toyworld.sampling import generate_videos, toy_preset  # noqa: E402
from toyworld.train import EVAL_SEED_BASE  # noqa: E402
from toyworld.world import COLOURS, sample_spec  # noqa: E402

METRICS = ("subject_consistency", "background_consistency", "motion_smoothness", "temporal_flicker", "identity_accuracy")


def rows() -> list[tuple[str, str, dict]]:
    """(group, name, changes) for every row; changes apply to the toy preset (full MIGA)."""
    off = {"guidance": None, "reflection": None}
    fifo = {"mode": "fifo", "zigzag_width": 1, "unified_steps": 0, **off}
    out = [
        ("ablation", "FIFO-Diffusion", fifo),
        ("ablation", "+zigzag stage", {"unified_steps": 0, **off}),
        ("ablation", "+unified stage (TTA)", off),
        ("ablation", "DCE only", {"zigzag_width": 1, "unified_steps": 0}),
        ("ablation", "full MIGA", {}),
    ]
    out += [("zigzag_width", f"L_zig={w}", {"zigzag_width": w}) for w in (2, 4, 8)]
    out += [("unified_steps", f"u={u}", {"unified_steps": u}) for u in (0, 3, 6, 12)]
    out += [("num_guidance", f"m_guid={m}", {"num_guidance": m}) for m in (0, 2, 4, 6)]
    out += [("threshold", f"delta={d}", {"threshold": d}) for d in (0.0, 0.01, 0.03, 0.1)]
    out += [("update", f"update={u}", {"update": u}) for u in ("lookahead", "former")]
    out += [("score_on", f"score_on={s}", {"score_on": s}) for s in ("latent", "denoised")]
    out += [("judge_position", f"judge={j}", {"judge_position": j}) for j in (None, 24, 48)]
    out += [("multi_prompt", "FIFO-Diffusion (2 prompts)", {**fifo, "multi": True}),
            ("multi_prompt", "full MIGA (2 prompts)", {"multi": True})]
    return out


def reduced_rows() -> list[tuple[str, str, dict]]:
    keep = {"FIFO-Diffusion", "full MIGA", "full MIGA (2 prompts)"}
    return [r for r in rows() if r[1] in keep]


def options(changes: dict):
    """The MigaConfig, GuidanceOptions and ReflectionOptions of a row."""
    config, guidance, reflection = toy_preset()
    changes = dict(changes)
    changes.pop("multi", None)
    if changes.pop("guidance", "keep") is None:
        guidance = None
    if changes.pop("reflection", "keep") is None:
        reflection = None
    if "num_guidance" in changes:
        m = changes.pop("num_guidance")
        guidance = GuidanceOptions(num_guidance=m) if m else None
    for key in ("threshold", "score_on", "judge_position"):
        if key in changes:
            reflection = replace(reflection or ReflectionOptions(), **{key: changes.pop(key)})
    return config.with_(**changes), guidance, reflection


def mean_std(values: list[float]) -> str:
    t = torch.tensor([v for v in values if v is not None and math.isfinite(v)], dtype=torch.float64)
    if not len(t):
        return "n/a"
    return f"{t.mean():.4f} ± {t.std(unbiased=False):.4f}"


def run_row(model, name: str, changes: dict, args, device) -> dict:
    config, guidance, reflection = options(changes)
    config = config.with_(window_batch=args.window_batch, compute_device=None)
    multi = changes.get("multi", False)
    scores: dict[str, list[float]] = {k: [] for k in METRICS}
    switch: list[float] = []
    calls = seconds = 0.0
    r_all = r_eval = r_corr = 0
    for seed in range(args.seeds):
        specs = [sample_spec(EVAL_SEED_BASE + 1000 + p) for p in range(args.prompts)]
        prompts = [[s, s.with_(colour=COLOURS[(COLOURS.index(s.colour) + 2) % len(COLOURS)])] if multi else [s] for s in specs]
        mid = args.num_frames // 2
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run = generate_videos(model, prompts, args.num_frames, config.with_(seed=seed), starts=(0, mid) if multi else (0,),
                              steps=args.steps, guidance=guidance, reflection=reflection, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        calls += run.result.num_windows
        stats = run.result.reflection
        r_all, r_eval, r_corr = r_all + stats.n_all, r_eval + stats.n_eval, r_corr + stats.n_corr
        for video, row in zip(run.video.to(device), prompts):  # metrics on the GPU too: they dominate otherwise
            segments = [(video[:mid], row[0]), (video[mid:], row[1])] if multi else [(video, row[0])]
            for key in METRICS:
                scores[key].append(sum(evaluate(v, s)[key] for v, s in segments) / len(segments))
            if multi:
                err = switch_error(video, row, [0, mid])
                switch.append(abs(err["errors"][0]) if err["errors"][0] is not None else float("inf"))
    videos = args.prompts * args.seeds
    out = {"row": name, **{k: mean_std(v) for k, v in scores.items()}}
    if multi:
        landed = [e for e in switch if math.isfinite(e)]
        out["switch_error_frames"] = mean_std(landed) if landed else "never"
        out["switch_landed"] = f"{len(landed)}/{len(switch)}"
    out.update({
        "model_calls_per_frame": round(calls / (args.seeds * args.num_frames), 3),
        "seconds_per_frame": round(seconds / (videos * args.num_frames), 5),
        "R_corr": round(r_corr / r_all, 3) if r_all else "-",
        "R_succ": round(r_corr / r_eval, 3) if r_eval else "-",
    })
    print(json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/toy_quality_cuda.json")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--num-frames", type=int, default=256)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--window-batch", type=int, default=8, help="windows per model call (results are identical for any value)")
    ap.add_argument("--reduced", action="store_true", help="CI size: 2 prompts, 1 seed, 24 frames, 16 steps, 3 rows")
    ap.add_argument("--only", default=None, help="comma-separated row groups to run")
    ap.add_argument("--skip-rows", default="", help="comma-separated row names to skip (already measured)")
    args = ap.parse_args(argv)
    if args.reduced:
        args.prompts, args.seeds, args.num_frames, args.steps, args.window_batch = 2, 1, 24, 16, 4
    with torch.no_grad():
        return _run(args, torch.device(args.device))


def _run(args: argparse.Namespace, device: torch.device) -> int:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = load_model(str(WEIGHTS), device=device, dtype=dtype)
    selected = reduced_rows() if args.reduced else rows()
    if args.only:
        selected = [r for r in selected if r[0] in args.only.split(",")]
    selected = [r for r in selected if r[1] not in args.skip_rows.split(",")]
    meta = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu", "torch": torch.__version__,
            "dtype": str(dtype).split(".")[-1], "videos_per_row": f"{args.prompts} prompts x {args.seeds} seeds",
            "num_frames": args.num_frames, "steps": args.steps, "preset": "toy (f0=16, L_zig=4, u=6, m_guid=4, delta=0.01)"}
    results = []
    out = ROOT / args.out if not pathlib.Path(args.out).is_absolute() else pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}  # rows with identical options are measured once
    for group, name, changes in selected:
        key = repr((options(changes), changes.get("multi", False)))
        row = done[key] = {**done[key], "row": name} if key in done else run_row(model, name, changes, args, device)
        results.append({"group": group, **row, "reflection_decided": "per video"})
        out.write_text(json.dumps({"benchmark": "toy_quality", "meta": meta, "rows": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
