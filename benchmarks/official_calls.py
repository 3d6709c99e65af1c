"""Model calls per output latent: the authors' released Wan loop against our profiles, at the records' settings (issue 13).

    python benchmarks/official_calls.py            # benchmarks/results/official_calls_cpu.json (a few seconds, no GPU)

The released loop's cost comes from its own records (``tests/fixtures/official_wan/``, made by running its
``generate_by_miga`` outside the project with a stand-in model; docs/official_equivalence.md): every model window it
ran, by phase, and its DiT calls (it runs CFG as two batch-1 calls, cond and uncond, per window). Ours:

- ``wan21-official``: the plan's windows per stage (``plan_run``), plus the self-reflection candidate windows the
  record ran minus those whose region lies in the fixed guide (the release computes and discards them, REFERENCE
  A1.7; we skip them). ``tests/test_official_profile.py`` holds our run of these records to these very windows,
  pass by pass, so these counts are measured, not estimated. One DiT call per window (the CFG batch of 2).
- ``wan21`` (the nodes' default) and ``wan21-paper``: the plan's windows at the same T and output length, with the
  initial clip given as in the records; self-reflection searches depend on the video, so they are given as the
  plan's windows per fired check and the number of checks (the most a run can add).

The initial clip's windows (the release samples its own 21-latent clip first) are shown apart and left out of the
per-latent figures of both sides. Time: a DiT call of 2 rows costs 1.91x one of 1 row at 416x240 on the H200
(``wan_perf_cuda.json``), so per window the release's two batch-1 calls cost about what our one call of 2 rows does;
its windows per latent are the fair comparison of time, its DiT calls per latent the comparison of launches.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import sys
import time
from collections import Counter

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from miga_core import plan_run, preset  # noqa: E402

SCRIPT = "benchmarks/official_calls.py"
RECORDS = ROOT / "tests" / "fixtures" / "official_wan"
PHASES = ("init", "candidate", "stage1", "stage2", "refine")
OURS = {"init": "init", "zigzag": "stage1", "unified": "stage2", "refine": "refine"}


def released(name: str) -> dict:
    """The released loop's windows by phase, DiT calls and output length, from its record."""
    d = RECORDS / name
    settings = json.loads((d / "settings.json").read_text())
    windows = json.loads(gzip.decompress((d / "trace.json.gz").read_bytes()))["windows"]
    return {"settings": settings, "windows": windows, "by_phase": Counter(w["phase"] for w in windows)}


def profile_row(name: str, rec: dict) -> dict:
    """Our windows for profile ``name`` at the record's T and output length (initial clip given)."""
    s = rec["settings"]
    cfg, guidance, reflection = preset(name)
    N = s["lengths"]["final"]
    plan = plan_run(cfg, s["T"], N, guidance=guidance, reflection=reflection if s["reflection"] else None, has_initial_clip=True)
    by_phase = {OURS[k]: v for k, v in plan.calls.items() if k in OURS}
    row = {"side": f"ours, {name}", "windows_by_phase": by_phase, "checks": plan.num_checks, "windows_per_fired_check": plan.search_windows}
    if name == "wan21-official":  # the record's searches, without the windows the release throws away (A1.7)
        guide = plan.num_guide or 0
        kept = [w for w in rec["windows"] if w["phase"] == "candidate" and w["start"] + w["updated"] > guide]
        row["windows_by_phase"]["candidate"] = len(kept)
        row["fired_checks"] = s["counters"]["fired"]
    windows = sum(row["windows_by_phase"].values())
    row.update(windows=windows, dit_calls=windows, windows_per_latent=round(windows / N, 4), dit_calls_per_latent=round(windows / N, 4))
    return row


def rows_of(name: str) -> list[dict]:
    rec = released(name)
    s = rec["settings"]
    N = s["lengths"]["final"]
    phases = {p: rec["by_phase"].get(p, 0) for p in PHASES}
    windows = sum(phases.values())
    calls = s["model_calls"]["cond"] + s["model_calls"]["uncond"]
    clip = rec["by_phase"].get("initial_clip", 0)
    head = {"record": name, "steps": s["T"], "output_latents": N, "reflection": s["reflection"]}
    off = {**head, "side": "released code", "windows_by_phase": phases, "initial_clip_windows": clip, "windows": windows,
           "dit_calls": calls - 2 * clip, "windows_per_latent": round(windows / N, 4),
           "dit_calls_per_latent": round((calls - 2 * clip) / N, 4), "fired_checks": s["counters"]["fired"]}
    return [off] + [{**head, **profile_row(p, rec)} for p in ("wan21-official", "wan21", "wan21-paper")]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/official_calls_cpu.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    head = record.header(SCRIPT, {}, "cpu", code=("miga_core", "tests/fixtures/official_wan"), argv=argv)
    rows = [r for name in sorted(p.name for p in RECORDS.iterdir() if p.is_dir()) for r in rows_of(name)]
    record.write(record.resolve_out(args.out), "official_calls", head, rows, {"date": record.now(), "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
