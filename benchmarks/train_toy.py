"""Train a ToyDiT and judge it, in one command under one wall-time budget (the device run of issue 9).

    python -m benchmarks.train_toy --out $OUT/toy --budget-minutes 8.5                 # H200: train ~7 min, evaluate
    python -m benchmarks.train_toy --out /tmp/toy --device cpu --budget-minutes 3 --prompts 2 --val-prompts 2 \\
        --long-videos 1 --long-frames 24 -- --steps 3 --batch 2 --dim 32 --depth 1 --heads 1   # CPU smoke test

Arguments after ``--`` go to ``python -m toyworld.train`` (``--dim --depth --heads --batch --lr ...``;
its defaults are the recipe); ``--out``, ``--device``, ``--minutes`` and ``--save-raw`` are set here. Steps:

1. train until ``--budget-minutes - --eval-minutes`` of this process's wall time have passed
   (the cosine learning-rate schedule ends there), writing the EMA and the raw weights;
2. pick one of the two on **validation** prompts (``VAL_SEED_BASE``, never in training nor in the
   test set): the higher own-clip identity accuracy, then the fewer absent frames, EMA on a tie;
3. score both on the **test** prompts: the 16 unseen prompts of ``benchmarks/toy_clips.py``
   (``EVAL_SEED_BASE + 1000 + p``), one 16-frame window each (every frame at one level, as in
   training), noise seeds ``0 .. --seeds - 1``; seed 0 is exactly toy_clips' run;
4. the demo's job (two prompts, the colour switching halfway, full MIGA) for ``--long-videos``
   prompt seeds at once, ``--long-frames`` frames, cancelled 5 s before the budget ends.

Scores per clip: ``identity_accuracy`` (toyworld.metrics), and a local presence check (a
stand-in until toyworld.metrics has its own): a frame's object is *absent* when fewer pixels
than ``ABSENT_FRACTION`` of the prompted shape's area (``radius`` from the spec) lie within
``OBJECT_DISTANCE`` of any object colour; a clip with an absent frame blinks. ``max_jump_px``:
the largest move of the object pixels' centroid between consecutive frames with the object
present (the world moves it <= 1.5 px a frame). The target (issue 9): on the test prompts with
seed 0, mean identity >= 0.99 and no absent frame.

Writes into ``--out``: ``toy_dit.safetensors`` (the selected weights), ``toy_dit_ema.safetensors``
or ``toy_dit_raw.safetensors`` (the other one), ``train_config.json`` (plus ``selected``),
``train_log.jsonl``, ``train_toy.json`` (this record) and ``toy_clips.png`` (the test clips of
seed 0, the selected weights, all 16 frames).
"""

from __future__ import annotations

import time

IMPORTED = time.perf_counter()  # as a script (python -m), the budget counts from here: the imports are part of the run

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from toyworld import train  # noqa: E402
from toyworld.metrics import OBJECT_DISTANCE, identity_accuracy, switch_error  # noqa: E402
from toyworld.model import load_model  # noqa: E402
from toyworld.sampling import TOY_STEPS, generate_videos, toy_preset  # noqa: E402
from toyworld.video import contact_sheet  # noqa: E402
from toyworld.world import COLOUR_RGB, COLOURS, ClipSpec, sample_spec  # noqa: E402

SCRIPT = "benchmarks/train_toy.py"
VAL_SEED_BASE = train.EVAL_SEED_BASE + 5000  # validation prompts: not in training, not toy_clips' or the demo's
TEST_SEED_BASE = train.EVAL_SEED_BASE + 1000  # benchmarks/toy_clips.py's prompts
ABSENT_FRACTION = 0.25  # of the shape's area: fewer object-coloured pixels and the object is absent
SHAPE_AREA = {"circle": math.pi, "square": 4.0, "triangle": 2.0}  # area / radius^2 (toyworld.world's shapes)
TARGET_IDENTITY = 0.99


