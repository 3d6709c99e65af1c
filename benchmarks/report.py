"""Regenerate BENCHMARKS.md (and the README's GPU numbers) from the JSON files in benchmarks/results/ (no hand-typed figures).

    python benchmarks/report.py            # rewrite BENCHMARKS.md
    python benchmarks/report.py --check    # exit 1 if BENCHMARKS.md is stale
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

INTRO = {
    "core_overhead": (
        "## miga_core's own cost\n\n"
        "`python benchmarks/core_overhead.py --device cuda --out benchmarks/results/core_overhead_cuda.json`\n\n"
        "The paper's Wan2.1 preset (f0=21, L_zig=7, u=9, m_guid=4) at 480x832 (latent 16x60x104), T=54, with a\n"
        "trivial elementwise denoiser: the time is the queue's bookkeeping, noise and sampler steps per window,\n"
        "to set beside a real model's forward pass; the memory is what the queue holds on the GPU.\n"
        "`latents_on: cpu` keeps the queue and outputs in host memory and sends only windows to the GPU\n"
        "(`MigaConfig(compute_device=\"cuda\")`): GPU memory then stays at one window whatever the length.\n"
    ),
    "wan_node": (
        "## The MigaSampler node on Wan2.1-1.3B (ComfyUI)\n\n"
        "`python benchmarks/wan_node_gpu.py --comfyui /path/to/ComfyUI --out benchmarks/results/wan_node_cuda.json`\n\n"
        "The real Wan2.1-T2V-1.3B architecture with random bf16 weights (the release cannot be downloaded here),\n"
        "driven through the node path exactly as in ComfyUI: host adapter, CFGGuider, per-frame timesteps, wan21\n"
        "preset with long-range guidance and self-reflection. `model_calls` count windows; with CFG each is one\n"
        "forward of batch 2. The second row is a 4x longer video stopped through ComfyUI's interrupt after\n"
        "30 windows: its peak VRAM equals the first row's (weights + one window; latents stay in host memory).\n"
        "Time scales with the calls: stage 1 makes about ceil((T-u)*L_zig/s)/L_zig calls per latent, stage 2 about u/s\n"
        "(docs/algorithm.md, \"Cost\"), so the paper's T=54 costs more per frame than this T=20 run.\n"
    ),
    "toy_clips": (
        "## The toy model's own clips\n\n"
        "`python benchmarks/toy_clips.py` (CPU): the shipped ToyDiT (`toyworld/train.py`, log in `toyworld/weights/`)\n"
        "sampling single 16-frame windows, every frame at one level as in training, for prompts it never saw in\n"
        "training. Contact sheet (rows: clips, columns: frames 0..15): ![toy clips](docs/toy_clips.png)\n"
    ),
    "toy_quality": (
        "## FIFO-Diffusion vs MIGA on the toy world\n\n"
        "`python benchmarks/toy_quality.py --device cuda` (reduced CI form: `--reduced`). Each row: 16 prompts x 2 seeds x\n"
        "256 frames from the shipped ToyDiT, T=24, CFG 3; metrics from `toyworld/metrics.py` (VBench-style, in [0, 1],\n"
        "mean ± std over the 32 videos); `model_calls_per_frame` counts windows (each a CFG batch of 2). Ablation rows\n"
        "follow the paper; the other groups sweep one option of full MIGA (toy preset: f0=16, L_zig=4, u=6, m_guid=4,\n"
        "delta=0.01, update=lookahead, score_on=latent, judge at the level nearest 0.8T). The videos of a row run as\n"
        "one latent batch (see `reflection_decided`). `2 prompts` rows switch the object's colour at\n"
        "frame 128 and report where the switch is detected.\n"
    ),
}


def _num(cell: str) -> float:
    return float(str(cell).split(" ")[0])


def toy_findings(data: dict) -> str:
    """What the toy benchmark says, with every number read from its JSON (no hand-typed figures)."""
    r = {row["row"]: row for row in data["rows"]}
    fifo, miga, zig, tta, dce = (r[k] for k in ("FIFO-Diffusion", "full MIGA", "+zigzag stage", "+unified stage (TTA)", "DCE only"))
    u_best = max((k for k in r if k.startswith("u=")), key=lambda k: _num(r[k]["identity_accuracy"]))
    m_rows = {k: _num(r[k]["identity_accuracy"]) for k in r if k.startswith("m_guid=")}
    d0, d1, d3, d10 = (r[f"delta={d}"] for d in ("0.0", "0.01", "0.03", "0.1"))
    lines = [
        "### What was chosen and why\n",
        "`reflection_decided`: rows marked `per video` ran after self-reflection became a per-video decision (as in the "
        "paper: each video is judged, searched and corrected on its own); rows marked `per batch (never searched)` ran "
        "before, when a batch of 16 videos shared one averaged score, which never dropped by delta, so those rows are "
        "MIGA with long-range guidance and without self-reflection. `model_calls_per_frame` counts batched calls: "
        "a search runs candidates for all 16 videos when any one of them needs it.\n",
        f"- **The two-stage alignment is what beats FIFO here**: identity accuracy {tta['identity_accuracy']} (+unified stage) "
        f"and {zig['identity_accuracy']} (+zigzag stage) vs {fifo['identity_accuracy']} for FIFO-Diffusion, subject consistency "
        f"{tta['subject_consistency']} vs {fifo['subject_consistency']}, at {tta['model_calls_per_frame']} vs "
        f"{fifo['model_calls_per_frame']} calls per frame.",
        f"- **Where MIGA does not beat FIFO**: motion smoothness ({tta['motion_smoothness']} vs {fifo['motion_smoothness']}) and "
        f"temporal flicker ({tta['temporal_flicker']} vs {fifo['temporal_flicker']}) are slightly worse; DCE on FIFO's queue "
        f"does not help (identity {dce['identity_accuracy']}); long-range guidance shows no consistent effect (identity "
        + ", ".join(f"{k} {v:.4f}" for k, v in m_rows.items()) + "): objects never leave this world's frame, so a 16-frame "
        f"window already holds the context guidance would bring; and full MIGA with self-reflection at the paper's "
        f"delta=0.01 scores below the two stages alone ({miga['identity_accuracy']} vs {tta['identity_accuracy']}).",
        f"- **Self-reflection [D5], delta**: per video at delta=0.01 it searched often (R_corr {d1['R_corr']}) and almost always "
        f"found a candidate with a higher score (R_succ {d1['R_succ']}), yet identity fell to {d1['identity_accuracy']}; at "
        f"delta=0 to {d0['identity_accuracy']}. The latent consistency score rewards tails that resemble the frames before them, "
        f"not tails that follow the prompt. delta=0.03 rarely searches (R_corr {d3['R_corr']}, identity {d3['identity_accuracy']}, "
        f"{d3['model_calls_per_frame']} calls per frame) and delta=0.1 never ({d10['identity_accuracy']}). The presets keep the "
        "paper's 0.01 as [D5] specifies; on this world we recommend 0.03 or no reflection (see the closing note).",
        f"- **score_on [D5]**: `denoised` is worse ({r['score_on=denoised']['identity_accuracy']} vs "
        f"{r['score_on=latent']['identity_accuracy']} for `latent`). Kept: `latent` (the paper's).",
        f"- **Judge position [D5]**: the default (first position at the level nearest 0.8T) and position 48 judge the same "
        f"level ({r['judge=48']['identity_accuracy']}); judging nearer the head (24) is much worse "
        f"({r['judge=24']['identity_accuracy']} at {r['judge=24']['model_calls_per_frame']} calls per frame). Kept: the default.",
        f"- **update [D1]** (measured without searches): `former` was marginally better (identity "
        f"{r['update=former']['identity_accuracy']} vs {r['update=lookahead']['identity_accuracy']}, smoothness "
        f"{r['update=former']['motion_smoothness']} vs {r['update=lookahead']['motion_smoothness']}) at equal cost, by far less "
        "than the spread over videos. Kept: `lookahead`, FIFO-Diffusion's rule, which keeps FIFO mode equal to the official "
        "loop; `former` is one option away.",
        f"- **zigzag_width / unified_steps** (without searches): L_zig=4 (f0/4, the paper's VC2 ratio) was best of 2/4/8; more "
        f"unified steps helped (best {u_best}: identity {r[u_best]['identity_accuracy']}, {r[u_best]['model_calls_per_frame']} "
        "calls per frame). The Wan2.1/VC2 presets keep the paper's u=9; the toy preset keeps u=6 as measured.",
        f"- **Multi-prompt [D6]**: the colour switch landed in {r['full MIGA (2 prompts)']['switch_landed']} MIGA videos, "
        f"{r['full MIGA (2 prompts)']['switch_error_frames']} frames from the scheduled frame, vs "
        f"{r['FIFO-Diffusion (2 prompts)']['switch_landed']} for FIFO ({r['FIFO-Diffusion (2 prompts)']['switch_error_frames']}).\n",
    ]
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def render() -> str:
    parts = ["# Benchmarks\n", "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; do not edit by hand.\n"]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        meta = ", ".join(f"{k} {v}" for k, v in data.get("meta", {}).items() if v)
        parts.append(INTRO.get(data["benchmark"], f"## {data['benchmark']}\n"))
        parts.append(f"Source: `{path.relative_to(ROOT)}` ({meta}).\n")
        parts.append(table(data["rows"]) + "\n")
        if data["benchmark"] == "toy_quality" and "full MIGA" in {row["row"] for row in data["rows"]}:
            parts.append(toy_findings(data))
    return "\n".join(parts)


GPU_BEGIN, GPU_END = "<!-- gpu-numbers -->", "<!-- /gpu-numbers -->"


def gpu_numbers() -> str:
    """The README's VRAM/time lines, from benchmarks/results/wan_node_cuda.json."""
    data = json.loads((RESULTS / "wan_node_cuda.json").read_text())
    full, long = data["rows"][0], data["rows"][1]
    meta = data["meta"]
    return (f"{GPU_BEGIN}\n"
            f"- Peak VRAM {full['peak_vram_gib']} GiB ({meta['weights_gib']} GiB of it bf16 weights) for {full['num_pixel_frames']} frames, "
            f"and {long['peak_vram_gib']} GiB in a {long['num_pixel_frames']}-frame run (stopped after {long['model_calls']} windows): "
            "GPU memory holds the weights and one window, whatever the length.\n"
            f"- {full['s_per_model_call']} s per window (CFG batch of 2) on one {meta['device']}; "
            f"{full['model_calls_per_latent']} windows per latent at {full['steps']} steps, i.e. {full['s_per_pixel_frame']} s per frame; "
            "more steps cost proportionally more (docs/algorithm.md, \"Cost\").\n"
            "- From `benchmarks/wan_node_gpu.py` (random weights of the real architecture); see BENCHMARKS.md.\n"
            f"{GPU_END}")


def readme_with_numbers(readme: str) -> str:
    head, sep, rest = readme.partition(GPU_BEGIN)
    if not sep:
        raise SystemExit(f"README.md lacks the {GPU_BEGIN} marker")
    _, sep_end, tail = rest.partition(GPU_END)
    return head + gpu_numbers() + (tail if sep_end else rest)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    outputs = {ROOT / "BENCHMARKS.md": render(), ROOT / "README.md": readme_with_numbers((ROOT / "README.md").read_text())}
    if args.check:
        stale = [p.name for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"{', '.join(stale)} stale: run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    for path, text in outputs.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
