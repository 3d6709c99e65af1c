"""Regenerate BENCHMARKS.md (and the README's GPU numbers) from the JSON files in benchmarks/results/.

    python benchmarks/report.py            # rewrite BENCHMARKS.md and the README's gpu-numbers block
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
        "Contact sheet (rows: clips, columns: frames): ![toy clips](docs/toy_clips.png)\n"
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
    "toy_long_rss": (
        "## Long videos in bounded host memory (streamed run, CPU)\n\n"
        "`miga_core.run(..., sink=...)` keeps the stage-1 outputs and the unified stage's latents in spill files and hands the\n"
        "finished latents, a chunk at a time, to an H.264 MP4 writer (`nodes/video_file.py`). Each length runs in a fresh\n"
        "process; peak RSS is that process's `ru_maxrss` (`os.wait4`), frames written are counted by decoding the MP4. The\n"
        "model is a small random ToyDiT and few steps (the record's options): memory, not quality, is measured. `in_memory`\n"
        "rows (if present) are the same runs without a sink, as a control that the measure sees a run holding the video.\n"
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
        row["s/frame"] = run["timing"]["seconds_per_frame"]
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
    for path, data in datas:
        parts.append(INTRO.get(data["benchmark"], f"## {data['benchmark']}\n"))
        parts.append(source_line(path, data))
        if data["benchmark"] == "toy_quality":
            o = data["record"]["options"]
            parts.append(f"Setting: {o['prompts']} prompts x {o['seeds']} noise seeds = {o['prompts'] * o['seeds']} videos of "
                         f"{o['num_frames']} frames, T={o['steps']}, {o['window_batch']} windows per model call.\n")
            parts.append(toy_table(data) + "\n")
            parts.append(findings(data))
        elif data["benchmark"] == "toy_long_rss":
            parts.append(rss_text(data))
        elif data["benchmark"] == "progress_eta":
            o = data["record"]["options"]
            parts.append(f"Setting: {o['num_frames']} frames, T={o['steps']}, {o['window_batch']} windows per model call.\n")
            parts.append(progress_text(data))
        else:
            parts.append(table([flat_row(r) for r in data["rows"]]) + "\n")
    return "\n".join(parts)


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


def readme_with_numbers(readme: str) -> str:
    head, sep, rest = readme.partition(GPU_BEGIN)
    if not sep:
        raise SystemExit(f"README.md lacks the {GPU_BEGIN} marker")
    _, sep_end, tail = rest.partition(GPU_END)
    return head + gpu_numbers() + (tail if sep_end else rest)


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
