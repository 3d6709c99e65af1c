"""The shipped ToyDiT's own 16-frame clips: identity accuracy and the other metrics, plus a contact sheet.

    python benchmarks/toy_clips.py --out benchmarks/results/toy_clips_cpu.json --sheet docs/toy_clips.png

Plain sampling of one window (``unified_steps = T``: every frame at one level, as in training),
prompts from evaluation seeds never used in training. This shows the model itself follows its
prompt before any queue is involved.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toyworld.demo import WEIGHTS  # noqa: E402
from toyworld.metrics import evaluate_batch  # noqa: E402
from toyworld.model import load_model  # noqa: E402
from toyworld.sampling import TOY_STEPS, generate_videos, toy_preset  # noqa: E402
from toyworld.train import EVAL_SEED_BASE  # noqa: E402
from toyworld.video import contact_sheet  # noqa: E402
from toyworld.world import sample_spec  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/toy_clips_cpu.json")
    ap.add_argument("--sheet", default="docs/toy_clips.png")
    args = ap.parse_args(argv)
    with torch.no_grad():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    model = load_model(str(WEIGHTS))
    config, _, _ = toy_preset()
    one_window = config.with_(unified_steps=TOY_STEPS, zigzag_width=1)
    specs = [sample_spec(EVAL_SEED_BASE + 1000 + p) for p in range(args.prompts)]
    videos, t0 = [], time.perf_counter()
    for seed in range(args.seeds):
        videos.append(generate_videos(model, [[s] for s in specs], 16, one_window.with_(seed=seed)).video)
    seconds = time.perf_counter() - t0
    video = torch.cat(videos)
    scores = evaluate_batch(video, specs * args.seeds)
    row = {"clips": f"{args.prompts} prompts x {args.seeds} seeds x 16 frames"}
    row.update({k: f"{scores['mean'][k]:.4f} ± {scores['std'][k]:.4f}" for k in scores["mean"]})
    row["seconds_per_clip"] = round(seconds / len(video), 2)
    meta = {"device": platform.processor() or "cpu", "torch": torch.__version__, "steps": TOY_STEPS,
            "sheet": args.sheet, "model": "toyworld/weights/toy_dit.safetensors"}
    out = ROOT / args.out
    out.write_text(json.dumps({"benchmark": "toy_clips", "meta": meta, "rows": [row]}, indent=1) + "\n")
    sheet = ROOT / args.sheet
    sheet.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(video[:8], str(sheet), frames=8, scale=2)
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