def presence(video: torch.Tensor, spec: ClipSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame of ``video [F, 3, H, W]`` (32 x 32, [0, 1]): ``(area_ratio [F], centroid [F, 2] px)``.

    ``area_ratio``: pixels within OBJECT_DISTANCE (RGB) of any object colour over the area of
    ``spec``'s shape at its radius (about 0.7-1 for a drawn object: the anti-aliased rim does
    not count); ``centroid``: (x, y) of those pixels, NaN where there are none.
    """
    palette = torch.tensor([COLOUR_RGB[c] for c in COLOURS])
    video = video.float().cpu()
    close = ((video[:, None] - palette[None, :, :, None, None]).norm(dim=2) < OBJECT_DISTANCE).any(1)  # [F, H, W]
    count = close.flatten(1).sum(1).float()
    h, w = close.shape[1:]
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    centroid = torch.stack([(close * xs).flatten(1).sum(1), (close * ys).flatten(1).sum(1)], 1) / count[:, None]
    scale = (h / 32) ** 2  # world px -> rendered px
    return count / (SHAPE_AREA[spec.shape] * spec.radius**2 * scale), centroid


def score_clip(video: torch.Tensor, spec: ClipSpec) -> dict:
    """``identity_accuracy``, ``absent_frames`` (indices) and ``max_jump_px`` of one clip ``[F, 3, H, W]``."""
    ratio, centroid = presence(video, spec)
    present = ratio >= ABSENT_FRACTION
    both = present[1:] & present[:-1]
    jumps = (centroid[1:] - centroid[:-1]).norm(dim=1)[both]
    return {"identity_accuracy": identity_accuracy(video, spec),
            "absent_frames": [int(i) for i in torch.nonzero(~present).flatten()],
            "max_jump_px": round(float(jumps.max()), 2) if len(jumps) else None}


def summarize(scores: list[dict]) -> dict:
    """Mean/min identity, clips that blink, absent frames and the largest jump over ``scores``."""
    ident = torch.tensor([s["identity_accuracy"] for s in scores], dtype=torch.float64)
    jumps = [s["max_jump_px"] for s in scores if s["max_jump_px"] is not None]
    return {"clips": len(scores), "identity_mean": round(float(ident.mean()), 4), "identity_std": round(float(ident.std(unbiased=False)), 4),
            "identity_min": round(float(ident.min()), 4), "clips_with_absent_frames": sum(bool(s["absent_frames"]) for s in scores),
            "absent_frames": sum(len(s["absent_frames"]) for s in scores), "max_jump_px": max(jumps) if jumps else None}


def own_clips(model, specs: list[ClipSpec], seeds: int, device: torch.device) -> tuple[list[dict], torch.Tensor]:
    """toy_clips' sampling: one window of 16 frames per prompt, all at one level, noise seeds 0..seeds-1.

    Returns per-clip scores (seed-major: seed 0's clips first) and seed 0's videos ``[P, 16, 3, H, W]``.
    """
    config, _, _ = toy_preset()
    one_window = config.with_(unified_steps=TOY_STEPS, zigzag_width=1)
    scores, first = [], None
    for seed in range(seeds):
        video = generate_videos(model, [[s] for s in specs], 16, one_window.with_(seed=seed), device=device).video
        first = video if first is None else first
        scores += [dict(score_clip(v, s), prompt=p, seed=seed) for p, (v, s) in enumerate(zip(video, specs))]
    return scores, first


class OutOfTime(Exception):
    """Raised by the long-video callback past the deadline: miga_core lets a callback's exception cancel the run."""


def long_videos(model, videos: int, frames: int, device: torch.device, deadline: float = math.inf) -> dict:
    """The demo's job (toyworld.demo.check_args: prompt seed v, the colour two steps on at frames // 2, noise seed 0)
    for ``videos`` prompt seeds in one batch, 8 windows a model call (the same videos [D1]); identity per
    segment, absent frames, switch timing. Raises OutOfTime once ``time.perf_counter()`` passes ``deadline``."""
    config, guidance, reflection = toy_preset()
    firsts = [sample_spec(train.EVAL_SEED_BASE + v) for v in range(videos)]
    pairs = [(f, f.with_(colour=COLOURS[(COLOURS.index(f.colour) + 2) % len(COLOURS)])) for f in firsts]
    switch = frames // 2

    def stop_at_deadline(info) -> None:
        if time.perf_counter() > deadline:
            raise OutOfTime(f"window {info.window} of {info.total_windows}")

    run = generate_videos(model, [list(p) for p in pairs], frames, config.with_(seed=0, window_batch=8), starts=(0, switch),
                          steps=TOY_STEPS, guidance=guidance, reflection=reflection, device=device, callback=stop_at_deadline)
    rows = []
    for video, (a, b) in zip(run.video, pairs):
        sa, sb = score_clip(video[:switch], a), score_clip(video[switch:], b)
        rows.append({"identity_first": sa["identity_accuracy"], "identity_second": sb["identity_accuracy"],
                     "absent_frames": sa["absent_frames"] + [switch + i for i in sb["absent_frames"]],
                     "switch_error": switch_error(video, [a, b], [0, switch])["errors"][0]})
    return {"videos": videos, "frames": frames, "model_calls": run.model_calls, "per_video": rows,
            "identity_mean": round(sum(r["identity_first"] + r["identity_second"] for r in rows) / (2 * len(rows)), 4),
            "absent_frames": sum(len(r["absent_frames"]) for r in rows)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.train_toy", description=__doc__.splitlines()[0],
                                 epilog="Arguments after -- go to python -m toyworld.train.")
    ap.add_argument("--out", required=True, help="folder for the weights, logs, train_toy.json and toy_clips.png")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-minutes", type=float, default=8.5, help="wall time of the whole command. Default: 8.5")
    ap.add_argument("--eval-minutes", type=float, default=1.25, help="kept for evaluation out of the budget. Default: 1.25")
    ap.add_argument("--prompts", type=int, default=16, help="test prompts (toy_clips'). Default: 16")
    ap.add_argument("--val-prompts", type=int, default=16, help="validation prompts for picking EMA or raw. Default: 16")
    ap.add_argument("--seeds", type=int, default=4, help="noise seeds per prompt (seed 0 is toy_clips' run). Default: 4")
    ap.add_argument("--long-videos", type=int, default=4, help="demo jobs in the long-video check (0: none). Default: 4")
    ap.add_argument("--long-frames", type=int, default=256, help="frames of each long video. Default: 256")
    return ap


def main(argv: list[str] | None = None, *, start: float | None = None) -> int:
    """Run the whole job; the budget counts from ``start`` (default: now when called in-process, the import when run as a
    script)."""
    t_start = start if start is not None else time.perf_counter()
    argv = sys.argv[1:] if argv is None else list(argv)
    ours, train_argv = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = build_parser().parse_args(ours)
    owned = sorted({a.split("=")[0] for a in train_argv} & {"--out", "--device", "--minutes", "--save-raw"})
    if owned:
        build_parser().error(f"{', '.join(owned)} after -- are set by this script (use --out, --device, --budget-minutes here)")
    out = record.resolve_out(args.out)
    device = torch.device(args.device)
    budget = 60 * args.budget_minutes
    head = record.header(SCRIPT, {**vars(args), "train_argv": train_argv}, device,
                         dtype=torch.bfloat16 if device.type == "cuda" else torch.float32, argv=argv)
    date = record.now()

    minutes = (budget - 60 * args.eval_minutes - (time.perf_counter() - t_start)) / 60
    if minutes <= 0:
        build_parser().error(f"--budget-minutes {args.budget_minutes} leaves no training time after --eval-minutes {args.eval_minutes}")
    train.main(["--out", str(out), "--device", args.device, "--minutes", f"{minutes:.4f}", "--save-raw", *train_argv])
    trained = time.perf_counter() - t_start

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    models = {name: load_model(str(out / file), device=device, dtype=dtype)
              for name, file in (("ema", "toy_dit.safetensors"), ("raw", "toy_dit_raw.safetensors"))}
    val_specs = [sample_spec(VAL_SEED_BASE + p) for p in range(args.val_prompts)]
    test_specs = [sample_spec(TEST_SEED_BASE + p) for p in range(args.prompts)]
    rows, sheets = [], {}
    with torch.no_grad():
        for name, model in models.items():
            val, _ = own_clips(model, val_specs, args.seeds, device)
            test, sheets[name] = own_clips(model, test_specs, args.seeds, device)
            rows.append({"weights": name, "validation": summarize(val), "test_seed0": summarize([s for s in test if s["seed"] == 0]),
                         "test_all_seeds": summarize(test), "test_clips": test})
    key = {r["weights"]: (r["validation"]["identity_mean"], -r["validation"]["absent_frames"], r["weights"] == "ema") for r in rows}
    selected = max(key, key=key.get)
    chosen = next(r for r in rows if r["weights"] == selected)
    summary = {"selected": selected, "rule": "validation identity_mean, then fewer absent frames, EMA on a tie",
               "test_seed0_identity": chosen["test_seed0"]["identity_mean"], "test_seed0_absent_frames": chosen["test_seed0"]["absent_frames"],
               "target": f"test_seed0_identity >= {TARGET_IDENTITY} and test_seed0_absent_frames == 0",
               "target_met": chosen["test_seed0"]["identity_mean"] >= TARGET_IDENTITY and chosen["test_seed0"]["absent_frames"] == 0}
    config = json.loads((out / "train_config.json").read_text())
    summary.update(params=config["params"], model=config["model"], train=config["result"])

    other = "raw" if selected == "ema" else "ema"
    (out / "toy_dit.safetensors").rename(out / "toy_dit_ema.tmp")
    (out / "toy_dit_raw.safetensors").rename(out / "toy_dit_raw.tmp")
    (out / f"toy_dit_{selected}.tmp").rename(out / "toy_dit.safetensors")
    (out / f"toy_dit_{other}.tmp").rename(out / f"toy_dit_{other}.safetensors")
    config["selected"] = selected
    (out / "train_config.json").write_text(json.dumps(config, indent=1) + "\n")
    summary["weights_bytes"] = (out / "toy_dit.safetensors").stat().st_size
    contact_sheet(sheets[selected], str(out / "toy_clips.png"), frames=16, scale=2)

    if args.long_videos > 0:
        t = time.perf_counter()
        try:
            with torch.no_grad():
                summary["long_videos"] = long_videos(models[selected], args.long_videos, args.long_frames, device,
                                                     deadline=t_start + budget - 5)
            summary["long_videos"]["timing"] = {"seconds": round(time.perf_counter() - t, 1)}
        except OutOfTime as stop:
            summary["long_videos"] = f"stopped at the end of the budget ({stop}) after {time.perf_counter() - t:.0f} s"
    timing = {"date": date, "train_seconds": round(trained, 1), "seconds": round(time.perf_counter() - t_start, 1)}
    (out / "train_toy.json").write_text(record.dumps({"benchmark": "train_toy", "record": head, "summary": summary,
                                                      "rows": rows, "timing": timing}))
    print(json.dumps({**{k: v for k, v in summary.items() if k not in ("model", "long_videos")},
                      "long_identity": summary.get("long_videos", {}).get("identity_mean") if isinstance(summary.get("long_videos"), dict) else None,
                      "validation": {r["weights"]: r["validation"] for r in rows}, "timing": timing}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(start=IMPORTED))
