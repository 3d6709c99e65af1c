"""``run`` and ``generate``: the whole MIGA run in one call (init -> zigzag stage -> unified stage).

``run`` is the one composition of the stages; the library's ``generate`` and the ComfyUI host
both go through it.
"""

from __future__ import annotations

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
from .stages import CheckpointHook, QueueStart, RunPoint, finish_initialization, initialize_queue, progress_of, unified_stage, zigzag_stage

__all__ = ["MigaResult", "run", "generate"]


@dataclass(frozen=True)
class MigaResult:
    """What a run returns.

    Attributes:
        latents: ``[B, C, N, H, W]`` clean latents of the video.
        reflection: self-reflection counters (``R_corr``, ``R_succ``) [D5].
        num_windows: windows run (planned and search; each one region of one pass, x2 rows with CFG).
        model_calls: denoiser invocations (``window_batch`` windows per call at most).
        plan: the run plan.
    """

    latents: torch.Tensor
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
        start: what the queue starts from, :class:`~miga_core.stages.QueueStart`: ``initial_clip`` ``[B, C, f0, H, W]``
            clean latents (when the plan has one), else ``latent_shape`` ``(B, C, H, W)``, ``dtype`` and ``device``.
    Raises:
        MigaError subclasses for invalid input, all before the first model call;
        CheckpointMismatchError: ``resume`` is of another plan or ladder;
        NonFiniteDenoiserOutputError if the model returns NaN/Inf.
    """
    progress = progress_of(plan, STAGES, callback)
    if resume is None:
        state = initialize_queue(denoiser, sigmas, plan, progress=progress, checkpoint=checkpoint, **start)
    else:
        if start:
            raise MigaTypeError(f"run() got resume= and {sorted(start)}: allowed is one of them (a resumed run starts from the "
                                "checkpoint's latents). Fix: drop initial_clip/latent_shape/dtype/device/noise when resuming.")
        check_point(resume, plan, sigmas)
        progress.restore(resume.progress)
        progress.note_reflection(resume.state.reflection.n_all, resume.state.reflection.n_corr)  # derived, not saved
        state = finish_initialization(denoiser, resume.state, progress=progress, checkpoint=checkpoint)
    state = zigzag_stage(denoiser, state, progress=progress, checkpoint=checkpoint)
    state = unified_stage(denoiser, state, progress=progress, checkpoint=checkpoint)
    return MigaResult(state.outputs.x, state.reflection, state.num_windows, state.model_calls, plan)


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
    return run(denoiser, sigmas, plan, callback=callback, checkpoint=checkpoint, resume=resume, **start)
