"""Regenerate BENCHMARKS.md (and the README's GPU numbers) from the JSON files in benchmarks/results/.

    python benchmarks/report.py            # rewrite BENCHMARKS.md and the README's gpu-numbers and wan-perf-numbers blocks
    python benchmarks/report.py --check    # exit 1 if either is stale
    python benchmarks/report.py --verify-code   # exit 1 if a result was measured on other code than this checkout's

Every figure and every verdict below is computed here from the JSON the benchmark scripts wrote
(``benchmarks/record.py``); a JSON without a script's ``record`` is refused. The verdict rule
(:func:`compare`): two runs of the toy benchmark generate the same videos (same prompts, same noise
seeds), so they are compared video by video. With d_i the difference of a metric on video i and n
videos, a difference is called one only when |mean(d)| > 2 * sd(d) / sqrt(n) (two standard errors
of the paired mean: about a 95% two-sided test); otherwise the runs are "within spread".
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
K_SE = 2.0  # standard errors a paired mean difference must exceed to count
METRICS = ("subject_consistency", "background_consistency", "motion_smoothness", "temporal_flicker", "identity_accuracy",
           "presence", "blink_count", "jump_count", "size_stability")
SHORT = {"subject_consistency": "subject", "background_consistency": "background", "motion_smoothness": "smoothness",
         "temporal_flicker": "flicker", "identity_accuracy": "identity", "presence": "presence", "blink_count": "blinks",
         "jump_count": "jumps", "size_stability": "size"}
COUNTS = ("blink_count", "jump_count")  # events per video: lower is better (every other metric: higher is better)
MISSING = "—"  # a metric the run's JSON does not hold (measured before the metric existed)

INTRO = {
    "core_overhead": (
        "## miga_core's own cost\n\n"
        "The paper's Wan2.1 preset (f0=21, L_zig=7, u=9, m_guid=4) at 480x832 (latent 16x60x104), T=54, with a\n"
        "trivial elementwise denoiser: the time is the queue's bookkeeping, noise and sampler steps per window,\n"
        "to set beside a real model's forward pass; the memory is what the queue holds on the GPU.\n"
        "`latents_on: cpu` keeps the queue and outputs in host memory and sends only windows to the GPU\n"
        "(`MigaConfig(compute_device=\"cuda\")`): GPU memory then stays at one window whatever the length.\n"
    ),
    "wan_node": (
        "## The MigaSampler node on Wan2.1-1.3B (ComfyUI)\n\n"
        "The real Wan2.1-T2V-1.3B architecture with random bf16 weights (the release cannot be downloaded here),\n"
        "driven through the node path exactly as in ComfyUI: host adapter, CFGGuider, per-frame timesteps, wan21\n"
        "preset with long-range guidance and self-reflection. The second row is a 4x longer video stopped through\n"
        "ComfyUI's interrupt after a fixed number of windows, to compare its peak VRAM with the first row's.\n"
    ),
    "toy_clips": (
        "## The toy model's own clips\n\n"
        "The shipped ToyDiT (`toyworld/train.py`, log in `toyworld/weights/`) sampling single 16-frame windows,\n"
        "every frame at one level as in training, for prompts it never saw in training.\n"
        "A row per run: its Euler steps (the toy preset has 48; the CPU demo workflow samples 18) and device.\n"
        "Contact sheet of the first 8 clips at the preset's steps (rows: clips, columns: frames): ![toy clips](docs/toy_clips.png)\n"
    ),
    "toy_quality": (
        "## FIFO-Diffusion vs MIGA on the toy world\n\n"
        "Each run generates the same videos (the record's `videos`) with the shipped ToyDiT, CFG 3, and scores\n"
        "each with `toyworld/metrics.py` (VBench-style, in [0, 1], higher is better; and object measures: `presence`, the\n"
        "fraction of frames showing the object, `blinks`, times it vanishes and comes back, `jumps`, times its centre\n"
        "jumps farther than the world's motion allows, both counts per video, lower is better, and `size`, 1 minus the\n"
        "coefficient of variation of its area); cells are mean ± std over the videos, `—` where the run predates a metric.\n"
        "`windows/frame` counts model windows (each a CFG batch of 2) per frame of one video,\n"
        "self-reflection's candidate windows included. Rows with equal options are one run: `same run as`\n"
        "lists the other row names that denote it. The sweeps of zigzag_width, unified_steps, num_guidance and update\n"
        "vary full MIGA with self-reflection off; threshold, score_on and judge_position vary full MIGA.\n"
    ),
    "official_calls": (
        "## Model calls per output latent: the authors' released Wan loop against our profiles\n\n"
        "`benchmarks/official_calls.py` (CPU, no model): the released loop's windows come from its records "
        "(`tests/fixtures/official_wan/`, its `generate_by_miga` run with a stand-in model), ours from `plan_run` at the "
        "same T and output length with the initial clip given. The release runs CFG as two batch-1 DiT calls per window, "
        "ours one call of 2 rows (at 416x240 on the H200 a call of 2 rows costs 1.91x one of 1, so per window the time is "
        "about the same: windows per latent compare time, DiT calls per latent compare launches). The release's own "
        "initial-clip windows are left out of both sides. `candidate` are self-reflection's search windows: the record's "
        "for the release and for `wan21-official` (ours skips the candidate windows whose results the release throws "
        "away, REFERENCE A1.7; `tests/test_official_profile.py` holds our run to these windows pass by pass); for the "
        "other profiles they depend on the video and are given per fired check.\n"
    ),
    "wan_perf": (
        "## Time per frame on Wan2.1-1.3B: MIGA, FIFO, the official profile and core context windows (ComfyUI)\n\n"
        "`benchmarks/wan_perf_gpu.py`: the real Wan2.1-T2V-1.3B architecture with random bf16 weights, one device call.\n"
        "`calls/latent` are model calls (windows, each one DiT forward of a CFG batch) per latent frame: planned by `plan_run`\n"
        "(or the context-window schedule) and measured; `long-video calls/latent` is the plan's cost of each further latent\n"
        "once the fixed cost (initial clip, queue build) is paid. `DiT` is the CUDA-event time inside the model's forward.\n"
        "A `partial` row was stopped at its share of the time budget: its seconds per window are measured and its time per\n"
        "frame (marked `*`) is projected as seconds per window x the plan's windows (self-reflection searches excluded).\n"
        "`DiT share` is over the wall time of the span measured, which in a stopped row includes the run's setup spread over\n"
        "its few windows; `DiT share between windows` is the mean DiT forward over the mean interval between the host's\n"
        "window marks (setup left out: what a full run's share tends to; over few windows the marks' jitter can put it\n"
        "above 100%).\n"
    ),
    "wan_perf_paper": (
        "## Time inside the DiT at the paper's steps on Wan2.1-1.3B (the paper_steps rows run alone)\n\n"
        "`benchmarks/wan_perf_gpu.py --groups paper_steps`: the four T=54 rows of the time-per-frame section on their own,\n"
        "each stopped at its share of the budget, to measure issue 13's DiT-share target apart from the full run. Columns as\n"
        "in that section.\n"
    ),
    "wan_sync": (
        "## Host-device synchronizations per run on Wan2.1-1.3B (a diagnostic run)\n\n"
        "`benchmarks/wan_perf_gpu.py --sync-debug`: the same rows as the time-per-frame section, stopped after a few windows,\n"
        "with `torch.cuda.set_sync_debug_mode` counting every host-device synchronization by the file and line of the Python\n"
        "frame that asked for it (file names without their folder: `samplers.py`/`model.py` may be ComfyUI's, `host.py` the\n"
        "pack's `nodes/host.py`). A synchronization inside each model call makes the host wait for the GPU there. The\n"
        "debug mode's warnings slow the host, so this run's times are not used elsewhere.\n"
    ),
    "toy_models_steps": (
        "## The toy model's own clips by sampler steps\n\n"
        "`benchmarks/toy_models.py --steps`: the scores of \"Which toy model to ship\", each candidate sampled at each\n"
        "step count (Euler on the toy ladder). Where the object vanishes at 24 steps and not at more, the sampler, not the\n"
        "weights, loses it. The toy preset had 24 steps until these runs; it has 48 since (`TOY_STEPS`), the fewest here\n"
        "at which no own clip loses its object.\n"
    ),
    "toy_models": (
        "## Which toy model to ship\n\n"
        "Candidate ToyDiT weights side by side (`benchmarks/toy_models.py`): own clips (one 16-frame window, every frame\n"
        "at one level, as in training; the 16 unseen test prompts, 4 noise seeds) and the demo's long-video job (two\n"
        "prompts, full MIGA, 256 frames, one video per prompt seed). `absent` counts frames without the object.\n"
        "The first row is the reference each other row is compared with, video by video.\n"
    ),
    "train_toy": (
        "## The last toy-model training run\n\n"
        "`benchmarks/train_toy.py` on the H200: train under a wall-time budget, pick EMA or raw weights on validation\n"
        "prompts, score on the 16 test prompts. Its long-video check is the same job as `toy_models`'.\n"
    ),
    "vc2_node": (
        "## The MigaSampler node on VideoCrafter2 (ComfyUI), beside the paper and the official FIFO code\n\n"
        "The real VideoCrafter2 t2v 512 architecture with random weights, written as a checkpoint with VC2's key layout\n"
        "and loaded by MigaVC2Loader (UNet, OpenCLIP text tower, VAE), prompts through CLIPTextEncode's call, at 320x512\n"
        "with the paper's VC2 options; then FIFO mode on the same frames and steps. `peak VRAM` is\n"
        "`torch.cuda.max_memory_allocated` during the row with the UNet resident (text encoder and VAE unloaded).\n"
        "The official FIFO-Diffusion loop (`fifo_ddim_sampling` of github:jjihwan/FIFO-Diffusion_public, unmodified, with\n"
        "the same random UNet in its own LVDM code, fp32 as released, a stand-in text embedding of VC2's shape) was timed\n"
        "on the same machine by a script kept outside this repository; its JSON is stored in the record.\n"
    ),
    "toy_long_rss": (
        "## Long videos in bounded host memory (streamed run, CPU)\n\n"
        "`miga_core.run(..., sink=...)` keeps the stage-1 outputs and the unified stage's latents in spill files and hands the\n"
        "finished latents, a chunk at a time, to an H.264 MP4 writer (`nodes/video_file.py`). Each length runs in a fresh\n"
        "process; peak RSS is that process's `ru_maxrss` (`os.wait4`), frames written are counted by decoding the MP4. The\n"
        "model is a small random ToyDiT and few steps (the record's options): memory, not quality, is measured. `in_memory`\n"
        "rows (if present) are the same runs without a sink, as a control that the measure sees a run holding the video.\n"
    ),
    "peer_comfy": (
        "## MIGA against ComfyUI's long-video tools on the toy model (ComfyUI's executor)\n\n"
        "Every video here is generated by a graph of ComfyUI nodes run by ComfyUI v0.8.0's own `PromptExecutor` (validated as\n"
        "POST /prompt does, no cache between graphs), with the shipped ToyDiT as a ComfyUI MODEL (float32): MIGA and\n"
        "FIFO-Diffusion through MigaSampler; core **context windows** (ContextWindowsManual on the frame axis + KSampler over the\n"
        "whole video) at the node's defaults and at the best of a sweep; and **chained clips**, what core nodes do without\n"
        "windows: KSampler clips of 16 frames, each holding the previous clip's last frames through a temporal latent noise\n"
        "mask (inpainting) and generating the rest. The videos, prompts and noise seeds are toy_quality's, the metrics\n"
        "`toyworld/metrics.py`'s (cells: mean ± std over the videos); with two prompts the colour changes at the middle frame\n"
        "(context windows: core's `split_conds_to_windows`, chained clips: a clip takes the prompt of its new frames' middle).\n"
        "`videos/graph`: context windows run one video per graph (core's handler cannot take a batch on the frame axis), the\n"
        "others the whole batch, so `s/frame` is each method as ComfyUI runs it, not the same batch; `frame evals/frame`:\n"
        "the network's frame evaluations (CFG included) per output frame, the compute. The script's docstring\n"
        "(`benchmarks/peer_comfy.py`) describes every graph.\n"
    ),
    "wan_long": (
        "## A 2001-frame Wan2.1-1.3B video from sampler to MP4 in one workflow (ComfyUI)\n\n"
        "`benchmarks/wan_long_gpu.py`: one API-format prompt run by ComfyUI's `PromptExecutor`: the real Wan2.1-T2V-1.3B\n"
        "architecture and Wan2.1 VAE with random weights, MigaSampler (few steps, CFG 1, guidance and self-reflection) straight\n"
        "into MIGA Save Video. Peak VRAM (`max_memory_allocated`) and host RSS (VmHWM) are read and reset at each phase\n"
        "boundary: `sampling` is the sampler alone, `save` the decode and MP4 writing, `workflow` the larger of the two (loaders,\n"
        "which make random weights on the GPU, excluded). The core row decodes the same latent with VAE Decode -> Create Video\n"
        "-> Save Video in a child process with a time limit; a failure, an out-of-memory retry or a stop is recorded as data.\n"
    ),
    "toy_demo_cpu": (
        "## The toy CPU demo workflow inside ComfyUI (2 threads)\n\n"
        "`benchmarks/toy_demo_cpu.py`: the template \"MIGA toy CPU demo - no download 257 frames\" run by ComfyUI's executor on the\n"
        "CPU, from the toy loader to the MP4, with the shipped options and with variants of MigaSampler widgets; identity is\n"
        "measured on each prompt's segment of the decoded MP4. Issue 12 asks for about a minute on 2 cores.\n"
    ),
    "progress_eta": (
        "## Progress and ETA on the toy model (self-reflection on)\n\n"
        "The callback's `window`/`total_windows`/`eta_seconds` recorded at every window of one run; the ETA\n"
        "error is |ETA - real remaining| / real remaining at the first window past 10% of the total.\n"
    ),
}


class StaleRecord(SystemExit):
    pass


def load(path: pathlib.Path) -> dict:
    data = json.loads(path.read_text())
    rec = data.get("record")
    if not isinstance(rec, dict) or not {"script", "command", "options", "code", "machine"} <= set(rec):
        raise StaleRecord(f"{path.relative_to(ROOT)} has no record written by a benchmark script (benchmarks/record.py): "
                          "re-run the script that produces it; results are never edited by hand")
    return data


# ---------------------------------------------------------------- statistics


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population std of ``values`` (NaN for none)."""
    if not values:
        return math.nan, math.nan
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def fmt(values: list[float], digits: int = 4) -> str:
    m, s = mean_std(values)
    return "n/a" if math.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def compare(a: list[float], b: list[float]) -> dict:
    """Paired comparison of ``b`` against ``a`` (same videos): mean difference, 2 SE and the verdict.

    verdict: "higher" / "lower" when |mean(d)| > K_SE * sd(d) / sqrt(n) (sd with n - 1), "within spread"
    otherwise, "identical" when every d is 0, "n/a" for fewer than 2 pairs.
    """
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    n = len(pairs)
    if n < 2:
        return {"n": n, "diff": math.nan, "bound": math.nan, "verdict": "n/a"}
    d = [y - x for x, y in pairs]
    m = sum(d) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in d) / (n - 1))
    bound = K_SE * sd / math.sqrt(n)
    if all(v == 0 for v in d):
        verdict = "identical"
    elif abs(m) > bound:
        verdict = "higher" if m > 0 else "lower"
    else:
        verdict = "within spread"
    return {"n": n, "diff": m, "bound": bound, "verdict": verdict}


