"""The shipped ToyDiT's own 16-frame clips: identity accuracy and the other metrics, plus a contact sheet.

    python benchmarks/toy_clips.py                      # CPU: benchmarks/results/toy_clips_cpu.json and docs/toy_clips.png
    python benchmarks/toy_clips.py --device cuda        # GPU (bf16): benchmarks/results/toy_clips_cuda.json
    python benchmarks/toy_clips.py --steps 18 --seeds 4 --sheet '' --out benchmarks/results/toy_clips_18steps_cpu.json
                                                        # at the CPU demo workflow's 18 steps (its host test's bar)

Plain sampling of one window (``unified_steps = T``: every frame at one level, as in training),
prompts from evaluation seeds never used in training. This shows the model itself follows its
prompt before any queue is involved.
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

from toyworld.demo import WEIGHTS  # noqa: E402
from toyworld.metrics import evaluate  # noqa: E402
from toyworld.model import load_model  # noqa: E402
from toyworld.sampling import TOY_STEPS, generate_videos, toy_preset  # noqa: E402
from toyworld.train import EVAL_SEED_BASE  # noqa: E402
from toyworld.video import contact_sheet  # noqa: E402
from toyworld.world import sample_spec  # noqa: E402

SCRIPT = "benchmarks/toy_clips.py"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=TOY_STEPS, help=f"Euler steps of the toy ladder (default: the toy preset's {TOY_STEPS})")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/toy_clips_<device type>.json")
    ap.add_argument("--sheet", default="docs/toy_clips.png", help="contact sheet of the first 8 clips ('' for none)")
    args = ap.parse_args(argv)
    with torch.no_grad():
        return _run(args, sys.argv[1:] if argv is None else argv)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    device = torch.device(args.device)
    record.deterministic(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = load_model(str(WEIGHTS), device=device, dtype=dtype)
    head = record.header(SCRIPT, {k: v for k, v in vars(args).items() if k != "out"}, device, dtype=dtype, argv=argv)
    head["steps"] = args.steps
    config, _, _ = toy_preset()
    one_window = config.with_(unified_steps=args.steps, zigzag_width=1)
    specs = [sample_spec(EVAL_SEED_BASE + 1000 + p) for p in range(args.prompts)]
    videos, t0, date = [], time.perf_counter(), record.now()
    for seed in range(args.seeds):
        videos.append(generate_videos(model, [[s] for s in specs], 16, one_window.with_(seed=seed), steps=args.steps, device=device).video)
    seconds = time.perf_counter() - t0
    video = torch.cat(videos)
    scores = [evaluate(v, s) for v, s in zip(video, specs * args.seeds)]
    row = {"clips": f"{args.prompts} prompts x {args.seeds} seeds x 16 frames"}
    row.update({k: [round(sc[k], 6) for sc in scores] for k in scores[0]})
    row["timing"] = {"seconds_per_clip": round(seconds / len(video), 3)}
    out = record.resolve_out(args.out or f"benchmarks/results/toy_clips_{device.type}.json")
    record.write(out, "toy_clips", head, [row], {"date": date, "seconds": round(time.perf_counter() - t0, 1)})
    if args.sheet:
        sheet = record.resolve_out(args.sheet)
        sheet.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(video[:8], str(sheet), frames=8, scale=2)
    print(json.dumps({k: v for k, v in row.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
