"""Which ToyDiT to ship: candidate weights side by side on own clips and on the demo's long-video job (issue 9).

    python benchmarks/toy_models.py --device cuda --weights shipped=toyworld/weights/toy_dit.safetensors \\
        new=/path/to/toy_dit.safetensors --out benchmarks/results/toy_models_cuda.json
    python benchmarks/toy_models.py --device cpu --prompts 2 --seeds 1 --long-videos 1 --long-frames 24 --weights a=... b=...

For every ``name=path``: the own-clip scores of ``benchmarks/train_toy.py`` (the 16 unseen test prompts, one
16-frame window each, noise seeds ``0 .. --seeds - 1``) and its long-video check (the demo's two-prompt job, full
MIGA, ``--long-videos`` prompt seeds, ``--long-frames`` frames): identity per segment and absent frames per video;
with ``--steps 24 32 48`` each candidate is sampled at each step count (a row per pair; the toy preset's is 24).
The issue's bar for a stronger model is own-clip identity >= 0.99 with no absent frame (seed 0); the long-video
rows show whether the queue, where frames sit at different levels unlike in training, gains as much.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from benchmarks.train_toy import TEST_SEED_BASE, long_videos, own_clips, summarize  # noqa: E402
from toyworld.model import load_model  # noqa: E402
from toyworld.sampling import TOY_STEPS  # noqa: E402
from toyworld.world import sample_spec  # noqa: E402

SCRIPT = "benchmarks/toy_models.py"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", required=True, help="name=path of each candidate (a toyworld save_model file)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="benchmarks/results/toy_models_cuda.json")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--long-videos", type=int, default=16)
    ap.add_argument("--long-frames", type=int, default=256)
    ap.add_argument("--steps", type=int, nargs="+", default=[TOY_STEPS],
                    help=f"sample every candidate at each of these step counts (own clips and long videos). Default: {TOY_STEPS}")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    candidates = dict(w.split("=", 1) for w in args.weights)
    device = torch.device(args.device)
    record.deterministic(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    head = record.header(SCRIPT, vars(args), device, dtype=dtype, argv=argv)
    head["weights_sha256"] = {n: hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest() for n, p in candidates.items()}
    out, date, t0 = record.resolve_out(args.out), record.now(), time.perf_counter()
    specs = [sample_spec(TEST_SEED_BASE + p) for p in range(args.prompts)]
    rows = []
    for name, path in candidates.items():
        model = load_model(path, device=device, dtype=dtype)
        for steps in args.steps:
            t = time.perf_counter()
            with torch.no_grad():
                clips, _ = own_clips(model, specs, args.seeds, device, steps=steps)
                long = long_videos(model, args.long_videos, args.long_frames, device, steps=steps) if args.long_videos else None
            rows.append({"weights": name, "steps": steps, "params": sum(p.numel() for p in model.parameters()), "config": vars(model.config),
                         "own_clips_seed0": summarize([c for c in clips if c["seed"] == 0]), "own_clips_all_seeds": summarize(clips),
                         "long_videos": long, "timing": {"seconds": round(time.perf_counter() - t, 1)}})
            print(name, steps, {k: rows[-1][k] for k in ("own_clips_seed0",)},
                  {k: v for k, v in (long or {}).items() if k != "per_video"}, flush=True)
            record.write(out, "toy_models", head, rows, {"date": date, "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
