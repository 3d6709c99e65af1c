"""The main job: a long, prompt-scheduled MIGA video from the shipped toy model, on the CPU.

    python -m toyworld.demo --num-frames 256 --out out/demo

Loads ``toyworld/weights/toy_dit.safetensors`` (trained by ``toyworld.train``), generates
``--num-frames`` frames with MIGA (two stages, long-range guidance, self-reflection) under a
two-prompt schedule (the object changes colour halfway), shows a progress bar, and writes
``video.mp4`` (PyAV) and ``metrics.json`` (the toy world's VBench-style metrics).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import torch

from miga_core import WindowInfo

from .metrics import evaluate, switch_error
from .model import load_model
from .sampling import TOY_STEPS, generate_videos, toy_preset
from .train import EVAL_SEED_BASE
from .video import write_mp4
from .world import COLOURS, sample_spec

__all__ = ["WEIGHTS", "ProgressBar", "main"]

WEIGHTS = pathlib.Path(__file__).resolve().parent / "weights" / "toy_dit.safetensors"


class ProgressBar:
    """A one-line progress bar on stderr, redrawn when the percentage or the stage changes."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.shown: tuple[int, str] | None = None

    def __call__(self, info: WindowInfo) -> None:
        total = max(1, info.total_windows)
        key = (100 * info.window // total, info.stage)
        if key == self.shown and info.window != info.total_windows:
            return
        self.shown = key
        done = self.width * info.window // total
        sys.stderr.write(f"\r[{'#' * done}{'.' * (self.width - done)}] {key[0]:3d}% window {info.window}/{info.total_windows} "
                         f"{info.stage:<12} frames {info.frames_done}/{info.num_frames}")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-frames", type=int, default=256, help="frames to generate (one latent each; default 256)")
    ap.add_argument("--steps", type=int, default=TOY_STEPS, help=f"ladder steps T (default {TOY_STEPS})")
    ap.add_argument("--unified-steps", type=int, default=None, help="u (default: the toy preset's)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed and prompt choice")
    ap.add_argument("--weights", type=pathlib.Path, default=WEIGHTS)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/demo"))
    args = ap.parse_args(argv)

    with torch.no_grad():
        return _run(args)


def _run(args: argparse.Namespace) -> dict:
    model = load_model(str(args.weights))
    config, guidance, reflection = toy_preset()
    config = config.with_(seed=args.seed, **({} if args.unified_steps is None else {"unified_steps": args.unified_steps}))
    first = sample_spec(EVAL_SEED_BASE + args.seed)
    second = first.with_(colour=COLOURS[(COLOURS.index(first.colour) + 2) % len(COLOURS)])
    switch = args.num_frames // 2
    t0 = time.perf_counter()
    run = generate_videos(model, [[first, second]], args.num_frames, config, starts=(0, switch), steps=args.steps,
                          guidance=guidance, reflection=reflection, callback=ProgressBar())
    seconds = time.perf_counter() - t0
    sys.stderr.write("\n")
    video = run.video[0]
    args.out.mkdir(parents=True, exist_ok=True)
    write_mp4(str(args.out / "video.mp4"), video)
    stats = run.result.reflection
    metrics = {
        "prompts": {"0": first.prompt(), str(switch): second.prompt()},
        "num_frames": args.num_frames,
        "steps": args.steps,
        "seconds": round(seconds, 2),
        "seconds_per_frame": round(seconds / args.num_frames, 4),
        "model_calls": run.result.num_windows,
        "model_calls_per_frame": round(run.result.num_windows / args.num_frames, 3),
        "first_segment": evaluate(video[:switch], first),
        "second_segment": evaluate(video[switch:], second),
        "switch": switch_error(video, [first, second], [0, switch]),
        "reflection": {"n_all": stats.n_all, "n_eval": stats.n_eval, "n_corr": stats.n_corr,
                       "R_corr": round(stats.r_corr, 4), "R_succ": round(stats.r_succ, 4)},
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    print(json.dumps(metrics, default=float))
    return metrics


if __name__ == "__main__":
    main()
