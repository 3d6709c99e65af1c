"""The record every benchmark script writes: what ran, on which code and machine, and when.

A benchmark JSON is ``{"benchmark", "record", "rows", "timing"}``:

- ``record``: written here, never by hand: the script, its command line, every option (``vars(args)``),
  the code (the commit given in the ``MIGA_COMMIT`` environment variable, else git commit and dirty
  flag when a git checkout is present, plus a sha256 of each code folder so that records from a copy
  without ``.git`` can still be compared) and the machine (device name, torch, python, dtype).
- ``rows``: results; every value that depends on the machine's speed sits in a row's ``timing`` dict.
- ``timing``: the date and the whole run's seconds.

So a re-run with the same options on the same code and device changes only ``timing`` fields
(the acceptance rule of issue 8); :func:`strip_timing` drops them for comparisons.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]

# the code a toy benchmark's numbers depend on (report.py and the docs are not in it)
TOY_CODE = ("miga_core", "toyworld", "benchmarks/record.py")


def device_name(device: str | torch.device) -> str:
    """``torch.cuda.get_device_name`` for a CUDA device, else the CPU's name (``platform.processor()`` or "cpu")."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def deterministic(device: str | torch.device) -> None:
    """Same seed, same numbers on CUDA: deterministic cuBLAS workspace and kernels (warn where none exists).

    Call before the first CUDA operation (cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` when it starts).
    """
    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def tree_sha256(paths: Iterable[str]) -> dict[str, str]:
    """sha256 per path (a file, or a folder's ``*.py`` and ``*.safetensors`` files in sorted order), relative to the repo root."""
    out = {}
    for rel in paths:
        p = ROOT / rel
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix in (".py", ".safetensors") and "__pycache__" not in f.parts)
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
        out[rel] = h.hexdigest()[:16]
    return out


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout; ``($MIGA_COMMIT, None)`` when that is set (a copy whose ``.git`` may be stale,
    as on the device machine), and (None, None) where git or ``.git`` is missing."""
    if os.environ.get("MIGA_COMMIT"):
        return os.environ["MIGA_COMMIT"], None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    # results and the generated docs do not count as code changes
    dirty = [line for line in status.splitlines() if not line[3:].startswith(("benchmarks/results/", "BENCHMARKS.md", "README.md"))]
    return commit, bool(dirty)


def header(script: str, options: dict, device: str | torch.device, *, code: Sequence[str] = TOY_CODE,
           dtype: torch.dtype | None = None, argv: Sequence[str] | None = None) -> dict:
    """The ``record`` block: script, command line, options, code identity and machine (no timing)."""
    commit, dirty = git_state()
    argv = sys.argv[1:] if argv is None else list(argv)
    return {
        "script": script,
        "command": " ".join(["python", script, *map(shlex.quote, argv)]),
        "options": {k: v for k, v in sorted(options.items())},
        "code": {"commit": commit, "dirty": dirty, "sha256": tree_sha256([*code, script])},
        "machine": {"device": device_name(device), "torch": torch.__version__, "python": platform.python_version(),
                    **({"dtype": str(dtype).removeprefix("torch.")} if dtype is not None else {})},
    }


def now() -> str:
    """UTC date and time of the run, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def dumps(data: dict) -> str:
    """JSON with one field per line, except lists of numbers/strings, which stay on one line (short diffs)."""

    def flat(value) -> bool:
        return isinstance(value, list) and all(v is None or isinstance(v, (int, float, str, bool)) for v in value)

    def emit(value, indent: int) -> str:
        pad, inner = " " * indent, " " * (indent + 1)
        if isinstance(value, dict) and value:
            items = [f"{inner}{json.dumps(k)}: {emit(v, indent + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, list) and value and not flat(value):
            return "[\n" + ",\n".join(inner + emit(v, indent + 1) for v in value) + "\n" + pad + "]"
        return json.dumps(value, ensure_ascii=False)

    return emit(data, 0) + "\n"


def write(path: pathlib.Path, benchmark: str, record: dict, rows: list[dict], timing: dict) -> None:
    """Write a benchmark JSON (creating the folder); called after each row so a stopped run keeps what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps({"benchmark": benchmark, "record": record, "rows": rows, "timing": timing}))


def strip_timing(data):
    """``data`` without any ``timing`` entry (at any depth): what must not change between same-seed re-runs."""
    if isinstance(data, dict):
        return {k: strip_timing(v) for k, v in data.items() if k != "timing"}
    if isinstance(data, list):
        return [strip_timing(v) for v in data]
    return data


def differences(a, b, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON values differ (``options.steps``, ``code.sha256.miga_core``; lists as one value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".") or "(the whole value)"]


def resumable_rows(path: pathlib.Path, record: dict, ignore: Sequence[str] = ()) -> list[dict]:
    """The rows of the benchmark JSON at ``path`` that a ``--resume`` run with ``record`` keeps: all of them when the
    file's record equals ``record`` but for timing, the command line (``--out`` and ``--resume`` may differ; every
    option is compared in ``options``) and the ``ignore``d keys; ``[]`` when there is no file.

    Raises SystemExit naming the fields that differ when the file's record is another run's (other options, code or
    machine): a ``--resume`` never silently starts over on top of a file it cannot continue."""
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    skip = {"command", *ignore}

    def same(rec: dict | None) -> dict | None:
        return None if rec is None else {k: v for k, v in strip_timing(rec).items() if k not in skip}

    diff = differences(same(old.get("record")), same(record))
    if diff:
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise SystemExit(f"--resume: {path} was written by another run ({shown} differ), so none of its rows can be kept. "
                         "Fix: resume with that file's options on its code and machine, or leave out --resume (or choose "
                         "another --out) to start over; the file is left as it is.")
    return old["rows"]


def resolve_out(out: str | pathlib.Path) -> pathlib.Path:
    """``out`` relative to the repository root unless absolute."""
    p = pathlib.Path(out)
    return p if p.is_absolute() else ROOT / p
