"""Progress and ETA of a toy-model run with self-reflection on: does the bar go backwards, is the ETA right?

    python benchmarks/progress_eta.py --device cuda --out benchmarks/results/progress_eta_cuda.json
    python benchmarks/progress_eta.py --num-frames 24 --steps 16 --out /tmp/progress.json        # quick CPU check

Runs the demo's setting (``toyworld.demo``: one video, two prompts switching colour at the middle frame,
the toy preset with long-range guidance and self-reflection) and, with ``--batch``, the same with that
many videos in one latent batch, and with ``--long-frames`` one longer video (the 256-frame toy run lasts
about 20 s on the GPU, so its first 10% is mostly the first seconds' warm-up). The callback records at every window: elapsed seconds, ``window``,
``total_windows``, the stage, and the core's ``eta_seconds``, ``model_calls`` and ``search_windows``.
Two ETAs are scored against the real remaining time
(end of run minus now), as |ETA - remaining| / remaining at the first window past 10% (and 25, 50, 75%)
of ``total_windows``:

- ``eta_core``: the core's own ``eta_seconds``;
- ``eta_bar``: what a progress bar derives from ``window``/``total_windows`` alone (ComfyUI, tqdm):
  elapsed / window * (total_windows - window).

Deterministic fields (window counts, whether ``total_windows`` ever changed, whether ``window`` never
went back) sit in the row; times, ETAs and their errors in its ``timing``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from toyworld.demo import WEIGHTS  # noqa: E402
from toyworld.model import load_model  # noqa: E402
from toyworld.sampling import TOY_STEPS, generate_videos, toy_preset  # noqa: E402
from toyworld.train import EVAL_SEED_BASE  # noqa: E402
from toyworld.world import COLOURS, sample_spec  # noqa: E402

SCRIPT = "benchmarks/progress_eta.py"
FRACTIONS = (0.1, 0.25, 0.5, 0.75)
TRACE_POINTS = 100  # trace samples kept in the JSON


class Recorder:
    """Callback that keeps (elapsed, window, total_windows, stage, eta_seconds, model_calls, search_windows) per window."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.t0 = time.perf_counter()
        self.points: list[tuple] = []

    def __call__(self, info) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.points.append((time.perf_counter() - self.t0, info.window, info.total_windows, info.stage,
                            info.eta_seconds, info.model_calls, info.search_windows))


def eta_errors(points: list[tuple], end: float) -> dict:
    """Per fraction f: the first point with window >= f * total_windows, its ETAs and their relative errors."""
    out = {}
    for f in FRACTIONS:
        p = next((p for p in points if p[1] >= f * p[2]), None)
        if p is None:
            continue
        elapsed, window, total, _, eta_core = p[:5]
        remaining = end - elapsed
        eta_bar = elapsed / window * (total - window)

        def err(eta):
            return None if eta is None or remaining <= 0 else round(abs(eta - remaining) / remaining, 4)

        out[f"{int(f * 100)}%"] = {"window": window, "total_windows": total, "elapsed_s": round(elapsed, 3),
                                   "real_remaining_s": round(remaining, 3),
                                   "eta_core_s": None if eta_core is None else round(eta_core, 3), "eta_core_error": err(eta_core),
                                   "eta_bar_s": round(eta_bar, 3), "eta_bar_error": err(eta_bar)}
    return out


def measure(model, videos: int, num_frames: int, args: argparse.Namespace, device: torch.device) -> dict:
    """One run of ``videos`` videos of ``num_frames`` frames in a batch (demo prompts, seeds ``args.seed..``); the row."""
    config, guidance, reflection = toy_preset()
    config = config.with_(seed=args.seed, window_batch=args.window_batch)
    rows = []
    for v in range(videos):
        first = sample_spec(EVAL_SEED_BASE + args.seed + v)
        rows.append([first, first.with_(colour=COLOURS[(COLOURS.index(first.colour) + 2) % len(COLOURS)])])
    rec = Recorder(device)
    run = generate_videos(model, rows, num_frames, config, starts=(0, num_frames // 2), steps=args.steps,
                          guidance=guidance, reflection=reflection, callback=rec, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter() - rec.t0
    pts = rec.points
    totals = [p[2] for p in pts]
    windows = [p[1] for p in pts]
    stats = run.result.reflection
    step = max(1, len(pts) // TRACE_POINTS)
    trace = [[round(p[0], 3), p[1], p[2], None if p[4] is None else round(p[4], 3)] for p in pts[::step]]
    return {
        "videos": videos,
        "num_frames": num_frames,
        "callbacks": len(pts),
        "window_first_last": [windows[0], windows[-1]] if windows else [],
        "total_windows_first_last": [totals[0], totals[-1]] if totals else [],
        "total_windows_changed": len(set(totals)) > 1,
        "total_windows_increases": sum(b > a for a, b in zip(totals, totals[1:])),
        "window_monotone": all(b >= a for a, b in zip(windows, windows[1:])),  # never goes backwards (search windows repeat it)
        "window_ends_at_total": bool(pts) and windows[-1] == totals[-1],
        "core_reports_eta": any(p[4] is not None for p in pts),
        "num_windows": run.result.num_windows,
        "model_calls": run.result.model_calls,
        "search_windows": pts[-1][6] if pts else None,
        "reflection_n_all": stats.n_all, "reflection_n_eval": stats.n_eval, "reflection_n_corr": stats.n_corr,
        "timing": {"seconds": round(end, 3), "eta": eta_errors(pts, end),
                   "trace_columns": ["elapsed_s", "window", "total_windows", "eta_core_s"], "trace": trace},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/progress_eta_cuda.json")
    ap.add_argument("--num-frames", type=int, default=256)
    ap.add_argument("--steps", type=int, default=TOY_STEPS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window-batch", type=int, default=1, help="windows per model call (the demo's 1)")
    ap.add_argument("--batch", type=int, default=0, help="also run this many videos in one batch (0: the demo's single video only)")
    ap.add_argument("--long-frames", type=int, default=0,
                    help="also run one video of this many frames (0: none): a run long enough that its first 10%% is past warm-up")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    record.deterministic(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    t0, date = time.perf_counter(), record.now()
    with torch.no_grad():
        model = load_model(str(WEIGHTS), device=device, dtype=dtype)
        head = record.header(SCRIPT, {k: v for k, v in vars(args).items() if k != "out"}, device, dtype=dtype,
                             argv=sys.argv[1:] if argv is None else argv)
        rows = []
        runs = [(1, args.num_frames)] + ([(args.batch, args.num_frames)] if args.batch > 1 else []) \
            + ([(1, args.long_frames)] if args.long_frames else [])
        for videos, frames in runs:
            rows.append(measure(model, videos, frames, args, device))
            record.write(record.resolve_out(args.out), "progress_eta", head, rows,
                         {"date": date, "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
