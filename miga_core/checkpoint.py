"""Checkpoints of a run: write its state between two passes to one file, read it back, resume bit-identically.

A checkpoint is one safetensors file: the tensors (the queue, history and stage-1 outputs so far with their per-latent
sampler state, the ladder, the initial clip's last latent) and, in its header's metadata under ``"miga_checkpoint"``,
a JSON document with the rest: the plan's options (re-validated with :func:`~miga_core.plan.plan_run` on load), where
the run stands (:class:`~miga_core.stages.Position`), the per-latent levels and indices, the self-reflection counters,
the progress counters, the caller's fingerprint (model, conditioning, ...) and a SHA-256 of every tensor. There is no
noise position to save: noise is a pure function of ``(seed, stream, latent index, level)`` [D1b].

Files are written to a temporary name in the same folder, flushed to disk, then renamed over the old one
(:func:`os.replace`), so a crash leaves the previous checkpoint or the new one, never a mix. Reading uses safetensors
and :mod:`json` only (no pickle).

Typical use (what the ComfyUI sampler does)::

    point = load_checkpoint(path, plan=plan, sigmas=sigmas, fingerprint=fp) if resuming else None
    with Checkpointer(path, fp, interval_s=600) as ck:   # saves on an exception (cancel), removes the file on success
        result = run(denoiser, sigmas, plan, checkpoint=ck, resume=point, **({} if point else start))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from .config import GuidanceOptions, MigaConfig, ReflectionOptions
from .errors import CheckpointCorruptError, CheckpointError, CheckpointMismatchError, MigaError, bad_value
from .latents import LatentRun
from .noise import KeyedNoise
from .plan import STAGES, RunPlan, plan_run
from .prompts import PromptSchedule
from .reflection import ReflectionStats
from .stages import MigaQueue, Position, RunPoint

__all__ = ["FORMAT", "save_checkpoint", "read_checkpoint", "load_checkpoint", "check_point", "plan_data", "Checkpointer"]

FORMAT = "miga-checkpoint/1"
_KEY = "miga_checkpoint"  # the safetensors metadata key holding the JSON document
_RUNS = ("queue", "history", "outputs")
_FIX_CORRUPT = "resume from an intact checkpoint (an older copy), or clear resume_from to start the run anew"
_FIX_MISMATCH = ("resume with the model, prompts and options the checkpoint was written with, or clear resume_from to start "
                 "anew (the checkpoint file is left as it is)")

Fingerprint = Mapping[str, str]


# --- plain data --------------------------------------------------------------------------------------------------


def plan_data(plan: RunPlan) -> dict[str, Any]:
    """The options a plan is made of, as JSON-ready data (:func:`plan_run`'s arguments), plus its planned windows.

    The derived fields are not stored: :func:`read_checkpoint` re-plans from the options and checks the windows agree.
    """
    p = plan.prompts
    return {
        "config": asdict(plan.config),
        "num_steps": plan.num_steps,
        "num_frames": plan.num_frames,
        "guidance": asdict(plan.guidance),
        "reflection": asdict(plan.reflection) if plan.reflection is not None else None,
        "prompts": {"starts": list(p.starts), "prompt_indices": list(p.prompt_indices), "num_prompts": p.num_prompts,
                    "texts": list(p.texts), "blend_latents": p.blend_latents, "frames": list(p.frames), "latent_rule": p.latent_rule},
        "has_initial_clip": plan.has_initial_clip,
        "stage_calls": list(plan.stage_calls),
    }


def _plan_of(data: Mapping[str, Any]) -> RunPlan:
    """Re-plan from :func:`plan_data` (every option validated again by :func:`plan_run`)."""
    p = dict(data["prompts"])
    prompts = PromptSchedule(tuple(p["starts"]), tuple(p["prompt_indices"]), p["num_prompts"], tuple(p["texts"]), p["blend_latents"],
                             tuple(p["frames"]), p["latent_rule"])
    reflection = ReflectionOptions(**data["reflection"]) if data["reflection"] is not None else None
    plan = plan_run(MigaConfig(**data["config"]), data["num_steps"], data["num_frames"], guidance=GuidanceOptions(**data["guidance"]),
                    reflection=reflection, prompts=prompts, has_initial_clip=data["has_initial_clip"])
    if list(plan.stage_calls) != list(data["stage_calls"]):
        raise ValueError(f"its options plan {list(plan.stage_calls)} windows per stage here but {data['stage_calls']} when it was "
                         "written (another miga_core version)")
    return plan


def _differences(saved: Any, now: Any, name: str) -> list[str]:
    """``"name.key: checkpoint X, this run Y"`` for every leaf where two JSON-like values differ."""
    if isinstance(saved, Mapping) and isinstance(now, Mapping):
        out = []
        for k in sorted(set(saved) | set(now), key=str):
            if k not in saved or k not in now:
                out.append(f"{name}.{k}: checkpoint {saved.get(k, '(absent)')!r}, this run {now.get(k, '(absent)')!r}")
            else:
                out += _differences(saved[k], now[k], f"{name}.{k}")
        return out
    return [] if saved == now else [f"{name}: checkpoint {saved!r}, this run {now!r}"]


def _digest(t: torch.Tensor) -> str:
    h = hashlib.sha256()
    if t.numel():
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


# --- writing -----------------------------------------------------------------------------------------------------


def _prepare(point: RunPoint, fingerprint: Fingerprint | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = point.state
    if state.at is None or state.at.stage not in STAGES:
        raise CheckpointError(bad_value("state.at", state.at, "a Position inside a stage (a point a stage offered its hook)",
                                        "save the RunPoint the checkpoint hook was given"))
    if state.noise is not None and state.noise != KeyedNoise(state.plan.config.seed):
        raise CheckpointError(bad_value("noise", type(state.noise).__name__, "None or KeyedNoise of the run's seed (a noise source "
                                        "that is not keyed cannot be restored)", "run without noise= to checkpoint"))
    tensors: dict[str, torch.Tensor] = {"sigmas": state.sigmas}
    runs: dict[str, Any] = {}
    for name in _RUNS:
        r: LatentRun = getattr(state, name)
        tensors[f"{name}.x"], tensors[f"{name}.denoised"] = r.x, r.denoised
        if r.past is not None:
            tensors[f"{name}.past"] = r.past
        runs[name] = {"level": list(r.level), "index": list(r.index), "has_denoised": list(r.has_denoised), "depth": list(r.depth)}
    if state.clip_last is not None:
        tensors["clip_last"] = state.clip_last
    seen: set[int] = set()
    for k, t in tensors.items():  # safetensors wants contiguous CPU tensors that share no memory
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        tensors[k] = t
    rs = state.reflection
    doc = {
        "format": FORMAT,
        "fingerprint": dict(fingerprint or {}),
        "plan": plan_data(state.plan),
        "state": {
            "at": {"stage": state.at.stage, "passes": state.at.passes, "popping": state.at.popping},
            "next_index": state.next_index, "num_windows": state.num_windows, "model_calls": state.model_calls,
            "reflection": {"n_all": rs.n_all, "n_eval": rs.n_eval, "n_corr": rs.n_corr,
                           "last_score": list(rs.last_score) if rs.last_score is not None else None,
                           "scores": [list(s) for s in rs.scores]},
            "runs": runs,
        },
        "progress": {k: int(v) for k, v in point.progress.items()},
        "tensors": {k: {"sha256": _digest(t), "shape": list(t.shape), "dtype": str(t.dtype)} for k, t in tensors.items()},
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return tensors, doc


def save_checkpoint(path: str | os.PathLike, point: RunPoint, fingerprint: Fingerprint | None = None) -> Path:
    """Write ``point`` to ``path`` atomically (temporary file in the same folder, fsync, :func:`os.replace`).

    Args:
        path: the checkpoint file (``.safetensors``); its folder is created if missing.
        point: from the checkpoint hook (:data:`~miga_core.stages.CheckpointHook`).
        fingerprint: the caller's identity of what the plan does not hold (model, conditioning, ...), str -> str;
            :func:`load_checkpoint` names every key that differs.
    Returns:
        The path written.
    Raises:
        CheckpointError: the point is not inside a stage, or its noise source is not the keyed one [D1b].
        OSError: the file cannot be written (the previous checkpoint, if any, is left intact).
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors, doc = _prepare(point, fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_KEY: json.dumps(doc, allow_nan=False)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # the rename itself survives a power loss once the folder is synced
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


# --- reading -----------------------------------------------------------------------------------------------------


def read_checkpoint(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> tuple[RunPoint, dict[str, str]]:
    """Read a checkpoint and check it is whole: ``(point, fingerprint)``; nothing is compared with a run yet.

    Args:
        device: where the latents go (the ladder stays on the CPU, as :func:`~miga_core.ladder.check_ladder` keeps it).
    Raises:
        CheckpointCorruptError: the file is missing, truncated or corrupt (not safetensors, no or bad JSON, a missing key,
            a tensor whose SHA-256, shape or dtype differs from the record, per-latent lists that do not fit the latents),
            or its options no longer make a valid plan; the message names the file and the problem.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)

    def corrupt(problem: str) -> CheckpointCorruptError:
        return CheckpointCorruptError(f"checkpoint {str(path)!r} {problem}. Fix: {_FIX_CORRUPT}.")

    if not path.is_file():
        raise corrupt("does not exist (or is not a file)")
    try:
        with safe_open(str(path), "pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise corrupt(f"is truncated or not a safetensors file ({exc})") from exc
    if _KEY not in meta:
        raise corrupt(f"has no {_KEY!r} record in its header (not a MIGA checkpoint)")
    try:
        doc = json.loads(meta[_KEY])
    except json.JSONDecodeError as exc:
        raise corrupt(f"has an unreadable record ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise corrupt(f"has format {doc.get('format') if isinstance(doc, dict) else None!r}: this miga_core reads {FORMAT!r}")
    try:
        return _point_of(doc, tensors, device), {str(k): str(v) for k, v in doc["fingerprint"].items()}
    except CheckpointCorruptError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, MigaError) as exc:
        what = f"lacks {exc}" if isinstance(exc, KeyError) else str(exc)
        raise corrupt(f"is inconsistent: {what}") from exc


def _point_of(doc: dict, tensors: dict[str, torch.Tensor], device: torch.device | str) -> RunPoint:
    for name, rec in doc["tensors"].items():
        if name not in tensors:
            raise ValueError(f"tensor {name!r} is missing")
        t = tensors[name]
        if list(t.shape) != rec["shape"] or str(t.dtype) != rec["dtype"] or _digest(t) != rec["sha256"]:
            raise ValueError(f"tensor {name!r} differs from its record (shape {list(t.shape)} vs {rec['shape']}, dtype {t.dtype} vs "
                             f"{rec['dtype']}, or its SHA-256: the bytes are damaged)")
    plan = _plan_of(doc["plan"])
    s = doc["state"]
    runs = {}
    like = tensors["queue.x"]
    for name in _RUNS:
        r = s["runs"][name]
        x, d = tensors[f"{name}.x"], tensors[f"{name}.denoised"]
        past = tensors.get(f"{name}.past")
        n = len(r["level"])
        ok = (x.ndim == 5 and x.shape[2] == n and d.shape == x.shape and x.shape[:2] == like.shape[:2] and x.shape[3:] == like.shape[3:]
              and len(r["index"]) == len(r["has_denoised"]) == len(r["depth"]) == n and (past is None or past.shape == (2, *x.shape)))
        if not ok:
            raise ValueError(f"run {name!r}: latents {list(x.shape)}, denoised {list(d.shape)}, past "
                             f"{list(past.shape) if past is not None else None} do not fit its {n} levels or the queue's "
                             f"{list(like.shape)}")
        if any(not 0 <= k <= plan.num_steps + 1 for k in r["level"]) or any(not 0 <= k <= 2 for k in r["depth"]):
            raise ValueError(f"run {name!r} has levels or depths out of range")
        runs[name] = LatentRun(x.to(device), tuple(int(k) for k in r["level"]), tuple(int(i) for i in r["index"]), d.to(device),
                               tuple(bool(h) for h in r["has_denoised"]), past.to(device) if past is not None else None,
                               tuple(int(k) for k in r["depth"]))
    at = s["at"]
    if at["stage"] not in STAGES or not isinstance(at["passes"], int) or at["passes"] < 0:
        raise ValueError(f"position {at} is not a stage and pass")
    rs = s["reflection"]
    stats = ReflectionStats(rs["n_all"], rs["n_eval"], rs["n_corr"], tuple(rs["last_score"]) if rs["last_score"] is not None else None,
                            tuple(tuple(x) for x in rs["scores"]))
    clip_last = tensors["clip_last"].to(device) if "clip_last" in tensors else None
    state = MigaQueue(plan, tensors["sigmas"], runs["queue"], runs["history"], runs["outputs"], int(s["next_index"]), stats,
                      int(s["num_windows"]), int(s["model_calls"]), None, clip_last,
                      Position(at["stage"], int(at["passes"]), bool(at["popping"])))
    progress = {k: int(v) for k, v in doc["progress"].items()}
    return RunPoint(state, progress)


def _mismatches(point: RunPoint, plan: RunPlan, sigmas: torch.Tensor | None) -> list[str]:
    from .ladder import check_ladder

    diffs = _differences(plan_data(point.state.plan), plan_data(plan), "plan")
    if sigmas is not None:
        now, saved = check_ladder(sigmas), point.state.sigmas
        if now.dtype != saved.dtype or now.shape != saved.shape or not torch.equal(now, saved):
            diffs.append(f"sigmas (the ladder: scheduler, steps, model shift): checkpoint {_short(saved)}, this run {_short(now)}")
    return diffs


def _mismatch(path: str | os.PathLike | None, diffs: list[str]) -> CheckpointMismatchError:
    where = f"checkpoint {str(path)!r}" if path is not None else "the checkpoint"
    return CheckpointMismatchError(f"{where} was written by another run; what differs: {'; '.join(diffs)}. Fix: {_FIX_MISMATCH}.")


def check_point(point: RunPoint, plan: RunPlan, sigmas: torch.Tensor | None = None) -> None:
    """Refuse a point of another run: its plan options or ladder differ from this run's (``run(resume=...)`` calls it).

    Raises:
        CheckpointMismatchError: naming every difference (``plan.config.seed: checkpoint 1, this run 2``, ``sigmas``) and the fix.
    """
    diffs = _mismatches(point, plan, sigmas)
    if diffs:
        raise _mismatch(None, diffs)


def _short(t: torch.Tensor) -> str:
    v = [f"{x:.6g}" for x in t.tolist()]
    body = ", ".join(v if len(v) <= 6 else v[:3] + ["..."] + v[-2:])
    return f"[{body}] ({len(v)} values, {t.dtype})"


def load_checkpoint(path: str | os.PathLike, *, plan: RunPlan, sigmas: torch.Tensor | None = None,
                    fingerprint: Fingerprint | None = None, device: torch.device | str = "cpu") -> RunPoint:
    """Read a checkpoint and check it belongs to this run; the point to pass as ``run(..., resume=point)``.

    Args:
        plan: this run's plan (its options must equal the checkpoint's).  sigmas: this run's ladder (must be equal bit for bit).
        fingerprint: this run's fingerprint (model, conditioning, ...; every key must equal the checkpoint's).
        device: where the latents go.
    Raises:
        CheckpointCorruptError: missing, truncated or corrupt file (:func:`read_checkpoint`).
        CheckpointMismatchError: another run's checkpoint, naming everything that differs: fingerprint keys
            (``fingerprint.model: checkpoint 'a', this run 'b'``), plan options, the ladder.
    """
    point, saved_fp = read_checkpoint(path, device=device)
    diffs = _differences(saved_fp, {str(k): str(v) for k, v in fingerprint.items()}, "fingerprint") if fingerprint is not None else []
    diffs += _mismatches(point, plan, sigmas)
    if diffs:
        raise _mismatch(path, diffs)
    return point


# --- the hook ----------------------------------------------------------------------------------------------------


class Checkpointer:
    """The checkpoint hook of a run (:data:`~miga_core.stages.CheckpointHook`) writing one file.

    After every pass it keeps the newest point (cheap: nothing is copied) and writes it when ``interval_s`` seconds passed
    since the last write (0: after every pass; None: never on its own, only on an exception or :meth:`save`). As a context manager it writes the newest point when the block ends with
    an exception (a cancel, an out-of-memory error, ...) and removes the file when the block ends normally (the run is done).

    Attributes:
        path: the checkpoint file.  saves: files written so far.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: Fingerprint | None = None, *, interval_s: float | None = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s is not None and not (isinstance(interval_s, (int, float)) and math.isfinite(interval_s) and interval_s >= 0):
            raise CheckpointError(bad_value("interval_s", interval_s, "None or a finite number of seconds >= 0",
                                            "use 0 for every pass, e.g. 600, or None for on-exception only"))
        self.path, self.fingerprint, self.clock = Path(path), dict(fingerprint or {}), clock
        self.interval_s = float(interval_s) if interval_s is not None else None
        self.latest: Callable[[], RunPoint] | None = None
        self.last = clock()
        self.saves = 0

    def __call__(self, snapshot: Callable[[], RunPoint]) -> None:
        self.latest = snapshot
        if self.interval_s is not None and self.clock() - self.last >= self.interval_s:
            self.save()

    def save(self) -> bool:
        """Write the newest point now; False when no pass has finished yet (nothing to write)."""
        if self.latest is None:
            return False
        save_checkpoint(self.path, self.latest(), self.fingerprint)
        self.last = self.clock()
        self.saves += 1
        return True

    def remove(self) -> None:
        """Delete the checkpoint file (a finished run's) and temporary files a killed write left beside it."""
        self.path.unlink(missing_ok=True)
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            self.remove()
        else:
            try:
                if self.save():
                    exc.add_note(f"miga: the run was saved to {str(self.path)!r}; resume from it (resume_from) to continue.")
            except Exception as err:  # the run's own error stays the one raised
                exc.add_note(f"miga: the checkpoint {str(self.path)!r} could not be written: {err}")
        return False
