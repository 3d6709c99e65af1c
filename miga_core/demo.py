"""The main job on an embedded default: a long MIGA video from a model that ships with the code.

    python -m miga_core.demo --num-frames 256 --out out/demo

Runs MIGA (two stages, long-range guidance, self-reflection, a two-prompt schedule) with the
:class:`~miga_core.gp_denoiser.GaussianProcessDenoiser` on the CPU, shows a progress bar, and
writes ``latents.safetensors`` (``[1, C, N, H, W]``) and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import torch
from safetensors.torch import save_file

from . import GuidanceOptions, MigaConfig, PromptSchedule, ReflectionOptions, WindowInfo, generate
from .gp_denoiser import GaussianProcessDenoiser


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
    ap.add_argument("--num-frames", type=int, default=256, help="latent frames to generate (default 256)")
    ap.add_argument("--steps", type=int, default=24, help="ladder steps T (default 24)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score-on", choices=["latent", "denoised"], default="latent", help="self-reflection score input [D5]")
    ap.add_argument("--threshold", type=float, default=0.01, help="self-reflection delta [D5]")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/demo"))
    args = ap.parse_args(argv)

    config = MigaConfig(window_length=16, zigzag_width=4, unified_steps=4, seed=args.seed)
    prompts = PromptSchedule.equal_segments(2, max(1, args.num_frames // 2))
    denoiser = GaussianProcessDenoiser(length_scale=4.0, prompt_means=torch.tensor([[1.0, -1.0, 0.5, 0.0], [-1.0, 1.0, 0.0, 0.5]]))
    sigmas = torch.linspace(1.0, 0.0, args.steps + 1)
    t0 = time.perf_counter()
    result = generate(denoiser, sigmas, args.num_frames, config, latent_shape=(1, 4, 8, 8),
                      guidance=GuidanceOptions(num_guidance=2), reflection=ReflectionOptions(threshold=args.threshold, score_on=args.score_on), prompts=prompts,
                      callback=ProgressBar())
    seconds = time.perf_counter() - t0
    sys.stderr.write("\n")
    x = result.latents
    step = (x[:, :, 1:] - x[:, :, :-1]).abs().mean().item()
    metrics = {
        "num_frames": args.num_frames,
        "steps": args.steps,
        "seconds": round(seconds, 3),
        "seconds_per_frame": round(seconds / args.num_frames, 5),
        "model_calls": result.num_windows,
        "model_calls_per_frame": round(result.num_windows / args.num_frames, 3),
        "mean_abs_frame_change": round(step, 5),
        "reflection": {"n_all": result.reflection.n_all, "n_eval": result.reflection.n_eval, "n_corr": result.reflection.n_corr,
                       "R_corr": round(result.reflection.r_corr, 4), "R_succ": round(result.reflection.r_succ, 4)},
        "finite": bool(torch.isfinite(x).all()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({"latents": x.contiguous()}, str(args.out / "latents.safetensors"))
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
