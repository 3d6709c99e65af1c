"""Cost of miga_core itself (everything but the model) at Wan2.1 sizes, on CPU or GPU.

    python benchmarks/core_overhead.py --device cuda --out benchmarks/results/core_overhead_cuda.json

The denoiser is a trivial elementwise stand-in, so the time measured is the queue's own
bookkeeping, noise and sampler steps; the peak memory is what the queue holds. Runs the
paper's Wan2.1 preset (f0=21, L_zig=7, u=9, m=4, self-reflection) over a 480x832 latent
(16x60x104) for several video lengths, with the latents on the GPU and with the latents on the
CPU and only windows on the GPU (``compute_device``), and checks the GPU result against the CPU one.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks import record  # noqa: E402
from miga_core import generate, preset  # noqa: E402

SCRIPT = "benchmarks/core_overhead.py"


class Elementwise:
    """x0 = 0.9 x, per frame: no cross-batch or cross-frame work, device-agnostic."""

    calls = 0

    def __call__(self, x, sigma, prompt):
        self.calls += x.shape[0]
        return x * 0.9


def run(num_frames: int, device: str, steps: int, reflection: bool, storage: str | None = None) -> dict:
    """One run; ``storage`` keeps the latents there (e.g. "cpu") while windows go to ``device``."""
    config, guidance, refl = preset("wan21-paper")  # the profile of its record (the paper's Wan2.1 options)
    config = config.with_(seed=1, compute_device=device if storage else None)
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    res = generate(Elementwise(), sigmas, num_frames, config, latent_shape=(1, 16, 60, 104), device=storage or device,
                   guidance=guidance, reflection=refl if reflection else None)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    row = {
        "device": device,
        "latents_on": storage or device,
        "num_frames": num_frames,
        "num_pixel_frames": 4 * (num_frames - 1) + 1,
        "steps": steps,
        "reflection": reflection,
        "windows": res.num_windows,
        "windows_per_latent": round(res.num_windows / num_frames, 3),
        "n_corr": res.reflection.n_corr,
        "timing": {"seconds": round(seconds, 3), "ms_per_window": round(1000 * seconds / res.num_windows, 3)},
    }
    if device == "cuda":
        row["peak_mib_over_base"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
    return row, res.latents


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, nargs="+", default=[41, 161, 641])
    ap.add_argument("--steps", type=int, default=54)
    ap.add_argument("--out", default="benchmarks/results/core_overhead_cuda.json")
    args = ap.parse_args(argv)
    head = record.header(SCRIPT, {k: v for k, v in vars(args).items() if k != "out"}, args.device,
                         code=("miga_core", "benchmarks/record.py"), argv=sys.argv[1:] if argv is None else argv)
    t0, date = time.perf_counter(), record.now()
    rows = []
    storages = [None, "cpu"] if args.device != "cpu" else [None]
    for storage in storages:
        for n in args.frames:
            for refl in (False, True):
                row, latents = run(n, args.device, args.steps, refl, storage)
                if args.device != "cpu" and n == args.frames[0] and not refl:
                    _, cpu_latents = run(n, "cpu", args.steps, refl)
                    row["max_abs_diff_vs_cpu"] = float((latents.cpu() - cpu_latents).abs().max())
                rows.append(row)
                print(json.dumps(row), flush=True)
                record.write(record.resolve_out(args.out), "core_overhead", head, rows,
                             {"date": date, "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