def cell(c: dict) -> str:
    if c["verdict"] in ("n/a", "identical"):
        return c["verdict"]
    return f"{c['diff']:+.4f} (±{c['bound']:.4f}) {c['verdict']}"


# ---------------------------------------------------------------- generic tables


def flat_row(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update({f"{kk}" if k == "timing" else f"{k}.{kk}": vv for kk, vv in v.items()})
        elif isinstance(v, list):
            out[k] = fmt([x for x in v if isinstance(x, (int, float))]) if v and isinstance(v[0], (int, float)) else ", ".join(map(str, v))
        else:
            out[k] = v
    return out


def table(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def source_line(path: pathlib.Path, data: dict) -> str:
    rec = data["record"]
    code, machine = rec["code"], rec["machine"]
    commit = code.get("commit") or "unknown (no git checkout; set MIGA_COMMIT)"
    commit = f"{commit}{' + uncommitted changes' if code.get('dirty') else ''}"
    env = ", ".join(f"{k} {v}" for k, v in machine.items())
    date = data.get("timing", {}).get("date", "?")
    return (f"Source: `{path.relative_to(ROOT)}`, written by `{rec['command']}` on {date} "
            f"from code {commit} ({env}).\n")


# ---------------------------------------------------------------- toy quality


def _label(run: dict, group: str | None = None) -> str:
    names = [lab["label"] for lab in run["labels"] if group is None or lab["group"] == group]
    return names[0] if names else run["labels"][0]["label"]


def _find(runs: list[dict], label: str) -> dict | None:
    return next((r for r in runs if any(lab["label"] == label for lab in r["labels"])), None)


def _videos(data: dict) -> int:
    return len(data["record"]["videos"]["prompt_seeds"]) * len(data["record"]["videos"]["noise_seeds"])


def _switch(run: dict) -> tuple[str, str]:
    errors = run.get("switch_error_frames")
    if errors is None:
        return "", ""
    landed = [abs(e) for e in errors if e is not None]
    return f"{len(landed)}/{len(errors)}", fmt(landed, 2) if landed else "never"


def _metric(run: dict, key: str) -> str:
    """Mean ± std of one metric over the run's videos; ``MISSING`` when the run did not measure it."""
    values = run["per_video"].get(key)
    return MISSING if values is None else fmt(values, 2 if key in COUNTS else 4)


def _seconds_per_frame(run: dict) -> str:
    """A row's seconds per frame, marked when it ran beside other work (its time is then an upper bound)."""
    t = run["timing"]
    return f"{t['seconds_per_frame']}{' (contended)' if t.get('contended') else ''}"


def toy_table(data: dict) -> str:
    opts = data["record"]["options"]
    frames = opts["num_frames"]
    rows = []
    for run in data["rows"]:
        row = {"run": _label(run), "same run as": ", ".join(lab["label"] for lab in run["labels"][1:])}
        row.update({SHORT[k]: _metric(run, k) for k in METRICS})
        row["windows/frame"] = round(run["num_windows"] / (len(data["record"]["videos"]["noise_seeds"]) * frames), 3)
        n_all, n_eval, n_corr = run["reflection_n_all"], run["reflection_n_eval"], run["reflection_n_corr"]
        row["R_corr"] = round(n_corr / n_all, 3) if n_all else "-"
        row["R_succ"] = round(n_corr / n_eval, 3) if n_eval else "-"
        landed, err = _switch(run)
        row["switch landed"], row["|switch error| (frames)"] = landed, err
        row["s/frame"] = _seconds_per_frame(run)
        rows.append(row)
    return table(rows)


def comparisons(data: dict, pairs: list[tuple[str, str]], title: str) -> str:
    """A table of paired verdicts, one row per (reference, other) pair present in the data."""
    runs = data["rows"]
    rows = []
    for ref_label, other_label in pairs:
        ref, other = _find(runs, ref_label), _find(runs, other_label)
        if ref is None or other is None:
            continue
        row = {"run": other_label, "vs": ref_label}
        if ref is other:
            row.update({SHORT[k]: "same run" for k in METRICS})
        else:
            row.update({SHORT[k]: cell(compare(ref["per_video"][k], other["per_video"][k]))
                        if k in ref["per_video"] and k in other["per_video"] else MISSING for k in METRICS})
        rows.append(row)
    return f"{title}\n\n{table(rows)}\n" if rows else ""


def _sweep_groups(data: dict) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for run in data["rows"]:
        for lab in run["labels"]:
            groups.setdefault(lab["group"], []).append(lab["label"])
    rank = {label: i for i, (_, label) in enumerate(data["record"]["row_order"])}  # the script's row order
    order = sorted(groups, key=lambda g: min(rank.get(x, 0) for x in groups[g]))
    return {g: sorted(groups[g], key=lambda x: rank.get(x, 0)) for g in order}


def reproduced(path: pathlib.Path, data: dict, others: list[tuple[pathlib.Path, dict]]) -> str:
    """Whether the rows this file shares (equal resolved options) with other toy_quality files have equal per-video values."""
    lines = []
    for other_path, other in others:
        same, differ = [], []
        for run in data["rows"]:
            twin = next((r for r in other["rows"] if _options_key(r["options"]) == _options_key(run["options"])), None)
            if twin is not None:
                (same if twin["per_video"] == run["per_video"] else differ).append(_label(run))
        if same or differ:
            code = other["record"]["code"].get("commit") or "unknown"
            lines.append(f"Rows also in `{other_path.relative_to(ROOT)}` (code {code}): "
                         + (f"identical per-video values for {', '.join(f'`{x}`' for x in same)}" if same else "none identical")
                         + (f"; DIFFERENT values for {', '.join(f'`{x}`' for x in differ)}" if differ else "") + ".")
    return "\n".join(lines) + "\n" if lines else ""


def _options_key(options: dict) -> str:
    """A row's resolved options with config fields at their defaults dropped, so rows written before a field existed match."""
    config = {k: v for k, v in (options.get("config") or {}).items() if (k, v) not in NEW_FIELD_DEFAULTS}
    return json.dumps({**options, "config": config}, sort_keys=True)


NEW_FIELD_DEFAULTS = {("scale_arr", "dropped")}  # config fields added after rows were recorded, at their default value


def findings(data: dict) -> str:
    """Verdicts computed from the per-video values; nothing here is typed about the results."""
    runs = data["rows"]
    n = _videos(data)
    out = [f"### Verdicts\n\nEach cell: mean paired difference (run minus reference) over the {n} videos, (± two standard "
           "errors of that mean), and the verdict: `higher`/`lower` when the difference exceeds two standard errors, "
           "`within spread` otherwise (higher is better for every metric but blinks and jumps, which count events per video; "
           "`—`: a run predates the metric). About 1 in 20 comparisons of runs that do not truly "
           "differ is still called a difference by this rule; a verdict that matters should hold on more videos.\n"]
    groups = _sweep_groups(data)
    ablation = groups.get("ablation", [])
    if "FIFO-Diffusion" in ablation:
        out.append(comparisons(data, [("FIFO-Diffusion", x) for x in ablation if x != "FIFO-Diffusion"],
                               "**Ablation** (each row against FIFO-Diffusion):"))
    steps = [("+zigzag stage", "+unified stage (TTA)"), ("+unified stage (TTA)", "full MIGA without reflection"),
             ("full MIGA without reflection", "full MIGA"), ("DCE only", "full MIGA")]
    out.append(comparisons(data, steps, "**What each addition changes** (row against the row without it):"))
    official = groups.get("official", [])
    if official and "full MIGA" in ablation:
        out.append(comparisons(data, [("full MIGA", x) for x in official],
                               "**The authors' released loop** (official profile, and each official difference alone, against "
                               "the paper profile `full MIGA`):"))
        if "FIFO-Diffusion" in ablation:
            out.append(comparisons(data, [("FIFO-Diffusion", x) for x in official], "**The same rows against FIFO-Diffusion**:"))
        out.append(comparisons(data, [("+official choices (wan21 default)", x) for x in ("wan21 default +uni_pc", "wan21 default +refinement pass")]
                               + [("official profile", "official profile without the stage-2 mislabel")],
                               "**On top of the `wan21` default**, and the official profile without its quirk:"))
        out.append(comparisons(data, [("official profile", "+official choices (wan21 default)")],
                               "**The `wan21` default against the whole official profile** (which also runs uni_pc, the "
                               "official build and trim, Gauss-Seidel reads, the refinement pass and the release's stage-2 "
                               "mislabel, a quirk the default never takes):"))
    for group, base in data["record"]["sweep_base"].items():
        labels = groups.get(group, [])
        if base in labels:
            out.append(comparisons(data, [(base, x) for x in labels if x != base], f"**{group}** (against the preset's `{base}`):"))
    if {"FIFO-Diffusion (2 prompts)", "full MIGA (2 prompts)"} <= set(groups.get("multi_prompt", [])):
        out.append(comparisons(data, [("FIFO-Diffusion (2 prompts)", "full MIGA (2 prompts)")], "**Two prompts**:"))
        a, b = _find(runs, "FIFO-Diffusion (2 prompts)"), _find(runs, "full MIGA (2 prompts)")
        ea = [abs(e) if e is not None else None for e in a["switch_error_frames"]]
        eb = [abs(e) if e is not None else None for e in b["switch_error_frames"]]
        c = compare(ea, eb)
        verdict = {"lower": "closer to the scheduled frame", "higher": "further from the scheduled frame"}.get(c["verdict"], c["verdict"])
        out.append(f"Colour switch: landed in {_switch(b)[0]} MIGA videos and {_switch(a)[0]} FIFO-Diffusion videos; "
                   f"over the {c['n']} videos where both landed, MIGA's |error| differs by "
                   + (f"{c['diff']:+.2f} frames (±{c['bound']:.2f}): {verdict}.\n" if c["n"] >= 2 else "n/a (fewer than 2 videos).\n"))
    out.append(summary(data, groups))
    return "\n".join(x for x in out if x)


def summary(data: dict, groups: dict[str, list[str]]) -> str:
    """Per sweep: is the preset's value measurably beaten on identity accuracy? (computed)."""
    runs = data["rows"]
    lines = ["### The presets' choices on identity accuracy\n"]
    for group, base in data["record"]["sweep_base"].items():
        labels = [x for x in groups.get(group, []) if x != base]
        ref = _find(runs, base)
        if ref is None or not labels:
            continue
        better, worse = [], []
        for x in labels:
            other = _find(runs, x)
            c = compare(ref["per_video"]["identity_accuracy"], other["per_video"]["identity_accuracy"])
            (better if c["verdict"] == "higher" else worse if c["verdict"] == "lower" else []).append(f"`{x}` ({c['diff']:+.4f})")
        if better:
            text = "measurably beaten by " + ", ".join(better)
        else:
            text = "not measurably beaten by any other value"
        if worse:
            text += "; measurably better than " + ", ".join(worse)
        lines.append(f"- {group}: the preset's `{base}` is {text}.")
    ref, refl = _find(runs, "full MIGA without reflection"), _find(runs, "full MIGA")
    if ref is not None and refl is not None and ref is not refl:
        c = compare(ref["per_video"]["identity_accuracy"], refl["per_video"]["identity_accuracy"])
        word = {"higher": "raises", "lower": "lowers"}.get(c["verdict"], "does not measurably change")
        lines.append(f"- Self-reflection at the preset's threshold {word} identity accuracy "
                     f"({cell(c)}), at {refl['num_windows'] / max(ref['num_windows'], 1):.2f}x the windows.")
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


def commits_line(datas: list[tuple[pathlib.Path, dict]]) -> str:
    """Whether the records share one state of the code: the sha256 of each code path they name, and their git state."""
    if not datas:
        return "No benchmark results are present.\n"
    hashes: dict[str, set[str]] = {}
    for _, d in datas:
        for path, digest in d["record"]["code"].get("sha256", {}).items():
            if not path.startswith("benchmarks/") or path == "benchmarks/record.py":  # each script hashes itself too
                hashes.setdefault(path, set()).add(digest)
    commits = {(d["record"]["code"].get("commit"), bool(d["record"]["code"].get("dirty"))) for _, d in datas}
    git = "; ".join(f"{c or 'unknown'}{' with uncommitted changes' if dirty else ''}" for c, dirty in sorted(commits, key=str))
    if any(len(v) > 1 for v in hashes.values()):
        differ = ", ".join(sorted(p for p, v in hashes.items() if len(v) > 1))
        return f"The results below come from different states of the code ({differ} differ between records; git: {git}); re-run the older ones.\n"
    listed = ", ".join(f"`{p}` {next(iter(v))}" for p, v in sorted(hashes.items()))
    return (f"All results below come from one state of the code: sha256 {listed} in every record that names them "
            f"(recorded git state: {git}). `python benchmarks/report.py --verify-code` compares them with a checkout.\n")


def render() -> str:
    datas = [(path, load(path)) for path in sorted(RESULTS.glob("*.json"))]
    parts = ["# Benchmarks\n", "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`, which only the "
             "benchmark scripts write; do not edit by hand.\n", commits_line(datas)]
    peers = [(p, d) for p, d in datas if d["benchmark"] == "peer_comfy"]  # the parts of one table (merge_peer)
    clips = [(p, d) for p, d in datas if d["benchmark"] == "toy_clips"]  # one table, a row per run (its steps and device)
    for path, data in datas:
        if data["benchmark"] == "peer_comfy":
            if path != peers[0][0]:
                continue
            parts.append(INTRO["peer_comfy"])
            parts += [source_line(p, d) for p, d in peers]
            parts.append(peer_text(merge_peer([d for _, d in peers])))
            continue
        if data["benchmark"] == "toy_clips":
            if path == clips[0][0]:
                parts.append(INTRO["toy_clips"])
                parts += [source_line(p, d) for p, d in clips]
                parts.append(toy_clips_table([d for _, d in clips]) + "\n")
            continue
        if data["benchmark"] == "toy_quality" and data["record"]["options"].get("only"):
            parts.append("## FIFO-Diffusion vs MIGA on the toy world: rows added later\n\nThe same videos, metrics and "
                         "columns as the full table (next section), for a few rows run on their own (`--only`).\n")
        else:
            parts.append(INTRO.get(section(data), f"## {data['benchmark']}\n"))
        parts.append(source_line(path, data))
        if data["benchmark"] == "toy_quality":
            o = data["record"]["options"]
            parts.append(f"Setting: {o['prompts']} prompts x {o['seeds']} noise seeds = {o['prompts'] * o['seeds']} videos of "
                         f"{o['num_frames']} frames, T={o['steps']}, {o['window_batch']} windows per model call"
                         + (f"; only the rows {', '.join(f'`{x}`' for x in o['only'].split(','))}." if o.get("only") else ".")
                         + "\n")
            parts.append(toy_table(data) + "\n")
            parts.append(reproduced(path, data, [(q, d) for q, d in datas if d["benchmark"] == "toy_quality" and q != path]))
            parts.append(findings(data))
        elif section(data) == "wan_sync":
            parts.append(wan_sync_text(data))
        elif data["benchmark"] == "wan_perf":
            parts.append(wan_perf_text(data))
        elif data["benchmark"] == "official_calls":
            parts.append(official_calls_text(data))
        elif data["benchmark"] == "toy_models":
            parts.append(toy_models_text(data))
        elif data["benchmark"] == "train_toy":
            parts.append(train_toy_text(data))
        elif data["benchmark"] == "vc2_node":
            parts.append(vc2_text(data))
        elif data["benchmark"] == "toy_long_rss":
            parts.append(rss_text(data))
        elif data["benchmark"] == "wan_long":
            parts.append(wan_long_text(data))
        elif data["benchmark"] == "progress_eta":
            o = data["record"]["options"]
            parts.append(f"Setting: {o['num_frames']} frames, T={o['steps']}, {o['window_batch']} windows per model call.\n")
            parts.append(progress_text(data))
        else:
            parts.append(table([flat_row(r) for r in data["rows"]]) + "\n")
    return "\n".join(parts)


def section(data: dict) -> str:
    """The report section of a results file: its benchmark, but ``wan_sync`` for a ``wan_perf_gpu.py --sync-debug`` run
    (its times include the debug mode's warnings, so it is shown for its synchronizations only), ``wan_perf_paper`` for
    a run of the paper_steps rows alone (a rerun of the DiT-share target, beside the full run) and ``toy_models_steps``
    for a ``toy_models.py`` run at several step counts."""
    if data["benchmark"] == "wan_perf" and data["record"]["options"].get("sync_debug"):
        return "wan_sync"
    if data["benchmark"] == "wan_perf" and data["record"]["options"].get("groups") == "paper_steps":
        return "wan_perf_paper"
    if data["benchmark"] == "toy_models" and len(data["record"]["options"].get("steps") or []) > 1:
        return "toy_models_steps"
    return data["benchmark"]


def wan_sync_text(data: dict) -> str:
    """Per row: the host-device synchronizations of its run by the Python line that made them, each as a count and per
    DiT forward, and the DiT share between windows (:func:`perf_figures`)."""
    lines = ["| row | size | windows | DiT forwards | synchronizations | per forward | by line (count) | DiT share between windows |",
             "|" + "---|" * 8]
    every: dict[str, set] = {}
    forwards: list[int] = []
    for r in data["rows"]:
        for run in r["timing"].get("runs", []):
            syncs = run.get("syncs")
            if not syncs:
                continue
            n = max(run.get("forwards_done") or run.get("dit_forwards") or 0, 1)
            forwards.append(n)
            sites = sorted(syncs["sites"].items(), key=lambda kv: -kv[1])
            f = perf_figures(r)
            steady = f and f.get("steady_dit_fraction")
            lines.append(f"| {r['name']} | {r['width']}x{r['height']} | {run.get('windows_done', '')} | {n} | {syncs['total']} | "
                         f"{syncs['total'] / n:.2f} | " + ", ".join(f"`{k}` ({v})" for k, v in sites) +
                         f" | {f'{100 * steady:.1f}%' if steady else ''} |")
            for k, v in sites:
                every.setdefault(k, set()).add(v == n)
    out = ["\n".join(lines) + "\n"]
    per_call = sorted(k for k, once in every.items() if once == {True})
    if every:
        out.append(f"- Lines whose count equals the row's DiT forwards in every row: {', '.join(f'`{k}`' for k in per_call) or 'none'}"
                   + ("; every row ran the same number of forwards, so these counts cannot tell once per forward from once per "
                      "run (the code can).\n" if len(set(forwards)) == 1 else ": once per forward.\n"))
    return "\n".join(out)


def official_calls_text(data: dict) -> str:
    """The released loop's windows and DiT calls per output latent beside our profiles', and the ratios."""
    phases = ("init", "candidate", "stage1", "stage2", "refine")
    lines = ["| record | T | output latents | side | " + " | ".join(phases) + " | windows | windows/latent | DiT calls/latent | "
             "self-reflection |", "|" + "---|" * (8 + len(phases))]
    for r in data["rows"]:
        w = r["windows_by_phase"]
        if "fired_checks" in r:
            refl = f"{r['fired_checks']} checks fired" + (f" (its own clip: {r['initial_clip_windows']} windows, left out)"
                                                           if r.get("initial_clip_windows") else "")
        else:
            refl = f"+{r['windows_per_fired_check']} windows per fired check, {r['checks']} checks" if r["checks"] else "off"
        lines.append(f"| {r['record']} | {r['steps']} | {r['output_latents']} | {r['side']} | "
                     + " | ".join(str(w[p]) if p in w else "searches" if r["checks"] else "0" for p in phases)
                     + f" | {r['windows']} | {r['windows_per_latent']} | {r['dit_calls_per_latent']} | {refl} |")
    out = ["\n".join(lines) + "\n"]
    for name in dict.fromkeys(r["record"] for r in data["rows"]):
        rows = {r["side"]: r for r in data["rows"] if r["record"] == name}
        rel, off = rows["released code"], rows["ours, wan21-official"]
        dropped = rel["windows_by_phase"]["candidate"] - off["windows_by_phase"]["candidate"]
        line = (f"- `{name}` (T={rel['steps']}, {rel['output_latents']} output latents): the released code makes "
                f"{rel['dit_calls_per_latent']} DiT calls per output latent ({rel['windows_per_latent']} windows); ours with the "
                f"official profile {off['dit_calls_per_latent']} (its windows less the {dropped} discarded candidate windows, one "
                f"call each): the release makes {rel['dit_calls_per_latent'] / off['dit_calls_per_latent']:.2f}x our DiT calls and "
                f"{rel['windows_per_latent'] / off['windows_per_latent']:.2f}x our windows")
        for side in ("ours, wan21", "ours, wan21-paper"):
            r = rows.get(side)
            if r:
                line += (f"; {side.removeprefix('ours, ')} {r['windows_per_latent']} windows per latent"
                         + (" before searches" if r["checks"] else ""))
        out.append(line + ".")
    return "\n".join(out) + "\n"


def _clip_cells(s: dict) -> list[str]:
    return [f"{s['identity_mean']:.4f} ± {s['identity_std']:.4f}", f"{s['clips_with_absent_frames']} / {s['clips']}", str(s["absent_frames"])]


def toy_clips_table(datas: list[dict]) -> str:
    """The toy model's own clips, a row per toy_clips run: its Euler steps, device and dtype first, then every metric."""
    rows = []
    for d in datas:
        rec = d["record"]
        rows += [{"steps": _clip_steps(rec), "device": f"{rec['machine']['device']} {rec['machine'].get('dtype', '')}".strip(),
                  **flat_row(r)} for r in d["rows"]]
    rows.sort(key=lambda r: r["steps"])
    return table(rows)


STEPS_BEFORE_48 = 24  # TOY_STEPS until c578b28: the steps of toy results whose record names none


def _clip_steps(rec: dict) -> int:
    """The Euler steps of a toy_clips record (records from before --steps name none: the then preset's)."""
    return rec.get("steps", STEPS_BEFORE_48)


def toy_models_text(data: dict) -> str:
    """Table of the candidates and paired verdicts of each against the first (long-video identity, absent frames)."""
    rows = data["rows"]
    lines = ["| weights | steps | params | own clips identity (seed 0) | clips with absent frames | absent frames | "
             "own clips identity (all seeds) | clips with absent frames (all seeds) | long videos identity | long videos absent frames |",
             "|" + "---|" * 10]

    def name(r):  # rows written before toy_models had --steps ran the toy preset's steps (then 24)
        return f"{r['weights']} @ {r['steps']} steps" if "steps" in r else r["weights"]

    for r in rows:
        lv, a = r["long_videos"] or {}, r["own_clips_all_seeds"]
        lines.append(f"| {r['weights']} | {r.get('steps', STEPS_BEFORE_48)} | {r['params']} | " + " | ".join(_clip_cells(r["own_clips_seed0"])) +
                     f" | {a['identity_mean']:.4f} | {a['clips_with_absent_frames']} / {a['clips']} | {lv.get('identity_mean', MISSING)} | "
                     f"{lv.get('absent_frames', MISSING)} |")
    out = ["\n".join(lines) + "\n"]
    base = rows[0]

    def long_ident(r):
        return [(v["identity_first"] + v["identity_second"]) / 2 for v in (r["long_videos"] or {}).get("per_video", [])]

    def long_absent(r):
        return [float(len(v["absent_frames"])) for v in (r["long_videos"] or {}).get("per_video", [])]

    for r in rows[1:]:
        if not (long_ident(base) and long_ident(r)):  # run with --long-videos 0
            continue
        ci, ca = compare(long_ident(base), long_ident(r)), compare(long_absent(base), long_absent(r))
        out.append(f"- `{name(r)}` vs `{name(base)}` on the long videos: identity {cell(ci)}, absent frames per video {cell(ca)}.")
    return "\n".join(out) + "\n"


def train_toy_text(data: dict) -> str:
    s = data["summary"]
    lines = ["| weights | validation identity | test identity (seed 0) | test clips with absent frames | test absent frames |",
             "|---|---|---|---|---|"]
    for r in data["rows"]:
        v, t = r["validation"], r["test_seed0"]
        lines.append(f"| {r['weights']}{' (selected)' if r['weights'] == s['selected'] else ''} | {v['identity_mean']:.4f} | "
                     f"{t['identity_mean']:.4f} | {t['clips_with_absent_frames']} / {t['clips']} | {t['absent_frames']} |")
    train = s["train"]
    return ("\n".join(lines) + f"\n\n{train['steps']} steps, {train['clips']} clips in {train['seconds']} s; {s['params']} parameters; "
            f"target ({s['target']}) {'met' if s['target_met'] else 'not met'}.\n")
# The paper's own VC2 efficiency figures (arXiv 2605.18233, App. B.3; the GPU is not stated there; VC2 setting of
# Sec. 4.1 "Model Implementation": T=64, L_zig=4, m_guid=6, delta_adju=0.01).
PAPER = "MIGA, arXiv 2605.18233"
PAPER_TAB_A4_S_PER_FRAME = {"FIFO-Diffusion": 7.48, "MIGA w/o DCE": 7.53, "MIGA": 9.16}  # Tab. A4, M_t (s per frame)
PAPER_TAB_A3_VC2_SHORT_MIB = 9919  # App. B.3 text with Tab. A3: VideoCrafter2 short-clip inference, peak MiB
PAPER_TAB_A3_PEAK_MIB = {"frames": [500, 1000, 1500, 2000],  # Tab. A3, peak memory (MiB) by generated frames
                         "MIGA w/o Stage 2": [9929, 9945, 9965, 9985], "MIGA": [9929, 9945, 9965, 9985]}


def vc2_text(data: dict) -> str:
    """The VC2 node rows, the official FIFO-Diffusion measurement stored in the record, and the paper's Tab. A3/A4,
    with the ratios computed from them."""
    rec = data["record"]
    rows = data["rows"]
    by_mode = {r["mode"]: r for r in rows}
    first = rows[0] if rows else {}
    lines = [(f"Setting: {rec.get('model', '?')}; UNet {rec.get('unet_dtype', '?')} as ComfyUI loaded it; "
              f"{first.get('num_pixel_frames', '?')} frames at {rec['options'].get('height')}x{rec['options'].get('width')}, "
              f"T={first.get('steps', '?')} (paper: 64), CFG {first.get('cfg', '?')}; preset {rec.get('preset', '?')}.\n")]
    table_rows = []
    for r in rows:
        table_rows.append({"run": f"node, {r['mode']} mode", "frames": r["num_pixel_frames"], "T": r["steps"],
                           "model calls": r["model_calls"], "calls/frame": r["model_calls_per_frame"],
                           "s/frame": r["timing"]["s_per_frame"], "s/model call": r["timing"]["s_per_model_call"],
                           "peak VRAM MiB": r.get("peak_vram_mib", "n/a"), "reserved MiB": r.get("peak_vram_reserved_mib", "n/a"),
                           "host RSS GiB": r.get("rss_gib", "n/a"),
                           "reflection n_all / n_corr": f"{r['reflection_n_all']} / {r['reflection_n_corr']}"})
    off = rec.get("official_fifo")
    if isinstance(off, dict) and "s_per_frame" in off:
        table_rows.append({"run": f"official FIFO-Diffusion code ({off.get('dtype', '?')})", "frames": off.get("new_video_length", "?"),
                           "T": off.get("num_inference_steps", "?"), "model calls": off.get("unet_forwards", "?"),
                           "calls/frame": off.get("unet_forwards_per_frame", "?"), "s/frame": off["s_per_frame"],
                           "s/model call": off.get("s_per_unet_forward", "?"), "peak VRAM MiB": off.get("peak_vram_mib", "n/a"),
                           "reserved MiB": off.get("peak_vram_reserved_mib", "n/a"), "host RSS GiB": off.get("rss_gib", "n/a"),
                           "reflection n_all / n_corr": "-"})
    if table_rows:
        lines.append(table(table_rows) + "\n")
    if isinstance(off, dict) and "s_per_frame" in off:
        attached = rec.get("official_fifo_attached")
        if attached:
            lines.append(f"The official run was made in a separate device call and stored in this record afterwards by "
                         f"`{attached['command']}` ({attached['date']}).\n")
        lines.append(f"Official run: `{off.get('command', '?')}` on {off.get('device', '?')} ({off.get('date', '?')}); its model calls "
                     f"are single-prompt UNet forwards (CFG as two batch-1 forwards), the node's are CFG batches of 2. "
                     f"{off.get('s_per_frame_without_decode', '?')} s/frame without its per-frame VAE decode "
                     f"({off.get('vae_decode_s', '?')} s in all); attention: {off.get('attention', '?')}.\n")
    elif isinstance(off, dict):
        lines.append(f"Official run: not measured ({off.get('missing', 'no result')}).\n")
    a4 = PAPER_TAB_A4_S_PER_FRAME
    lines.append(f"The paper ({PAPER}): Tab. A4 gives M_t, seconds per frame, FIFO-Diffusion {a4['FIFO-Diffusion']}, MIGA w/o DCE "
                 f"{a4['MIGA w/o DCE']}, MIGA {a4['MIGA']} (VC2 setting, GPU not stated); Tab. A3 gives peak memory, "
                 f"VideoCrafter2 short-clip inference {PAPER_TAB_A3_VC2_SHORT_MIB} MiB, MIGA "
                 + ", ".join(f"{m} MiB at {f} frames" for f, m in zip(PAPER_TAB_A3_PEAK_MIB["frames"], PAPER_TAB_A3_PEAK_MIB["MIGA"]))
                 + " (the same with Stage 2 off).\n")
    computed = []
    if "miga" in by_mode and "fifo" in by_mode:
        ours = by_mode["miga"]["timing"]["s_per_frame"] / by_mode["fifo"]["timing"]["s_per_frame"]
        computed.append(f"- MIGA / FIFO time per frame: {ours:.2f} here, {a4['MIGA'] / a4['FIFO-Diffusion']:.2f} in Tab. A4.")
    if "fifo" in by_mode and isinstance(off, dict) and "s_per_frame" in off:
        computed.append(f"- The node's FIFO mode / the official FIFO code, time per frame on this GPU: "
                        f"{by_mode['fifo']['timing']['s_per_frame'] / off['s_per_frame']:.2f}"
                        + (f" (node UNet {rec.get('unet_dtype')}, official {off.get('dtype')}: not the same precision)"
                           if rec.get("unet_dtype") != off.get("dtype") else "") + ".")
        if off.get("num_inference_steps"):
            computed.append(f"- The official FIFO code here: {off['s_per_frame']} s/frame at T={off['num_inference_steps']} "
                            f"against Tab. A4's {a4['FIFO-Diffusion']} s/frame (T=64, GPU not stated).")
    if "miga" in by_mode and "peak_vram_mib" in by_mode["miga"]:
        computed.append(f"- MIGA peak VRAM here: {by_mode['miga']['peak_vram_mib']} MiB ({rec.get('unet_dtype', '?')} UNet) "
                        f"against Tab. A3's {PAPER_TAB_A3_PEAK_MIB['MIGA'][0]} MiB at 500 frames.")
    return "\n".join(lines) + ("\n" + "\n".join(computed) + "\n" if computed else "")


RSS_AIM = 1.05  # issue 11: a 10,000-frame streamed run's peak RSS within 5% of a 1,000-frame run's


def rss_text(data: dict) -> str:
    """The long-run memory table and, computed, whether the longest streamed run met :data:`RSS_AIM` and wrote every frame."""
    rows = data["rows"]
    table_rows = [{"frames": r["num_frames"], "mode": r["mode"], "frames in MP4": r["frames_written"],
                   "peak RSS MiB": r["peak_rss_mib"], "vs first length": f"{r['peak_rss_vs_first']:.4f}",
                   "model calls": r["model_calls"], "seconds": r["timing"]["seconds"]} for r in rows]
    lines = []
    streamed = [r for r in rows if r["mode"] == "streamed"]
    if len(streamed) >= 2:
        first, last = streamed[0], streamed[-1]
        ratio = last["peak_rss_mib"] / first["peak_rss_mib"]
        ok = "within" if ratio <= RSS_AIM else "NOT within"
        lines.append(f"- Streamed: {last['num_frames']} frames peak at {last['peak_rss_mib']} MiB, {first['num_frames']} frames at "
                     f"{first['peak_rss_mib']} MiB: ratio {ratio:.4f}, {ok} the aim of {RSS_AIM}.")
    short = [r for r in rows if r["frames_written"] != r["num_frames"]]
    lines.append("- Every MP4 holds all its frames." if not short else
                 "- MP4s missing frames: " + ", ".join(f"{r['num_frames']} {r['mode']} ({r['frames_written']} written)" for r in short) + ".")
    memory = [r for r in rows if r["mode"] == "in_memory"]
    if len(memory) >= 2:
        lines.append(f"- Control, in memory: {memory[-1]['num_frames']} frames peak at {memory[-1]['peak_rss_mib']} MiB against "
                     f"{memory[0]['peak_rss_mib']} MiB for {memory[0]['num_frames']} (ratio {memory[-1]['peak_rss_mib'] / memory[0]['peak_rss_mib']:.4f}).")
    return table(table_rows) + "\n\n" + "\n".join(lines) + "\n"


# ---------------------------------------------------------------- long Wan workflow (wan_long)


def _peak(row: dict, key: str, phase: str):
    return (row.get(key) or {}).get(phase)


def wan_long_verdict(row: dict) -> str:
    """Computed from the sampler row: is the whole workflow's peak VRAM (sampler start to MP4) no higher than sampling's?"""
    sampling, workflow = _peak(row, "peak_vram_gib", "sampling"), _peak(row, "peak_vram_gib", "workflow")
    if not row.get("completed"):
        return f"- The sampler-to-MP4 workflow did not complete: {row.get('error', 'no error recorded')}."
    if sampling is None or workflow is None:
        return "- No VRAM measured (not a CUDA run): the verdict on peak VRAM needs the GPU run."
    if workflow <= sampling:
        verdict = f"no higher than sampling alone ({workflow} GiB = sampling's {sampling} GiB; the save phase peaked at {_peak(row, 'peak_vram_gib', 'save')} GiB)"
    else:
        verdict = f"HIGHER than sampling alone: {workflow} GiB against {sampling} GiB (+{workflow - sampling:.2f} GiB, from the save phase)"
    card = (f"ComfyUI managed the save phase as on a card of {row['save_card_gib']} GiB (the sampling peak)"
            if row.get("save_card") == "sampling-peak" and "save_card_gib" in row
            else "ComfyUI managed the save phase with the whole device")
    held, save = (row.get("vram_held_at_phase_end_gib") or {}).get("sampling"), _peak(row, "peak_vram_gib", "save")
    own = (f"; {held} GiB were still allocated when sampling ended (the diffusion model, kept loaded while the device has "
           f"room), so the save phase peaked {save - held:.2f} GiB above what sampling left allocated" if held is not None and save is not None else "")
    return f"- Peak VRAM of the whole workflow vs sampling alone: {verdict}. {card}{own}."


def wan_long_text(data: dict) -> str:
    """The table of both rows and the computed verdicts: VRAM of the workflow vs sampling, frames written, the core row's fate."""
    table_rows, lines = [], []
    for r in data["rows"]:
        t = r.get("timing", {})
        table_rows.append({
            "path": r["path"], "frames": r["num_pixel_frames"], "completed": r.get("completed"),
            "frames in MP4": r.get("mp4_frames", MISSING),
            "peak VRAM GiB sampling / save-or-decode / workflow": " / ".join(
                str(_peak(r, "peak_vram_gib", p) if _peak(r, "peak_vram_gib", p) is not None else MISSING)
                for p in ("sampling" if r["path"].startswith("miga") else "decode", "save", "workflow")),
            "peak RSS GiB (workflow)": _peak(r, "peak_rss_gib", "workflow") or MISSING,
            "model calls (planned)": f"{r['model_calls']} ({r['planned_calls']})" if "model_calls" in r else MISSING,
            "seconds": t.get("workflow_s", t.get("child_wall_s", MISSING)),
            "note": r.get("error", "tiled retry after OOM" if r.get("tiled_retry_after_oom") else ""),
        })
    miga = next((r for r in data["rows"] if r["path"].startswith("miga")), None)
    if miga is not None:
        o = data["record"]["options"]
        lines.append(f"- Setting: {o['frames']} frames at {o['width']}x{o['height']}, T={o['steps']}, CFG 1, window {o['window']}, "
                     f"zigzag {o['zigzag_width']}, unified {o['unified_steps']}, guidance {o['guidance']}, reflection threshold "
                     f"{o['reflection_threshold']}, decode_chunk {o['decode_chunk']}.")
        lines.append(wan_long_verdict(miga))
    for r in data["rows"]:
        if r.get("completed"):
            ok = r.get("mp4_frames") == r["num_pixel_frames"]
            lines.append(f"- `{r['path']}`: {r.get('mp4_frames')} of {r['num_pixel_frames']} frames in the MP4"
                         f"{'' if ok else ' (FRAMES MISSING)'}.")
        else:
            lines.append(f"- `{r['path']}` did not complete: {r.get('error', 'no error recorded')}.")
    return table(table_rows) + "\n\n" + "\n".join(lines) + "\n"


# ---------------------------------------------------------------- peer benchmark (peer_comfy)

PEER_MIGA = "MIGA (default profile)"
PEER_CW = ("context windows (defaults)", "context windows (best of sweep)")
SETTINGS = ("1 prompt", "2 prompts")


def peer_verdict(miga: list[float], other: list[float], key: str) -> dict:
    """MIGA's paired difference against another row on one metric, as "better"/"worse" for MIGA (counts: lower is better)."""
    c = compare(other, miga)  # diff = MIGA - other
    if c["verdict"] in ("higher", "lower"):
        better = (c["verdict"] == "lower") if key in COUNTS else (c["verdict"] == "higher")
        c["verdict"] = "MIGA better" if better else "MIGA worse"
    return c


def _peer_rows(data: dict, setting: str) -> dict[str, dict]:
    out = {}
    for row in data["rows"]:
        if row["group"] == "peer" and row["setting"] == setting:
            for label in row["labels"]:
                out[label] = row
    return out


def _peer_name(data: dict, label: str, row: dict) -> str:
    if label == "context windows (best of sweep)":
        c = row["method"]["config"]
        return f"{label}: {c['schedule']}, {c['fuse']}, FreeNoise {'on' if c['freenoise'] else 'off'}, overlap {c['overlap']}"
    if label == "chained clips":
        return f"{label} (keeps {row['method']['known']} frames)"
    return label


def peer_table(data: dict, setting: str) -> str:
    rows = []
    found = _peer_rows(data, setting)
    for label in data["record"]["peer_rows"]:
        run = found.get(label)
        if run is None:
            rows.append({"row": label, **{SHORT[k]: "not run" for k in METRICS}})
            continue
        row = {"row": _peer_name(data, label, run)}
        row.update({SHORT[k]: _metric(run, k) for k in METRICS})
        if setting == "2 prompts":
            landed, err = _switch(run)
            row["switch landed"], row["|switch error| (frames)"] = landed, err
        row["videos/graph"] = run["videos_per_graph"]
        row["frame evals/frame"] = run["frame_evals_per_frame"]
        row["s/frame"] = _seconds_per_frame(run)
        row["peak memory GiB"] = run["timing"]["peak_memory_gib"]
        rows.append(row)
    return table(rows)


def sweep_table(data: dict) -> str:
    runs = [r for r in data["rows"] if r["group"] == "sweep"]
    if not runs:
        return ""
    ranks = _mean_ranks({r["labels"][0]: r["per_video"] for r in runs})
    rows = []
    for r in runs:
        row = {"context windows": r["labels"][0]}
        row.update({SHORT[k]: _metric(r, k) for k in METRICS})
        row["mean rank"] = ranks[r["labels"][0]]
        row["s/frame"] = _seconds_per_frame(r)
        rows.append(row)
    best = next((r for r in data["rows"] if r["group"] == "peer" and "context windows (best of sweep)" in r["labels"]), None)
    chosen = ""
    if best is not None:
        c = best["method"]["config"]
        chosen = (f"\nChosen as the best: `{c['schedule']}, {c['fuse']}, FreeNoise {'on' if c['freenoise'] else 'off'}, overlap "
                  f"{c['overlap']}` (rule: {data['record']['sweep']['rule']}).\n")
    return (f"**Sweep** ({data['record']['sweep']['videos']}; `contended`: run in a pool of processes, "
            f"the time is not a solo time):\n\n{table(rows)}\n{chosen}")


def _mean_ranks(runs: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """Mean rank over the metrics per config (1 = best; counts: lower is better): the sweep's choice rule."""
    names = list(runs)
    total = {n: 0.0 for n in names}
    for key in METRICS:
        means = {n: sum(runs[n][key]) / len(runs[n][key]) for n in names}
        sign = -1.0 if key in COUNTS else 1.0
        for n in names:
            better = sum(1 for m in names if -sign * means[m] < -sign * means[n])
            equal = sum(1 for m in names if means[m] == means[n])
            total[n] += better + (equal + 1) / 2
    return {n: round(total[n] / len(METRICS), 3) for n in names}


def peer_verdicts(data: dict, setting: str) -> str:
    found = _peer_rows(data, setting)
    miga = found.get(PEER_MIGA)
    if miga is None:
        return ""
    rows = []
    for label in data["record"]["peer_rows"]:
        other = found.get(label)
        if label == PEER_MIGA or other is None:
            continue
        row = {"MIGA (default profile) vs": _peer_name(data, label, other)}
        for k in METRICS:
            c = peer_verdict(miga["per_video"][k], other["per_video"][k], k)
            row[SHORT[k]] = cell(c) if c["verdict"] not in ("n/a", "identical") else c["verdict"]
        if setting == "2 prompts":
            a = [abs(e) if e is not None else None for e in other["switch_error_frames"]]
            b = [abs(e) if e is not None else None for e in miga["switch_error_frames"]]
            c = compare(a, b)
            word = {"lower": "MIGA closer", "higher": "MIGA further"}.get(c["verdict"], c["verdict"])
            row["|switch error|"] = f"{c['diff']:+.2f} (±{c['bound']:.2f}) {word}" if c["n"] >= 2 else "n/a"
        rows.append(row)
    return table(rows) if rows else ""


def peer_closing(data: dict) -> str:
    """Where MIGA beats core context windows and where it does not: computed from the verdicts."""
    lines = ["### Where MIGA beats core context windows, and where it does not\n"]
    for setting in SETTINGS:
        found = _peer_rows(data, setting)
        miga = found.get(PEER_MIGA)
        for label in PEER_CW:
            other = found.get(label)
            if miga is None or other is None:
                lines.append(f"- {setting}, {label}: not measured (the run stopped before this row).")
                continue
            groups: dict[str, list[str]] = {"MIGA better": [], "MIGA worse": [], "within spread": []}
            for k in METRICS:
                c = peer_verdict(miga["per_video"][k], other["per_video"][k], k)
                groups.setdefault(c["verdict"], []).append(f"{SHORT[k]} ({c['diff']:+.4f})" if c["verdict"] != "identical" else SHORT[k])
            text = (f"- {setting}, against {_peer_name(data, label, other)}: MIGA is better on "
                    f"{', '.join(groups['MIGA better']) or 'no metric'}; worse on {', '.join(groups['MIGA worse']) or 'no metric'}; "
                    f"within spread on {', '.join(groups['within spread'] + groups.get('identical', []) + groups.get('n/a', [])) or 'no metric'}")
            if setting == "2 prompts":
                a = [abs(e) if e is not None else None for e in other["switch_error_frames"]]
                b = [abs(e) if e is not None else None for e in miga["switch_error_frames"]]
                c = compare(a, b)
                verdict = {"lower": "closer to", "higher": "further from"}.get(c["verdict"])
                text += (f"; the colour switch landed in {_switch(miga)[0]} MIGA videos and {_switch(other)[0]} of these, and where both "
                         + (f"landed MIGA's is {verdict} the scheduled frame ({c['diff']:+.2f} frames)" if verdict
                            else f"landed the distance to the scheduled frame is {c['verdict']}"))
            tm, to = miga["timing"], other["timing"]
            text += (f". Time per frame {tm['seconds_per_frame'] / to['seconds_per_frame']:.2f}x theirs "
                     f"({miga['videos_per_graph']} videos per graph against {other['videos_per_graph']}), frame evaluations "
                     f"{miga['frame_evals_per_frame'] / other['frame_evals_per_frame']:.2f}x, peak memory "
                     f"{tm['peak_memory_gib']:.3f} against {to['peak_memory_gib']:.3f} GiB.")
            lines.append(text)
    return "\n".join(lines) + "\n"


PEER_SAME = ("prompts", "seeds", "num_frames", "steps", "window_batch", "chain_known", "sweep", "sweep_prompts", "tf32", "tiny",
             "toy_weights", "device")  # what two parts of the peer benchmark must share to make one table


def merge_peer(datas: list[dict]) -> dict:
    """One peer table from the files of its parts (``peer_comfy.py --part core`` and ``--part miga``): their rows together.

    The parts must have run the same videos on the same toy model: equal options in ``PEER_SAME``, ComfyUI version, device,
    and toyworld code (model and weights); each part's code and time stay in its own record (the source lines name both).

    Raises:
        SystemExit: two files that differ in one of these (named), or two files with the same row.
    """
    if len(datas) == 1:
        return datas[0]
    first = datas[0]["record"]

    def key(rec: dict) -> dict:
        return {"options": {k: rec["options"].get(k) for k in PEER_SAME}, "comfyui": rec.get("comfyui"),
                "device": rec["machine"]["device"], "toyworld": rec["code"].get("sha256", {}).get("toyworld"),
                "peer_rows": rec["peer_rows"], "videos": rec["videos"]}

    rows: list[dict] = []
    for d in datas:
        diff = [k for k, v in key(d["record"]).items() if v != key(first)[k]]
        if diff:
            raise SystemExit(f"peer_comfy results {d['record']['options'].get('part')!r} and {first['options'].get('part')!r} cannot "
                             f"make one table: their {', '.join(diff)} differ. Fix: re-run one part with the other's options.")
        twice = {(label, r["setting"]) for r in d["rows"] for label in r["labels"]} & {(label, r["setting"]) for r in rows for label in r["labels"]}
        if twice:
            raise SystemExit(f"peer_comfy results: the rows {sorted(twice)} are in two files. Fix: keep one file per part (--part).")
        rows += d["rows"]
    return {**datas[0], "rows": rows}


def peer_text(data: dict) -> str:
    o = data["record"]["options"]
    videos = o["prompts"] * o["seeds"]
    parts = [f"Setting: {o['prompts']} prompts x {o['seeds']} noise seeds = {videos} videos of {o['num_frames']} frames per row and "
             f"setting, T={o['steps']}, CFG 3, ComfyUI {data['record'].get('comfyui')}, float32"
             f"{' with TF32 matmuls' if o.get('tf32') and data['record']['machine']['device'] != 'cpu' else ''}; "
             f"MIGA/FIFO {o['window_batch']} windows per model call.\n", sweep_table(data)]
    for setting in SETTINGS:
        parts.append(f"**{setting[0].upper()}{setting[1:]}**:\n\n{peer_table(data, setting)}\n")
        verdicts = peer_verdicts(data, setting)
        if verdicts:
            parts.append(f"Verdicts, {setting} (each cell: MIGA minus the row, paired over the {videos} videos, ± two standard errors; "
                         f"`MIGA better`/`MIGA worse` when the difference exceeds them, blinks and jumps counting lower as better):"
                         f"\n\n{verdicts}\n")
    parts.append(peer_closing(data))
    return "\n".join(p for p in parts if p)


ETA_TOLERANCE = 0.25  # issue 8: the ETA shown after 10% of a run within 25% of the real remaining time


def progress_text(data: dict) -> str:
    """The progress benchmark's table and, computed, whether each ETA met the tolerance at 10%."""
    rows, lines = [], []
    for row in data["rows"]:
        flat = {k: v for k, v in row.items() if not isinstance(v, (list, dict))}
        flat["total_windows first/last"] = "/".join(map(str, row["total_windows_first_last"]))
        flat["seconds"] = row["timing"]["seconds"]
        for frac, e in row["timing"]["eta"].items():
            for kind in ("core", "bar"):
                err = e[f"eta_{kind}_error"]
                flat[f"ETA {kind} error at {frac}"] = "n/a" if err is None else f"{100 * err:.1f}%"
        rows.append(flat)
        ten = row["timing"]["eta"].get("10%")
        if ten is None:
            continue
        verdicts = []
        for kind, name in (("core", "the core's `eta_seconds`"), ("bar", "a bar's window/total rate")):
            err = ten[f"eta_{kind}_error"]
            if err is None:
                verdicts.append(f"{name}: not reported")
            else:
                ok = "within" if err <= ETA_TOLERANCE else "NOT within"
                verdicts.append(f"{name}: {ten[f'eta_{kind}_s']:.1f} s vs {ten['real_remaining_s']:.1f} s real, "
                                f"error {100 * err:.1f}%, {ok} {100 * ETA_TOLERANCE:.0f}%")
        moves = "never changed" if not row["total_windows_changed"] else f"changed {row['total_windows_increases']} times"
        lines.append(f"- {row['videos']} video(s) of {row.get('num_frames', data['record']['options']['num_frames'])} frames: at window {ten['window']}/{ten['total_windows']} (first past 10%): "
                     + "; ".join(verdicts) + f". `total_windows` {moves}; `window` "
                     + ("never went back." if row["window_monotone"] else "went backwards."))
    return table(rows) + "\n\n" + "\n".join(lines) + "\n"


# ---------------------------------------------------------------- wan_perf (issue 13)


def _runs(row: dict, status: str = "completed") -> list[dict]:
    return [r for r in row.get("timing", {}).get("runs", []) if r["status"] == status]


def perf_figures(row: dict) -> dict | None:
    """Mean speed figures of a row's completed runs, else of its stopped run (``projected``), else None."""
    done = _runs(row)
    if done:
        keys = ("s_per_pixel_frame", "s_per_latent", "s_per_model_call", "dit_fraction")
        out = {k: sum(r[k] for r in done) / len(done) for k in keys}
        out.update(projected=False, runs=len(done))
    else:
        part = [r for r in _runs(row, "partial") if "projected_s_per_pixel_frame" in r]
        if not part:
            return None
        r = part[0]
        out = {"s_per_pixel_frame": r["projected_s_per_pixel_frame"], "s_per_latent": r["projected_s_per_latent"],
               "s_per_model_call": r["s_per_model_call"], "dit_fraction": r["dit_fraction"], "projected": True, "runs": 1,
               "windows_done": r["windows_done"]}
    runs = done or [r for r in _runs(row, "partial")]
    forwards = [r["dit_forward"] for r in runs if r["dit_forward"].get("n")]
    out["dit_s_per_forward"] = sum(f["mean_s"] for f in forwards) / len(forwards) if forwards else math.nan
    # between windows: a window's DiT time over the interval from one window's start to the next (the run's setup,
    # which a stopped row spreads over its few windows, left out); only where each window was one forward
    steady = [r["dit_forward"]["mean_s"] / r["per_window"]["mean_s"] for r in runs
              if r.get("per_window", {}).get("n", 0) >= 2 and r["dit_forward"].get("n") and r.get("windows_done") == r.get("forwards_done")]
    out["steady_dit_fraction"] = sum(steady) / len(steady) if steady else None
    gaps = [r["device_gap"] for r in runs if r.get("device_gap", {}).get("n")]  # end of a forward to the next's start, on the GPU
    out["device_gap_ms"] = (1000 * gaps[0]["median_s"], 1000 * max(g["max_s"] for g in gaps)) if gaps else None
    if done:
        out["overhead_ms_per_call"] = 1000 * sum(r["wall_s"] - r["dit_s"] for r in runs) / max(sum(r["dit_forwards"] for r in runs), 1)
    else:  # over the span the share was measured on (older files: to the last finished window)
        r = runs[0]
        span = r.get("to_last_forward_end_s", r["to_last_window_s"])
        out["overhead_ms_per_call"] = 1000 * span * (1 - r["dit_fraction"]) / max(r["forwards_done"], 1)
    return out


DIT_SHARE_TARGET, DIT_SHARE_SIZE = 0.97, (832, 480)  # issue 13: time inside the model >= 97% at 832x480, every profile


def dit_share_target(rows: list[dict]) -> list[str]:
    """Issue 13's DiT-share target for the profiles at the paper's steps (group paper_steps) at 832x480, on both shares: of the wall time of the
    span measured (a stopped row spreads the run's setup over its few windows) and between windows (what a full run's
    share tends to; :func:`perf_figures`)."""
    figs = [(r["name"], perf_figures(r)) for r in rows if r.get("group") == "paper_steps" and (r["width"], r["height"]) == DIT_SHARE_SIZE]
    figs = [(n, f) for n, f in figs if f is not None]
    if not figs:
        return []
    out = []
    for key, what in (("dit_fraction", "of the wall time measured"), ("steady_dit_fraction", "between windows")):
        vals = [(n, f[key]) for n, f in figs if f.get(key) is not None]
        if not vals:
            continue
        low = [n for n, v in vals if v < DIT_SHARE_TARGET]
        lo, hi = min(v for _, v in vals), max(v for _, v in vals)
        verdict = ("met by every row" if not low and len(vals) == len(figs)
                   else f"not met by {', '.join(f'`{n}`' for n in low)}" if low else f"met by the {len(vals)} rows that have it")
        out.append(f"- Target: >= {100 * DIT_SHARE_TARGET:.0f}% inside the DiT at {DIT_SHARE_SIZE[0]}x{DIT_SHARE_SIZE[1]}, {what}: "
                   f"{100 * lo:.1f}-{100 * hi:.1f}%, {verdict}.")
    return out


def repeat_noise(rows: list[dict]) -> tuple[float, str] | None:
    """The largest relative spread (max - min) / mean of the wall time of repeated identical runs, and the row it is from."""
    spreads = [(r["timing"]["repeat_spread"], r["name"]) for r in rows if "repeat_spread" in r.get("timing", {})]
    return max(spreads) if spreads else None


def ratio_verdict(ratio: float, noise: tuple[float, str] | None) -> str:
    """A ratio of two times counts as a difference only when it is further from 1 than twice the repeat noise."""
    if noise is None:
        return "no verdict (one run per row: run-to-run noise unmeasured)"
    if abs(ratio - 1) > 2 * noise[0]:
        return "a difference (beyond twice the repeat noise)"
    return "within twice the repeat noise: no verdict"


def _num(v, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _rss(row: dict) -> str:
    t = row.get("timing", {})
    return f"{t['host_rss_peak_gib']} (+{t.get('host_rss_growth_gib', 'n/a')})" if "host_rss_peak_gib" in t else ""


def wan_perf_table(data: dict) -> str:
    rows = []
    for r in data["rows"]:
        f = perf_figures(r)
        status = r["status"] + (f" ({r['skipped']})" if r["status"] == "skipped" else "")
        if f is not None and f["projected"]:
            status += f" after {f['windows_done']} of {r['planned_calls']} windows"
        star = "*" if f is not None and f["projected"] else ""
        measured = r.get("model_calls_per_latent")
        if measured is None and r.get("dit_forwards") is not None and r["kind"] == "context_windows":
            measured = round(r["dit_forwards"] / r["num_latents"], 4)
        rows.append({
            "row": r["name"], "size": f"{r['width']}x{r['height']}", "frames": r["num_pixel_frames"], "T": r["steps"], "cfg": r["cfg"],
            "status": status,
            "calls/latent planned": r.get("planned_calls_per_latent", ""), "measured": "" if measured is None else measured,
            "long-video calls/latent": r.get("marginal_calls_per_latent", ""),
            "s/call": _num(f and f["s_per_model_call"]), "s/frame": _num(f and f["s_per_pixel_frame"]) + star if f else "",
            "s/latent": _num(f and f["s_per_latent"]) + star if f else "",
            "DiT share": f"{100 * f['dit_fraction']:.1f}%" if f else "",
            "DiT share between windows": f"{100 * f['steady_dit_fraction']:.1f}%" if f and f["steady_dit_fraction"] else "",
            "DiT s/forward": _num(f and f["dit_s_per_forward"], 4),
            "peak VRAM GiB": r.get("peak_vram_gib", ""), "host RSS GiB (growth)": _rss(r),
        })
    return table(rows)


def memory_by_length(rows: list[dict]) -> list[str]:
    """The memory rows' verdict: peak VRAM of the longest against the shortest (issue 13's target: at most 1.01x), and
    host RSS per row."""
    mem = sorted((r for r in rows if r.get("group") == "memory" and r["status"] in ("completed", "partial")),
                 key=lambda r: r["num_pixel_frames"])
    if len(mem) < 2:
        return []
    parts = [f"{r['num_pixel_frames']} frames {r.get('peak_vram_gib', 'n/a')} GiB"
             + (f" (stopped after {r['timing']['runs'][0].get('windows_done')} windows)" if r["status"] == "partial" else "")
             for r in mem]
    rss = "; ".join(f"{r['num_pixel_frames']} frames {r['timing'].get('host_rss_peak_gib', 'n/a')} GiB" for r in mem)
    line = f"- Peak VRAM by video length ({mem[0]['width']}x{mem[0]['height']}, T={mem[0]['steps']}, CFG {mem[0]['cfg']}): " + "; ".join(parts)
    short, long = mem[0].get("peak_vram_gib"), mem[-1].get("peak_vram_gib")
    if short and long:
        ratio = long / short
        line += (f". {mem[-1]['num_pixel_frames']} against {mem[0]['num_pixel_frames']} frames: {ratio:.3f}x, "
                 + ("within" if ratio <= 1.01 else "ABOVE") + " the 1.01x target")
    return [line + f". Host RSS peak (the whole process): {rss}."]


def long_video_ratio(row: dict, ref: dict) -> float:
    """``row``'s time per frame of a long video over ``ref``'s: the plans' calls per further latent (fixed costs gone)
    times each row's measured seconds per model call."""
    return (row["marginal_calls_per_latent"] * perf_figures(row)["s_per_model_call"]
            / (ref["marginal_calls_per_latent"] * perf_figures(ref)["s_per_model_call"]))


def batch_scaling(rows: list[dict]) -> list[str]:
    """Whether one window saturates the GPU (issue 13: batch windows where it does not): per size, the DiT's seconds per
    forward of a CFG batch of 2 (CFG != 1) against a batch of 1 (CFG 1), MIGA/FIFO rows only. 2x: saturated, batching
    windows saves nothing; near 1x: the GPU had room for a second window."""
    out = []
    for w, h in sorted({(r["width"], r["height"]) for r in rows}):
        def mean_forward(two: bool) -> float | None:
            figs = [perf_figures(r)["dit_s_per_forward"] for r in rows if (r["width"], r["height"]) == (w, h) and perf_figures(r)
                    and r["kind"] in ("node", "official") and (r["cfg"] != 1.0) == two]
            return sum(figs) / len(figs) if figs else None

        one, two = mean_forward(False), mean_forward(True)
        if one and two:
            ratio = two / one
            out.append(f"- One window at {w}x{h}: a DiT forward of 2 rows (CFG batch) takes {ratio:.2f}x one of 1 row ({two:.4f} "
                       f"against {one:.4f} s), so " + ("the GPU is saturated by one window: batching windows "
                       f"(`window_batch`) could save at most {100 * (1 - ratio / 2):.0f}% of the model time." if ratio > 1.8 else
                       "a second window nearly fits in the same time: batching windows (`window_batch`) pays here."))
    return out


def against_fifo(rows: list[dict], noise: tuple[float, str] | None) -> list[str]:
    """MIGA's rows against the FIFO row of the same size, length and steps (issue 13: MIGA without DCE at most 1.02x FIFO
    per frame; full MIGA's ratio and R_corr stated; the paper's Tab. A4: 1.007x without DCE, 1.22x full MIGA): per model call, per frame of
    this video (its fixed costs included) and per frame of a long video (the plans' per-latent calls, fixed costs
    gone, times the measured seconds per call)."""
    out = []
    for fifo in (r for r in rows if r.get("mode") == "fifo" and perf_figures(r)):
        ff = perf_figures(fifo)
        for r in rows:
            f = perf_figures(r)
            if r is fifo or f is None or r["kind"] not in ("node", "official") or r.get("mode") == "fifo" or \
                    (r["width"], r["height"], r["num_pixel_frames"], r["steps"]) != (fifo["width"], fifo["height"], fifo["num_pixel_frames"], fifo["steps"]):
                continue
            call = f["s_per_model_call"] / ff["s_per_model_call"]
            frame = f["s_per_pixel_frame"] / ff["s_per_pixel_frame"]
            long = long_video_ratio(r, fifo)
            line = (f"- `{r['name']}` against `{fifo['name']}` ({r['width']}x{r['height']}, T={r['steps']}): per model call {call:.3f}x "
                    f"({ratio_verdict(call, noise)}); per frame of this {r['num_pixel_frames']}-frame video {frame:.2f}x "
                    f"({r['planned_calls_per_latent']} against {fifo['planned_calls_per_latent']} planned calls per latent, fixed costs "
                    f"included); per frame of a long video {long:.3f}x ({r['marginal_calls_per_latent']} against "
                    f"{fifo['marginal_calls_per_latent']} calls per further latent, self-reflection's searches excluded)")
            if r["name"].startswith("miga no DCE"):
                line += ", " + ("within" if long <= 1.02 else "ABOVE") + " the 1.02x target for long videos (Tab. A4: 7.53 / 7.48 s = 1.007x)"
            if r.get("guidance"):
                rc = r.get("reflection") if isinstance(r.get("reflection"), dict) else None
                line += (f"; R_corr {rc['r_corr']} (random weights: searches are not those of a trained model)" if rc and "r_corr" in rc
                         else "; R_corr not measured (the row stopped before its self-reflection checks)") + \
                        " (Tab. A4: full MIGA 9.16 / 7.48 s = 1.22x FIFO per frame, its searches included)"
            out.append(line + ".")
    return out


def wan_perf_findings(data: dict) -> str:
    """Verdicts computed from the rows: call counts against the plan, MIGA against core context windows, DiT share,
    few-step configurations, torch.compile."""
    rows = data["rows"]
    by = {r["name"]: r for r in rows}
    noise = repeat_noise(rows)
    out = ["### Verdicts\n"]
    if noise is None:
        out.append("- Each row ran once: run-to-run noise is unmeasured, so no verdict on small differences is possible; "
                   "ratios below are as measured.")
    else:
        out.append(f"- Repeat noise: {100 * noise[0]:.1f}% (spread of the wall time of identical runs of `{noise[1]}`). A ratio "
                   f"counts as a difference only when it is further than {200 * noise[0]:.1f}% from 1.")
    for r in rows:
        if r["status"] != "completed" or "model_calls" not in r:
            continue
        searches = r.get("reflection", {}).get("n_eval", 0) * r.get("search_windows_per_search", 0)
        want = r["planned_calls"] + searches
        ok = "equal" if r["model_calls"] == want else "DIFFERENT"
        out.append(f"- `{r['name']}`: {r['model_calls']} measured model calls, {r['planned_calls']} planned + {searches} "
                   f"self-reflection search windows = {want}: {ok}; {r.get('dit_forwards', 'n/a')} DiT forwards.")
    peers = [r for r in rows if r["kind"] == "context_windows" and perf_figures(r) and not perf_figures(r)["projected"]]
    for r in rows:
        f = perf_figures(r)
        if r["kind"] not in ("node", "official") or f is None:
            continue
        for peer in peers:
            if (r["width"], r["height"], r["num_pixel_frames"]) != (peer["width"], peer["height"], peer["num_pixel_frames"]):
                continue  # per frame, only the same video size and length compare
            pf = perf_figures(peer)
            ratio = f["s_per_pixel_frame"] / pf["s_per_pixel_frame"]
            long = long_video_ratio(r, peer)
            kind = "projected" if f["projected"] else "measured"
            out.append(f"- `{r['name']}` ({r['width']}x{r['height']}, {r['num_pixel_frames']} frames) time per frame is {ratio:.2f}x "
                       f"core context windows at {peer['steps']} steps ({kind}): {ratio_verdict(ratio, noise)}. For long videos "
                       f"(the plans' per-latent calls, fixed costs gone) {long:.2f}x.")
    out.extend(against_fifo(rows, noise))
    out.extend(memory_by_length(rows))
    out.extend(batch_scaling(rows))
    def gap(f: dict) -> str:
        return "" if f["device_gap_ms"] is None else \
            "; on the GPU from one forward's end to the next's start: median {:.1f} ms, longest {:.1f} ms".format(*f["device_gap_ms"])

    shares = [f"`{r['name']}` {100 * f['dit_fraction']:.1f}% ({f['overhead_ms_per_call']:.1f} ms outside the DiT per call{gap(f)})"
              for r in rows if (f := perf_figures(r)) is not None]
    if shares:
        out.append("- Share of wall time inside the DiT forward: " + "; ".join(shares) + ".")
    out.extend(dit_share_target(rows))
    for r in rows:
        space = r.get("plan_space")
        if not space:
            continue
        parts = []
        for label, key in (("with guidance and self-reflection", "with_dce"), ("without", "without_dce")):
            ok = [f"zigzag_width {w}: unified_steps {v['accepted_unified_steps']}" for w, v in space[key].items() if v["accepted_unified_steps"]]
            parts.append(f"{label}: " + ("; ".join(ok) or "none"))
        own = space["with_dce"].get(str(r.get("zigzag_width")), {}).get("refused_next")
        narrow = next((v["refused_next"] for v in space["with_dce"].values() if not v["accepted_unified_steps"]), None)
        line = (f"- T={r['steps']} (the row: zigzag_width {r.get('zigzag_width')}, unified_steps {r.get('unified_steps')}): plan_run "
                "accepts (window 21) " + " / ".join(parts) + ".")
        if own:
            line += f" Why unified_steps stops there at zigzag_width {r.get('zigzag_width')}: \"{own}\""
        if narrow:
            line += f" Why narrower widths fail: \"{narrow}\""
        out.append(line)
    for r in rows:
        if r["status"] == "refused":
            out.append(f"- `{r['name']}` refused by plan_run: \"{r['refusal']}\"")
    for r in rows:
        if r["kind"] != "compile" or r["status"] in ("skipped", "refused"):
            continue
        if r["status"] == "failed":
            out.append(f"- `{r['name']}`: the MigaSampler path FAILED under TorchCompileModel: {r.get('error')}")
            continue
        per_run = r.get("dynamo_per_run", [])
        frames = [d.get("frames_compiled") for d in per_run]
        line = f"- `{r['name']}`: {r['status']}; dynamo compiled frames per run {frames} (the first run compiles; later ones recompile " \
               f"{frames[1] if len(frames) > 1 else 'n/a'} times), graph breaks {[d.get('graph_breaks') for d in per_run]}"
        reasons = per_run[0].get("graph_break_reasons") if per_run else None
        if reasons:
            line += " (most frequent: " + "; ".join(f"`{x}`" for x in reasons[:3]) + ")"
        runs = r["timing"]["runs"]
        ref = by.get(r.get("ref") or "")
        rf = perf_figures(ref) if ref else None
        if len(runs) > 1 and runs[1]["status"] == "completed" and rf and not rf["projected"]:
            speed = rf["s_per_model_call"] / runs[1]["s_per_model_call"]
            line += f"; warm compiled run {speed:.2f}x the speed of eager `{ref['name']}`: {ratio_verdict(speed, noise)}"
            line += f"; first run (with compilation) {runs[0]['wall_s']:.1f} s against {rf['s_per_model_call'] * runs[0]['dit_forwards']:.1f} s eager"
        if "max_abs_diff_vs_ref" in r:
            line += f"; max |compiled - eager| {r['max_abs_diff_vs_ref']} (eager max |x| {r['max_abs_ref']})"
        out.append(line + ".")
    for r in rows:  # the executor's pipelining against one model call at a time, same run otherwise
        ref = by.get(r.get("ref") or "") if r.get("pipelined") is False else None
        f, rf = perf_figures(r), perf_figures(ref) if ref else None
        if f is None or rf is None or f["projected"] or rf["projected"]:
            continue
        ratio = rf["s_per_pixel_frame"] / f["s_per_pixel_frame"]
        same = r.get("max_abs_diff_vs_ref")
        out.append(f"- Pipelined calls (model call k+1 queued before the host steps window k): `{ref['name']}` {rf['overhead_ms_per_call']:.1f} ms "
                   f"outside the DiT per call ({100 * rf['dit_fraction']:.1f}% inside), against {f['overhead_ms_per_call']:.1f} ms "
                   f"({100 * f['dit_fraction']:.1f}%) one call at a time; time per frame {ratio:.2f}x: {ratio_verdict(ratio, noise)}; "
                   + ("latents bit-identical." if same == 0 else f"latents differ by up to {same} (max |x| {r.get('max_abs_ref')}).")
                   )
    skipped = [f"`{r['name']}` ({r['skipped']})" for r in rows if r["status"] == "skipped"]
    if skipped:
        out.append("- Not measured for lack of time: " + "; ".join(skipped) + ".")
    return "\n".join(out) + "\n"


def wan_perf_text(data: dict) -> str:
    """The wan_perf section: its setting, table and verdicts, all from the JSON."""
    rec = data["record"]
    setting = (f"Setting: {rec.get('model')}, ComfyUI {rec.get('comfyui')}, {rec.get('text_tokens')} text tokens, seed "
               f"{rec['options'].get('seed')}; budget {rec['options'].get('budget_s')} s; DiT timer: {rec.get('dit_timer')}.\n")
    return setting + "\n" + wan_perf_table(data) + "\n\n" + wan_perf_findings(data)


GPU_BEGIN, GPU_END = "<!-- gpu-numbers -->", "<!-- /gpu-numbers -->"


def gpu_numbers() -> str:
    """The README's VRAM/time lines, from benchmarks/results/wan_node_cuda.json (or a note that it is absent)."""
    path = RESULTS / "wan_node_cuda.json"
    if not path.exists():
        return (f"{GPU_BEGIN}\n- No GPU measurement of the node at this commit: `benchmarks/wan_node_gpu.py` writes it "
                f"(see BENCHMARKS.md).\n{GPU_END}")
    data = load(path)
    full, long = data["rows"][0], data["rows"][1]
    machine = data["record"]["machine"]
    return (f"{GPU_BEGIN}\n"
            f"- Peak VRAM {full.get('peak_vram_gib', 'n/a')} GiB ({data['record']['weights_gib']} GiB of it {machine.get('dtype', '')} weights) "
            f"for {full['num_pixel_frames']} frames, and {long.get('peak_vram_gib', 'n/a')} GiB in a {long['num_pixel_frames']}-frame run "
            f"(stopped after {long['model_calls']} model calls).\n"
            f"- {full['timing']['s_per_model_call']} s per model call (CFG batch of 2) on one {machine['device']}; "
            f"{full['model_calls_per_latent']} calls per latent at {full['steps']} steps, i.e. {full['timing']['s_per_pixel_frame']} s "
            "per frame.\n"
            "- From `benchmarks/wan_node_gpu.py` (random weights of the real architecture); see BENCHMARKS.md.\n"
            f"{GPU_END}")


PERF_BEGIN, PERF_END = "<!-- wan-perf-numbers -->", "<!-- /wan-perf-numbers -->"


def wan_perf_numbers() -> str:
    """The README's cost lines, from benchmarks/results/wan_perf_cuda.json (or a note that it is absent)."""
    path = RESULTS / "wan_perf_cuda.json"
    if not path.exists():
        return f"{PERF_BEGIN}\n- Not measured at this commit: `benchmarks/wan_perf_gpu.py` writes it (see BENCHMARKS.md).\n{PERF_END}"
    data = load(path)
    rows = [r for r in data["rows"] if perf_figures(r)]
    lines = []
    shares = {}
    for r in rows:
        shares.setdefault((r["width"], r["height"], r["kind"] == "context_windows"), []).append(perf_figures(r))
    for (w, h, core), figs in sorted(shares.items()):
        lo, hi = min(f["dit_fraction"] for f in figs), max(f["dit_fraction"] for f in figs)
        ms = sum(f["overhead_ms_per_call"] for f in figs) / len(figs)
        who = "core context windows" if core else "MIGA/FIFO rows"
        lines.append(f"{who} at {w}x{h}: {100 * lo:.1f}-{100 * hi:.1f}% of wall time inside the DiT forward, {ms:.0f} ms outside it per call")
    out = [f"- Time inside the model ({data['record']['machine']['device']}): " + "; ".join(lines) + "."]
    peers = [r for r in rows if r["kind"] == "context_windows" and not perf_figures(r)["projected"]]
    long = []
    for r in rows:
        if r["kind"] != "node" or r.get("mode") == "fifo" or not r.get("guidance") or r.get("pipelined") is False:
            continue
        for peer in peers:
            if (r["width"], r["height"], r["num_pixel_frames"]) == (peer["width"], peer["height"], peer["num_pixel_frames"]):
                x = long_video_ratio(r, peer)
                long.append(f"T={r['steps']} CFG {r['cfg']:g}: {x:.2f}x core at {peer['steps']} steps CFG {peer['cfg']:g}")
    if long:
        out.append("- Full MIGA per frame of a long video against core context windows + KSampler: " + "; ".join(long) + ".")
    mem = memory_by_length(data["rows"])
    if mem:
        out.append(mem[0].split(". Host RSS")[0] + ".")
    calls_path = RESULTS / "official_calls_cpu.json"
    if calls_path.exists():
        rows_c = load(calls_path)["rows"]
        pairs = [(r, next(o for o in rows_c if o["record"] == r["record"] and o["side"] == "ours, wan21-official"))
                 for r in rows_c if r["side"] == "released code"]
        calls = [r["dit_calls_per_latent"] / o["dit_calls_per_latent"] for r, o in pairs]
        wins = [r["windows_per_latent"] / o["windows_per_latent"] for r, o in pairs]
        out.append(f"- The authors' released loop, at its own settings ({len(pairs)} recorded runs, `benchmarks/official_calls.py`), makes "
                   f"{min(calls):.2f}-{max(calls):.2f}x the DiT calls per output latent of our `wan21-official` profile (it runs CFG "
                   f"as two batch-1 calls) and {min(wins):.2f}-{max(wins):.2f}x its windows (it also computes candidate windows it "
                   "throws away).")
    out.append("- From `benchmarks/wan_perf_gpu.py` (random weights of the real architecture); BENCHMARKS.md has every row and verdict.")
    return f"{PERF_BEGIN}\n" + "\n".join(out) + f"\n{PERF_END}"


def _with_block(readme: str, begin: str, end: str, block: str) -> str:
    head, sep, rest = readme.partition(begin)
    if not sep:
        raise SystemExit(f"README.md lacks the {begin} marker")
    _, sep_end, tail = rest.partition(end)
    return head + block + (tail if sep_end else rest)


PEER_BEGIN, PEER_END = "<!-- peer-numbers -->", "<!-- /peer-numbers -->"


def peer_numbers() -> str:
    """The README's comparison with core context windows: the closing lines of BENCHMARKS.md's peer section (the same
    function, :func:`peer_closing`), from the peer_comfy files in benchmarks/results/ (or a note that they are absent)."""
    peers = [d for d in map(load, sorted(RESULTS.glob("*.json"))) if d["benchmark"] == "peer_comfy"]
    if not peers:
        return f"{PEER_BEGIN}\n- Not measured at this commit: `benchmarks/peer_comfy.py` writes it (see BENCHMARKS.md).\n{PEER_END}"
    data = merge_peer(peers)
    o = data["record"]["options"]
    head = (f"Measured on the toy model inside ComfyUI ({o['prompts'] * o['seeds']} videos of {o['num_frames']} frames per row, "
            f"{data['record']['machine']['device']}; `benchmarks/peer_comfy.py`, BENCHMARKS.md has every row, metric and verdict):")
    lines = [line for line in peer_closing(data).splitlines() if line.startswith("- ")]
    return f"{PEER_BEGIN}\n{head}\n\n" + "\n".join(lines) + f"\n{PEER_END}"


DEMO_BEGIN, DEMO_END = "<!-- toy-demo-numbers -->", "<!-- /toy-demo-numbers -->"


def toy_demo_numbers() -> str:
    """The README's toy demo lines, from benchmarks/results/: per toy_demo_cpu run (longest first) each variant's seconds,
    the identity accuracy of the two prompts' segments and, where measured, how late the colour switch landed and the
    frames without the object; then the toy model's own clips per toy_clips run (by steps). A note when none exist."""
    found = [(p, load(p)) for p in sorted(RESULTS.glob("*.json"))]
    demos = [(p, d) for p, d in found if d["benchmark"] == "toy_demo_cpu"]
    clips = [d for _, d in found if d["benchmark"] == "toy_clips"]
    if not demos:
        return f"{DEMO_BEGIN}\n- Not measured at this commit: `benchmarks/toy_demo_cpu.py` writes it (see BENCHMARKS.md).\n{DEMO_END}"
    lines = []
    for path, d in sorted(demos, key=lambda pd: -pd[1]["record"]["options"]["frames"]):
        o = d["record"]["options"]
        variants = []
        for r in d["rows"]:
            late = "" if "switch_error_frames" not in r else f", {_switch_text(r['switch_error_frames'])}, {r['absent_frames']} absent frames"
            variants.append(f"{'as shipped' if r['variant'] == 'shipped' else r['variant']} {r['timing']['seconds']:.0f} s, identity "
                            f"{r['identity_first']:.2f} / {r['identity_second']:.2f}{late}")
        lines.append(f"- {o['frames']} frames, {o['threads']} CPU threads (`{path.name}`): " + "; ".join(variants) + ".")
    for d in sorted(clips, key=lambda d: _clip_steps(d["record"])):
        r, rec = d["rows"][0], d["record"]
        blinking = sum(1 for b in r["blink_count"] if b)
        lines.append(f"- The toy model's own 16-frame clips at {_clip_steps(rec)} steps ({rec['machine']['device']}): "
                     f"identity {statistics.fmean(r['identity_accuracy']):.4f}; {blinking} of {len(r['blink_count'])} clips lose "
                     "the object for some frames.")
    return f"{DEMO_BEGIN}\n" + "\n".join(lines) + f"\n{DEMO_END}"


def _switch_text(error: int | None) -> str:
    """How a prompt switch landed: None (never showed), on time, or so many frames late/early."""
    if error is None:
        return "the switch never showed"
    return "the switch on time" if error == 0 else f"the switch {abs(error)} frames {'late' if error > 0 else 'early'}"


def readme_with_numbers(readme: str) -> str:
    for begin, end, block in ((GPU_BEGIN, GPU_END, gpu_numbers), (PERF_BEGIN, PERF_END, wan_perf_numbers),
                              (PEER_BEGIN, PEER_END, peer_numbers), (DEMO_BEGIN, DEMO_END, toy_demo_numbers)):
        readme = _with_block(readme, begin, end, block())
    return readme


def verify_code() -> list[str]:
    """Records whose code sha256 differs from this checkout's (they were measured on other code)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.record import tree_sha256

    stale = []
    for path in sorted(RESULTS.glob("*.json")):
        recorded = load(path)["record"]["code"]["sha256"]
        now = tree_sha256(recorded)
        changed = [k for k in recorded if recorded[k] != now[k]]
        if changed:
            stale.append(f"{path.name}: {', '.join(changed)} changed since it ran")
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if BENCHMARKS.md or the README's block is stale")
    ap.add_argument("--verify-code", action="store_true",
                    help="exit 1 if any result was measured on code other than this checkout's (sha256 of its code folders)")
    args = ap.parse_args(argv)
    if args.verify_code:
        stale = verify_code()
        print("\n".join(stale) or "every result was measured on this checkout's code", file=sys.stderr if stale else sys.stdout)
        return 1 if stale else 0
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
