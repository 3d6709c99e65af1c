"""``run`` and ``generate``: the whole MIGA run in one call (init -> zigzag stage -> unified stage).

``run`` is the one composition of the stages; the library's ``generate`` and the ComfyUI host
both go through it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Unpack

import torch

from .errors import MigaTypeError
from .checkpoint import check_point
from .config import GuidanceOptions, MigaConfig, ReflectionOptions
from .ladder import check_ladder, num_steps
from .plan import STAGES, RunPlan, plan_run
from .prompts import PromptSchedule
from .protocols import Callback, Denoiser
from .reflection import ReflectionStats
from .stages import CheckpointHook, MigaQueue, QueueStart, RunPoint, finish_initialization, initialize_queue, progress_of, unified_stage, zigzag_stage
from .stream import DEFAULT_CHUNK_FRAMES, LatentSink, Spill, SpilledRun, check_chunk, make_spill_folder, refuse_checkpoint

__all__ = ["MigaResult", "run", "generate"]


@dataclass(frozen=True)
class MigaResult:
    """What a run returns.

    Attributes:
        latents: ``[B, C, N, H, W]`` clean latents of the video; None for a streamed run (they went to its sink).
        reflection: self-reflection counters (``R_corr``, ``R_succ``) [D5].
        num_windows: windows run (planned and search; each one region of one pass, x2 rows with CFG).
        model_calls: denoiser invocations (``window_batch`` windows per call at most).
        plan: the run plan.
    """

    latents: torch.Tensor | None
    reflection: ReflectionStats
    num_windows: int
    model_calls: int
    plan: RunPlan


def run(
    denoiser: Denoiser,
    sigmas: torch.Tensor,
    plan: RunPlan,
    *,
    callback: Callback | None = None,
    checkpoint: CheckpointHook | None = None,
    resume: RunPoint | None = None,
    sink: LatentSink | None = None,
    spill_dir: str | os.PathLike | None = None,
    spill_chunk: int = DEFAULT_CHUNK_FRAMES,
    **start: Unpack[QueueStart],
) -> MigaResult:
    """Run a whole plan: :func:`initialize_queue`, :func:`zigzag_stage`, :func:`unified_stage` under one progress.

    Args:
        denoiser: ``D(x [B,C,F,H,W], sigma [B,F], prompt [B,P]) -> x0 [B,C,F,H,W]``.
        sigmas: the host's ladder ``[T + 1]``, strictly descending, ``T == plan.num_steps``.
        plan: from :func:`~miga_core.plan.plan_run`.
        callback: called after every window with a :class:`~miga_core.WindowInfo` (total fixed at the plan's); raise to cancel.
        checkpoint: called after every pass with the run's :class:`~miga_core.stages.RunPoint` builder
            (:class:`~miga_core.checkpoint.Checkpointer` writes it to a file).
        resume: continue an interrupted run of this plan from its point (:func:`~miga_core.checkpoint.load_checkpoint`);
            the result is bit-identical to the uninterrupted run and the callback's window numbers continue. No ``start``.
        sink: stream the run (:mod:`miga_core.stream`): host memory stays bounded whatever the length. The stage-1
            outputs and the unified stage's latents are kept in files under ``spill_dir``, passes run ``spill_chunk``
            latents at a time, and the finished latents go to ``sink(latents [B, C, n, H, W])`` in consecutive chunks,
            video order, each once; ``MigaResult.latents`` is then None. Bit-identical to the in-memory run (same
            windows, model calls, noise and callback reports) with the default keyed noise; a custom ``noise`` source
            must draw each latent's noise alone (the unified-only start and the refinement draw chunk by chunk).
            Not with ``checkpoint``/``resume``.
        spill_dir: the folder of the spill files (a fresh ``miga-spill-*`` subfolder, removed when the run ends or fails;
            None: the system's temporary folder). Only with ``sink``.
        spill_chunk: latents per spill read/write and per part of a streamed pass (>= 1). Only with ``sink``.
        start: what the queue starts from, :class:`~miga_core.stages.QueueStart`: ``initial_clip`` ``[B, C, f0, H, W]``
            clean latents (when the plan has one), else ``latent_shape`` ``(B, C, H, W)``, ``dtype`` and ``device``.
    Raises:
        MigaError subclasses for invalid input, all before the first model call;
        CheckpointMismatchError: ``resume`` is of another plan or ladder;
        InvalidConfigError: ``sink`` with ``checkpoint`` or ``resume``; MigaTypeError: ``spill_dir`` without ``sink``;
        NonFiniteDenoiserOutputError if the model returns NaN/Inf.
    """
    if sink is None:
        if spill_dir is not None or spill_chunk != DEFAULT_CHUNK_FRAMES:
            raise MigaTypeError(f"run() got spill_dir={spill_dir!r} / spill_chunk={spill_chunk!r} without sink=: allowed only when the "
                                "run streams to a sink. Fix: pass sink=(a callable taking [B, C, n, H, W] latents), or drop them.")
        state = _stages(denoiser, sigmas, plan, callback, checkpoint, resume, None, start)
        return MigaResult(state.outputs.x, state.reflection, state.num_windows, state.model_calls, plan)
    if not callable(sink):
        raise MigaTypeError(f"sink has type {type(sink).__name__}: allowed is a callable taking [B, C, n, H, W] latents. "
                            "Fix: pass a function, or None to get the latents in the result.")
    refuse_checkpoint(sink, checkpoint, resume)
    check_chunk(spill_chunk)
    folder = make_spill_folder(spill_dir)
    try:
        state = _stages(denoiser, sigmas, plan, callback, checkpoint, resume, Spill(folder, spill_chunk), start)
        assert isinstance(state.outputs, SpilledRun), "a streamed run keeps its latents spilled to the end"
        state.outputs.drain(sink)
    finally:  # also on an error or a cancel: no spill files are left behind
        shutil.rmtree(folder, ignore_errors=True)
    return MigaResult(None, state.reflection, state.num_windows, state.model_calls, plan)


def _stages(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, callback: Callback | None, checkpoint: CheckpointHook | None,
            resume: RunPoint | None, spill: Spill | None, start: QueueStart) -> MigaQueue:
    """The stages of :func:`run` under one progress; the final state (its ``outputs`` spilled when ``spill`` is given)."""
    progress = progress_of(plan, STAGES, callback)
    if resume is None:
        state = initialize_queue(denoiser, sigmas, plan, progress=progress, checkpoint=checkpoint, spill=spill, **start)
    else:
        if start:
            raise MigaTypeError(f"run() got resume= and {sorted(start)}: allowed is one of them (a resumed run starts from the "
                                "checkpoint's latents). Fix: drop initial_clip/latent_shape/dtype/device/noise when resuming.")
        check_point(resume, plan, sigmas)
        progress.restore(resume.progress)
        progress.note_reflection(resume.state.reflection.n_all, resume.state.reflection.n_corr)  # derived, not saved
        state = finish_initialization(denoiser, resume.state, progress=progress, checkpoint=checkpoint)
    state = zigzag_stage(denoiser, state, progress=progress, checkpoint=checkpoint)
    return unified_stage(denoiser, state, progress=progress, checkpoint=checkpoint)


def generate(
    denoiser: Denoiser,
    sigmas: torch.Tensor,
    num_frames: int,
    config: MigaConfig = MigaConfig(),
    *,
    guidance: GuidanceOptions | None = None,
    reflection: ReflectionOptions | None = None,
    prompts: PromptSchedule | None = None,
    callback: Callback | None = None,
    checkpoint: CheckpointHook | None = None,
    resume: RunPoint | None = None,
    sink: LatentSink | None = None,
    spill_dir: str | os.PathLike | None = None,
    spill_chunk: int = DEFAULT_CHUNK_FRAMES,
    **start: Unpack[QueueStart],
) -> MigaResult:
    """Generate ``num_frames`` latent frames with MIGA (or FIFO-Diffusion with ``mode="fifo"``): plan, then :func:`run`.

    Args:
        denoiser: ``D(x [B,C,F,H,W], sigma [B,F], prompt [B,P]) -> x0 [B,C,F,H,W]``.
        sigmas: the host's ladder ``[T + 1]``, strictly descending.
        num_frames: N latent frames of the output.
        config: queue and sampler options (see :func:`miga_core.preset` for paper defaults).
        guidance: long-range frame guidance [D3]; reflection: self-reflection [D5]; prompts: [D6].
        callback: called after every window with a :class:`~miga_core.WindowInfo`; raise to cancel.
        checkpoint / resume: as in :func:`run` (a resumed run takes ``has_initial_clip`` from the checkpoint's plan).
        sink / spill_dir / spill_chunk: stream the video in bounded memory, as in :func:`run`.
        start: :class:`~miga_core.stages.QueueStart`: ``initial_clip`` ``[B, C, f0, H, W]`` clean latents to start from
            (continuation; None samples one), or ``latent_shape`` ``(B, C, H, W)``, ``dtype`` and ``device``.
    Returns:
        :class:`MigaResult`.
    Raises:
        MigaError subclasses for invalid input, all before the first model call;
        NonFiniteDenoiserOutputError if the model returns NaN/Inf.
    """
    sigmas = check_ladder(sigmas)
    plan = plan_run(config, num_steps(sigmas), num_frames, guidance=guidance, reflection=reflection, prompts=prompts,
                    has_initial_clip=start.get("initial_clip") is not None or (resume is not None and resume.state.plan.has_initial_clip))
    return run(denoiser, sigmas, plan, callback=callback, checkpoint=checkpoint, resume=resume, sink=sink, spill_dir=spill_dir,
               spill_chunk=spill_chunk, **start)
