"""FIFO-Diffusion vs MIGA on the toy world: the paper's ablation rows, sweeps of one option each, and the open choices.

    python benchmarks/toy_quality.py --device cuda --out benchmarks/results/toy_quality_cuda.json   # full (GPU, one command)
    python benchmarks/toy_quality.py --reduced --out /tmp/toy_quality_ci.json                      # CI size (CPU)

Every run generates the same videos (``--prompts`` prompts x ``--seeds`` noise seeds, ``--num-frames``
frames, prompts drawn from evaluation seeds never used in training) with the shipped ToyDiT and
scores each video with ``toyworld.metrics`` (a two-prompt video: each prompt's segment, averaged,
but the object measures presence, blink_count, jump_count and size_stability on the whole video);
the JSON keeps every video's value, so the report can compare two runs video by video (they share
prompts and seeds). A run's videos form one latent batch; self-reflection still judges, searches
and corrects each video on its own [D5].

Rows are labels of option sets: rows whose resolved options (config, guidance, reflection, prompts)
are equal are generated once and stored once, with every label that names them. The sweeps of
``zigzag_width``, ``unified_steps``, ``num_guidance`` and ``update`` vary one option of full MIGA
with self-reflection off (its searches would add their own spread); the ``threshold``, ``score_on``
and ``judge_position`` sweeps vary full MIGA. ``multi_prompt`` rows switch the object's colour at the
middle frame and record, per video, how far from the scheduled frame the switch lands.

``--resume`` keeps the runs already in ``--out`` when its record (options, code) equals this one's,
so a stopped command can be given again and goes on where it stopped. On several GPUs, one process per GPU with
``--shard K/N`` generates every N-th option set, and ``--merge`` joins their files into one (the rows are the same as one
process's; each row's seconds are its own):

    CUDA_VISIBLE_DEVICES=0 python benchmarks/toy_quality.py --device cuda --window-batch 32 --shard 0/2 --out /tmp/a.json &
    CUDA_VISIBLE_DEVICES=1 python benchmarks/toy_quality.py --device cuda --window-batch 32 --shard 1/2 --out /tmp/b.json
    python benchmarks/toy_quality.py --device cuda --window-batch 32 --merge /tmp/a.json /tmp/b.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from miga_core import GuidanceOptions, ReflectionOptions, plan_run  # noqa: E402
from toyworld.demo import WEIGHTS  # noqa: E402
from toyworld.metrics import OBJECT_METRICS, evaluate, object_measures, switch_error  # noqa: E402
from toyworld.model import load_model  # noqa: E402
from toyworld.sampling import TOY_STEPS, generate_videos, toy_preset  # noqa: E402
from toyworld.train import EVAL_SEED_BASE  # noqa: E402
from toyworld.world import COLOURS, sample_spec  # noqa: E402

SCRIPT = "benchmarks/toy_quality.py"
METRICS = ("subject_consistency", "background_consistency", "motion_smoothness", "temporal_flicker", "identity_accuracy",
           "presence", "blink_count", "jump_count", "size_stability")  # the object measures: on the whole video
PROMPT_SEED_BASE = EVAL_SEED_BASE + 1000  # prompt p of every run is sample_spec(PROMPT_SEED_BASE + p)
DIGITS = 6  # per-video metric values are rounded to this many decimals

# each sweep's base row: the reference a value is compared with (the preset's value)
SWEEP_BASE = {
    "zigzag_width": "L_zig=4", "unified_steps": "u=6", "num_guidance": "m_guid=4", "update": "update=lookahead",
    "threshold": "delta=0.01", "score_on": "score_on=latent", "judge_position": "judge=None",
}


def rows(steps: int = TOY_STEPS) -> list[tuple[str, str, dict]]:
    """(group, label, changes) of every row at T = ``steps``; changes apply to the toy preset (full MIGA). The judge
    sweep and the official rows' refinement scale with the toy queue (:func:`toy_queue`, :func:`official_scale`)."""
    off = {"guidance": None, "reflection": None}
    fifo = {"mode": "fifo", "zigzag_width": 1, "unified_steps": 0, **off}
    no_refl = {"reflection": None}
    out = [
        ("ablation", "FIFO-Diffusion", fifo),
        ("ablation", "+zigzag stage", {"unified_steps": 0, **off}),
        ("ablation", "+unified stage (TTA)", off),
        ("ablation", "DCE only", {"zigzag_width": 1, "unified_steps": 0}),
        ("ablation", "full MIGA without reflection", no_refl),
        ("ablation", "full MIGA", {}),
    ]
    out += [("zigzag_width", f"L_zig={w}", {**no_refl, "zigzag_width": w}) for w in (2, 4, 8)]
    out += [("unified_steps", f"u={u}", {**no_refl, "unified_steps": u}) for u in (0, 3, 6, 12)]
    out += [("num_guidance", f"m_guid={m}", {**no_refl, "num_guidance": m}) for m in (0, 2, 4, 6)]
    out += [("update", f"update={u}", {**no_refl, "update": u}) for u in ("lookahead", "former")]
    out += [("threshold", f"delta={d}", {"threshold": d}) for d in (0.0, 0.01, 0.03, 0.1)]
    out += [("score_on", f"score_on={s}", {"score_on": s}) for s in ("latent", "denoised")]
    judge = toy_queue(steps)[1]  # the default judge's position, and half of it (48 and 24 at T=24)
    out += [("judge_position", f"judge={j}", {"judge_position": j}) for j in (None, judge // 2 // GROUP * GROUP, judge)]
    out += [("multi_prompt", "FIFO-Diffusion (2 prompts)", {**fifo, "multi": True}),
            ("multi_prompt", "full MIGA (2 prompts)", {"multi": True})]
    # the authors' released loop [D7] scaled to the toy queue, whole and one difference at a time (issue 9); REFERENCE items
    # in miga_core's option docs; its refinement and judged group scaled to T (official_scale)
    refine = official_scale(steps)["refine_steps"]
    official = {"update": "official", "borders": "rotating", "build_length": "official", "fresh_content": "clip_last",
                "build_reads": "gauss_seidel", "stage2_history": "reset", "refine_steps": refine, "trim_tail": 16,
                "official_stage2_mislabel": True, "sampler": "uni_pc", "guidance_positions": "official", "reflection_profile": "official"}
    out += [("official", "official profile", official),
            ("official", "+rotating borders", {"borders": "rotating"}),
            ("official", "+official update rule", {"update": "official"}),
            ("official", "+official guidance positions", {"guidance_positions": "official"}),
            ("official", "+official reflection", {"reflection_profile": "official"}),
            ("official", "+refinement pass", {"refine_steps": refine}),
            ("official", "+uni_pc", {"sampler": "uni_pc"}),
            # the choices that helped alone, together: the wan21 preset's defaults since issue 9's measurement
            ("official", "+official choices (wan21 default)", OFFICIAL_CHOICES),
            # does uni_pc or the refinement pass close the gap between the default and the whole official profile?
            ("official", "wan21 default +uni_pc", {**OFFICIAL_CHOICES, "sampler": "uni_pc"}),
            ("official", "wan21 default +refinement pass", {**OFFICIAL_CHOICES, "refine_steps": refine}),
            ("official", "official profile without the stage-2 mislabel", {**official, "official_stage2_mislabel": False})]
    return out


# self-reflection as the authors run it [D7], scaled to the toy's L_zig = 4: f_eval = L_zig, f_ref = f_guid = 2 L_zig, judged
# after each queue-building pass (the group official_scale names), 3 candidates grown without long-range guidance
OFFICIAL_REFLECTION = dict(num_eval=4, num_ref=8, num_guide=8, num_candidates=3, phase="build", candidate_guidance=False)
GROUP = 4  # the toy preset's L_zig: judge positions are multiples of it
# the released Wan loop: it judges the 10th of its 44 queue groups from the tail and refines over 10 of its 54 levels
OFFICIAL_JUDGE_FROM_TAIL, OFFICIAL_GROUPS, OFFICIAL_REFINE, OFFICIAL_STEPS = 10, 44, 10, 54


def toy_queue(steps: int) -> tuple[int, int]:
    """(groups in the toy preset's stage-1 queue, queue position of its default judge level) at T = ``steps``:
    (18, 48) at T=24, (42, 124) at T=48."""
    config, guidance, reflection = toy_preset()
    plan = plan_run(config, steps, 256, guidance=guidance, reflection=reflection)
    levels = [level for level, _ in plan.init_groups]
    return len(levels), sum(count for _, count in plan.init_groups[:levels.index(plan.judge_level)])


def official_scale(steps: int) -> dict:
    """The released loop's judged group and refinement scaled to the toy at T = ``steps``: ``judge_from_tail`` 10 of 44
    groups -> the same share of the toy queue's groups, ``refine_steps`` 10 of 54 levels -> the same share of T
    (4 and 4 at T=24; 10 and 9 at T=48)."""
    return {"judge_from_tail": max(1, round(OFFICIAL_JUDGE_FROM_TAIL * toy_queue(steps)[0] / OFFICIAL_GROUPS)),
            "refine_steps": max(1, round(OFFICIAL_REFINE * steps / OFFICIAL_STEPS))}


def official_reflection(steps: int) -> dict:
    """ReflectionOptions changes of the official reflection at T = ``steps``: OFFICIAL_REFLECTION and its judged group."""
    return {**OFFICIAL_REFLECTION, "judge_from_tail": official_scale(steps)["judge_from_tail"]}


# the official choices each measured as helping alone (BENCHMARKS.md, toy_quality_cuda.json), together, as the wan21 preset
# takes them (miga_core.config PRESETS); not the refinement (no measurable gain), the official queue-build length, tail
# content, Gauss-Seidel reads, history reset, trim or stage-2 mislabel
OFFICIAL_CHOICES = {"borders": "rotating", "update": "official", "guidance_positions": "official", "reflection_profile": "official"}


def reduced_rows(steps: int) -> list[tuple[str, str, dict]]:
    keep = {"FIFO-Diffusion", "full MIGA", "full MIGA (2 prompts)"}
    return [r for r in rows(steps) if r[1] in keep]


def options(changes: dict, steps: int):
    """The MigaConfig, GuidanceOptions and ReflectionOptions of a row at T = ``steps``."""
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
            reflection = dataclasses.replace(reflection or ReflectionOptions(), **{key: changes.pop(key)})
    if "guidance_positions" in changes:
        guidance = dataclasses.replace(guidance, positions=changes.pop("guidance_positions"))
    if changes.pop("reflection_profile", None) == "official":
        reflection = dataclasses.replace(reflection, **official_reflection(steps))
    return config.with_(**changes), guidance, reflection


def resolved(changes: dict, args: argparse.Namespace) -> dict:
    """Every option a run uses, JSON-ready: equal dicts mean equal runs (the dedup key)."""
    config, guidance, reflection = options(changes, args.steps)
    config = config.with_(window_batch=args.window_batch, compute_device=None)

    def plain(obj):
        return None if obj is None else {k: v for k, v in dataclasses.asdict(obj).items() if k != "seed"}

    judged = plain(reflection)
    if judged is not None:  # judge by level, as the plan resolves it: judge=None and the position of that level are one run
        plan = plan_run(config, args.steps, args.num_frames, guidance=guidance, reflection=reflection)
        judged.update(judge_position=None, judge_level=plan.judge_level, num_guide=plan.num_guide)
    return {"config": plain(config), "guidance": plain(guidance), "reflection": judged,
            "prompts_per_video": 2 if changes.get("multi") else 1}


def run_row(model, changes: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Generate and score one option set's videos; every value but ``timing`` is a pure function of the options."""
    config, guidance, reflection = options(changes, args.steps)
    config = config.with_(window_batch=args.window_batch, compute_device=None)
    multi = changes.get("multi", False)
    mid = args.num_frames // 2
    per_video: dict[str, list[float]] = {k: [] for k in METRICS}
    switch: list[int | None] = []
    counts = {"num_windows": 0, "model_calls": 0, "reflection_n_all": 0, "reflection_n_eval": 0, "reflection_n_corr": 0}
    seconds = 0.0
    for seed in range(args.seeds):
        specs = [sample_spec(PROMPT_SEED_BASE + p) for p in range(args.prompts)]
        prompts = [[s, s.with_(colour=COLOURS[(COLOURS.index(s.colour) + 2) % len(COLOURS)])] if multi else [s] for s in specs]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run = generate_videos(model, prompts, args.num_frames, config.with_(seed=seed), starts=(0, mid) if multi else (0,),
                              steps=args.steps, guidance=guidance, reflection=reflection, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        stats = run.result.reflection
        counts["num_windows"] += run.result.num_windows
        counts["model_calls"] += run.result.model_calls
        counts["reflection_n_all"] += stats.n_all
        counts["reflection_n_eval"] += stats.n_eval
        counts["reflection_n_corr"] += stats.n_corr
        for video, row in zip(run.video.to(device), prompts):  # metrics on the GPU too
            segments = [(video[:mid], row[0]), (video[mid:], row[1])] if multi else [(video, row[0])]
            scores = [evaluate(v, s) for v, s in segments]
            whole = object_measures(video)  # colour-blind: a blink or jump across the prompt switch counts too
            for key in METRICS:
                value = whole[key] if key in OBJECT_METRICS else sum(sc[key] for sc in scores) / len(scores)
                per_video[key].append(round(value, DIGITS))
            if multi:
                switch.append(switch_error(video, row, [0, mid])["errors"][0])
    out = {"options": resolved(changes, args), **counts, "per_video": per_video}
    if multi:
        out["switch_error_frames"] = switch  # detected - scheduled frame per video; None: the switch never showed
    out["timing"] = {"seconds": round(seconds, 3),
                     "seconds_per_frame": round(seconds / (args.prompts * args.seeds * args.num_frames), 6)}
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/toy_quality_cuda.json")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--num-frames", type=int, default=256)
    ap.add_argument("--steps", type=int, default=TOY_STEPS)
    ap.add_argument("--window-batch", type=int, default=8, help="windows per model call (results are identical for any value)")
    ap.add_argument("--reduced", action="store_true", help="CI size: 2 prompts, 1 seed, 24 frames, 16 steps, 3 rows")
    ap.add_argument("--only", default=None, help="comma-separated row labels to run (default: all)")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out when its record matches")
    ap.add_argument("--shard", default=None, metavar="K/N",
                    help="generate only every N-th option set from the K-th (0 <= K < N; one process per GPU), then --merge")
    ap.add_argument("--merge", nargs="+", default=(), metavar="FILE",
                    help="keep the runs of these files (other shards or stopped runs of this command) and generate the rest")
    return ap


def shard_of(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N); None for None. Raises SystemExit naming the value and the allowed form."""
    if text is None:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k = n = -1
    if not 0 <= k < n:
        raise SystemExit(f"--shard {text!r}: expected K/N with integers 0 <= K < N, e.g. 0/2 and 1/2 for two GPUs")
    return k, n


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.reduced:
        args.prompts, args.seeds, args.num_frames, args.steps, args.window_batch = 2, 1, 24, 16, 4
    device = torch.device(args.device)
    record.deterministic(device)
    with torch.no_grad():
        argv = sys.argv[1:] if argv is None else argv
        return _run(args, device, [a for a in argv if a != "--resume"])  # a resumed run records the command it completes


def _ordered(results: list[dict], keys: list[dict]) -> list[dict]:
    """``results`` in the order their options first appear in ``keys`` (the rows' order), others last."""
    rank = {json.dumps(k, sort_keys=True): i for i, k in reversed(list(enumerate(keys)))}
    return sorted(results, key=lambda r: rank.get(json.dumps(r["options"], sort_keys=True), len(keys)))


def _run(args: argparse.Namespace, device: torch.device, argv: list[str]) -> int:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = load_model(str(WEIGHTS), device=device, dtype=dtype)
    selected = reduced_rows(args.steps) if args.reduced else rows(args.steps)
    if args.only:
        wanted = set(args.only.split(","))
        selected = [r for r in selected if r[1] in wanted]
    shard = shard_of(args.shard)  # neither the shard nor the merged files change a row: not options of the record
    opts = {k: v for k, v in vars(args).items() if k not in ("out", "resume", "shard", "merge")}
    head = record.header(SCRIPT, opts, device, dtype=dtype, argv=argv)
    head["videos"] = {"prompt_seeds": [PROMPT_SEED_BASE + p for p in range(args.prompts)], "noise_seeds": list(range(args.seeds)),
                      "order": "seed-major: video i has noise seed i // prompts and prompt i % prompts"}
    head["row_order"] = [[group, label] for group, label, _ in selected]
    head["sweep_base"] = SWEEP_BASE
    out = record.resolve_out(args.out)
    results: list[dict] = record.resumable_rows(out, head) if args.resume else []
    for path in args.merge:
        results += [r for r in record.resumable_rows(record.resolve_out(path), head)
                    if not any(r["options"] == kept["options"] for kept in results)]
    keys = [resolved(changes, args) for _, _, changes in selected]
    distinct = [k for i, k in enumerate(keys) if k not in keys[:i]]
    t_start = time.perf_counter()
    date = record.now()
    for (group, label, changes), key in zip(selected, keys):
        found = next((r for r in results if r["options"] == key), None)
        if found is None:
            if shard is not None and distinct.index(key) % shard[1] != shard[0]:
                continue  # another shard's
            found = {"labels": [], **run_row(model, changes, args, device)}
            results.append(found)
            print(json.dumps({"label": label, **{k: v for k, v in found.items() if k not in ("options", "per_video")}}), flush=True)
        if {"group": group, "label": label} not in found["labels"]:
            found["labels"].append({"group": group, "label": label})
        record.write(out, "toy_quality", head, _ordered(results, keys), {"date": date, "seconds": round(time.perf_counter() - t_start, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
