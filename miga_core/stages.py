"""The composable stages: queue initialization, zigzag stage, unified stage [D4].

Each stage takes and returns an immutable :class:`MigaQueue` that carries the run plan, so
hosts can run the stages as separate nodes and the options cannot diverge between them.
The variants (MIGA, FIFO-Diffusion, unified stage only) differ in their initializer
(:data:`INITIALIZERS`) and in the queue rules their plan resolves; the stage loops are shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypedDict

import torch

from .errors import InvalidConfigError, InvalidInitialClipError, MigaTypeError, bad_value
from .ladder import check_ladder, num_steps, sigma_of_levels
from .latents import LatentRun, fresh_latents
from .noise import Stream, add_noise, latent_noise, mix_key
from .passes import PassContext, queue_pass
from .plan import RunPlan
from .protocols import Callback, Denoiser, Progress
from .reflection import ReflectionStats, reflect
from .samplers import check_sampler_ladder

__all__ = ["MigaQueue", "QueueStart", "initialize_queue", "zigzag_stage", "unified_stage", "progress_of", "INITIALIZERS"]


@dataclass(frozen=True)
class MigaQueue:
    """The state handed from stage to stage.

    Attributes:
        plan: the run plan (options, guidance, self-reflection, prompts, planned calls).
        sigmas: the ladder ``[T + 1]``.
        queue: Q (empty before stage 1 in unified-only runs, and after stage 1).
        history: C, the most recent outputs kept as context [D1].
        outputs: stage-1 outputs so far, video order, all at the plan's exit level (u; FIFO: 0).
        next_index: absolute index of the next fresh latent.
        reflection: self-reflection counters [D5].
        num_windows: windows run so far (search included).
        model_calls: denoiser invocations so far (a call holds up to ``window_batch`` windows).
    """

    plan: RunPlan
    sigmas: torch.Tensor
    queue: LatentRun
    history: LatentRun
    outputs: LatentRun
    next_index: int
    reflection: ReflectionStats = field(default_factory=ReflectionStats)
    num_windows: int = 0
    model_calls: int = 0

    @property
    def config(self):
        """The run's :class:`~miga_core.config.MigaConfig`."""
        return self.plan.config

    @property
    def num_frames(self) -> int:
        """N, latents of the output video."""
        return self.plan.num_frames

    @property
    def num_steps(self) -> int:
        """T."""
        return self.plan.num_steps

    def counted(self, progress: Progress, windows0: int, calls0: int) -> "MigaQueue":
        """This state with the windows and calls ``progress`` counted since ``(windows0, calls0)`` added."""
        return replace(self, num_windows=self.num_windows + progress.window + progress.search_windows - windows0,
                       model_calls=self.model_calls + progress.model_calls - calls0)


def _mark(progress: Progress) -> tuple[int, int]:
    return progress.window + progress.search_windows, progress.model_calls


def _context(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, progress: Progress, stage: str, **kw) -> PassContext:
    return PassContext(denoiser, sigmas, kw.pop("config", plan.config), plan.prompts, progress, stage, plan.num_frames, **kw)


def progress_of(plan: RunPlan, stages: tuple[str, ...], callback: Callback | None) -> Progress:
    """A :class:`Progress` over the planned windows of ``stages`` (with the self-reflection checks when stage 1 is one)."""
    zigzag = "zigzag" in stages
    return Progress({k: plan.calls[k] for k in stages}, callback, checks=plan.num_checks if zigzag else 0,
                    search_cost=plan.search_windows)


def _check_initial_clip(clip: object, plan: RunPlan) -> torch.Tensor:
    f0 = plan.config.window_length
    fix = f"pass a LATENT of exactly window_length={f0} latent frames [B, C, F, H, W]"
    if not plan.has_initial_clip:
        raise InvalidInitialClipError(bad_value("initial_clip", "a clip", "None: the plan was made with has_initial_clip=False",
                                                "make the plan with has_initial_clip=True, or drop the clip"))
    if not isinstance(clip, torch.Tensor):
        raise MigaTypeError(f"initial_clip has type {type(clip).__name__}: allowed is a torch.Tensor. Fix: {fix}.")
    if clip.ndim != 5:
        raise InvalidInitialClipError(bad_value("initial_clip.shape", tuple(clip.shape), "5 dims [B, C, F, H, W]", fix))
    if clip.shape[2] != f0:
        raise InvalidInitialClipError(bad_value("initial_clip frames", clip.shape[2], f"exactly window_length={f0}",
                                                fix + " (trim or generate a clip of that length)"))
    if not bool(torch.isfinite(clip).all()):
        raise InvalidInitialClipError(bad_value("initial_clip", "non-finite values", "finite values", "pass a finished LATENT"))
    return clip


def _sample_initial_clip(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, like: torch.Tensor, progress: Progress) -> torch.Tensor:
    """The default initial clip: plain sampling of ``window_length`` latents over the ladder [D4].

    One window of f0 latents per step, all at one level, with the run's sampler, the prompt of
    latent 0 and its own noise stream. Returns ``[B, C, f0, H, W]`` clean latents.
    """
    f0 = plan.config.window_length
    one_window = plan.config.with_(window_stride=f0, update="lookahead")
    ctx = _context(denoiser, sigmas, plan, progress, "initial_clip", config=one_window,
                   ancestral_stream=mix_key(Stream.INITIAL_CLIP, Stream.ANCESTRAL))
    run = fresh_latents(plan.config.seed, Stream.INITIAL_CLIP, range(f0), sigmas, like)
    empty = LatentRun.empty_like(like)
    for _ in range(plan.num_steps):
        run = queue_pass(ctx, run, empty)
    return run.x


def _renoised(plan: RunPlan, sigmas: torch.Tensor, clip: torch.Tensor, frames: list[int], levels: list[int],
              indices: list[int]) -> LatentRun:
    """Initial-clip latents ``frames`` noised to ``levels`` (Alg. 1 / Alg. 4), keyed by absolute ``indices`` [D1b]."""
    B, C, _, H, W = clip.shape
    noise = latent_noise(plan.config.seed, Stream.RENOISE, indices, levels, (B, C, H, W), dtype=clip.dtype, device=clip.device)
    x = add_noise(clip[:, :, frames], noise, sigma_of_levels(sigmas, levels), plan.config.parameterization)
    return LatentRun.fresh(x, levels, indices)


def _init_miga(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, state: MigaQueue, clip: torch.Tensor,
               progress: Progress) -> MigaQueue:
    """Alg. 4 with the floor fix [D4a]: the initial clip renoised in groups, then grown pass by pass to ``plan.init_groups``."""
    cfg = plan.config
    f0, Lz = cfg.window_length, cfg.zigzag_width
    passes = plan.init_passes  # each pass moves the clip one level down: it starts at T - n_zig + floor(i / L_zig)
    levels = [k + passes for k, c in plan.init_groups for _ in range(c)][:f0]
    queue = _renoised(plan, sigmas, clip, list(range(f0)), levels, list(range(f0)))
    ctx = _context(denoiser, sigmas, plan, progress, "init")
    empty, next_index = LatentRun.empty_like(clip), f0
    for _ in range(passes):
        queue = queue + fresh_latents(cfg.seed, Stream.FRESH, range(next_index, next_index + Lz), sigmas, clip)
        next_index += Lz
        queue = queue_pass(ctx, queue, empty, num_guidance=plan.num_guidance)
    queue = queue + fresh_latents(cfg.seed, Stream.FRESH, range(next_index, next_index + Lz), sigmas, clip)
    assert queue.groups() == list(plan.init_groups), "the initialized queue must match the plan [D4]"
    return replace(state, queue=queue, next_index=next_index + Lz)


def _init_fifo(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, state: MigaQueue, clip: torch.Tensor,
               progress: Progress) -> MigaQueue:
    """FIFO-Diffusion's queue (Alg. 1) [D4]: position p (level p+1) holds initial latent ``max(0, p - (T - f0))`` renoised;
    with ``update="lookahead"`` a left pad of ``f0 - s`` copies of latent 0 at level 1 is its history."""
    cfg, T = plan.config, plan.num_steps
    offset = -plan.head_index  # T - f0: queue position p holds absolute index p - offset; indices < 0 are discarded
    queue = _renoised(plan, sigmas, clip, [max(0, p - offset) for p in range(T)], [p + 1 for p in range(T)], [p - offset for p in range(T)])
    pad = cfg.window_length - cfg.stride if cfg.update == "lookahead" else 0
    history = _renoised(plan, sigmas, clip, [0] * pad, [1] * pad, list(range(-offset - pad, -offset)))
    return replace(state, queue=queue, history=history, next_index=T - offset)


def _init_unified_only(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, state: MigaQueue, like: torch.Tensor,
                       progress: Progress) -> MigaQueue:
    """Alg. 8: N latents of fresh noise at level T go straight to the unified stage."""
    N = plan.num_frames
    return replace(state, outputs=fresh_latents(plan.config.seed, Stream.FRESH, range(N), sigmas, like), next_index=N)


class QueueStart(TypedDict, total=False):
    """What :func:`initialize_queue` starts from (keywords of :func:`~miga_core.pipeline.run` and ``generate`` too).

    Keys:
        initial_clip: ``[B, C, f0, H, W]`` clean latents, when the plan has one (continuation).
        latent_shape: ``(B, C, H, W)`` of the latents when there is no initial clip (one is sampled).
        dtype / device: of the latents sampled from ``latent_shape`` (default float32 on the CPU).
    """

    initial_clip: torch.Tensor | None
    latent_shape: tuple[int, int, int, int] | None
    dtype: torch.dtype
    device: torch.device | str


Initializer = Callable[[Denoiser, torch.Tensor, RunPlan, MigaQueue, torch.Tensor, Progress], MigaQueue]
INITIALIZERS: dict[str, Initializer] = {"miga": _init_miga, "fifo": _init_fifo, "unified_only": _init_unified_only}


def initialize_queue(
    denoiser: Denoiser,
    sigmas: torch.Tensor,
    plan: RunPlan,
    *,
    initial_clip: torch.Tensor | None = None,
    latent_shape: tuple[int, int, int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    callback: Callback | None = None,
    progress: Progress | None = None,
) -> MigaQueue:
    """Build the stage-1 queue of ``plan`` (MIGA: Alg. 4 with the floor fix [D4a]; FIFO: Alg. 1 [D4]; Alg. 8).

    MIGA: initial latent i is noised to level ``T - n_zig + floor(i / L_zig)``; then
    ``T - n_zig - (u+1)`` times: append L_zig fresh latents at level T and run Phi; then append
    one more group. Result: levels ``u+1..T``, L_zig latents each. FIFO: T latents at levels 1..T
    from the initial clip. Unified only: no queue, N fresh latents go to stage 2.

    Args:
        denoiser: the model.  sigmas: the ladder ``[T + 1]`` (T must equal ``plan.num_steps``).
        plan: from :func:`~miga_core.plan.plan_run`.
        initial_clip: ``[B, C, f0, H, W]`` clean latents when ``plan.has_initial_clip``; else one is
            sampled (T windows) from ``latent_shape`` ``(B, C, H, W)``, ``dtype`` and ``device``.
        callback / progress: per-window reports (a new :class:`Progress` over this stage's planned windows if None).
    Raises:
        MigaError subclasses for an invalid ladder, clip or shape, before any model call.
    """
    sigmas = check_ladder(sigmas)
    check_sampler_ladder(plan.config.sampler, plan.config.parameterization, sigmas)
    if num_steps(sigmas) != plan.num_steps:
        raise InvalidConfigError(bad_value("sigmas", f"a ladder of {num_steps(sigmas)} steps", f"T = plan.num_steps = {plan.num_steps} steps",
                                           "make the plan with the ladder's step count"))
    if initial_clip is not None or plan.has_initial_clip:
        like = _check_initial_clip(initial_clip, plan)
    else:
        if latent_shape is None or len(latent_shape) != 4 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                                                                     for d in latent_shape):
            raise MigaTypeError(f"latent_shape={latent_shape!r} is invalid: allowed is (B, C, H, W) of positive ints when initial_clip "
                                "is None. Fix: pass latent_shape or an initial_clip.")
        B, C, H, W = latent_shape
        like = torch.zeros((B, C, 0, H, W), dtype=dtype, device=device)
    progress = progress or progress_of(plan, ("initial_clip", "init"), callback)
    mark = _mark(progress)
    empty = LatentRun.empty_like(like)
    state = MigaQueue(plan, sigmas, empty, empty, empty, 0)
    clip = like
    if plan.calls["initial_clip"]:
        clip = _sample_initial_clip(denoiser, sigmas, plan, like, progress)
    return INITIALIZERS[plan.variant](denoiser, sigmas, plan, state, clip, progress).counted(progress, *mark)


def zigzag_stage(denoiser: Denoiser, state: MigaQueue, *, callback: Callback | None = None, progress: Progress | None = None) -> MigaQueue:
    """Stage 1, zigzag denoising (Alg. 5, with Alg. 6 and Alg. 7; [D3, D4, D5]).

    Repeat until N latents are out: self-reflection check (if the plan has it), Phi with
    guidance, dequeue the head group (now at the plan's exit level: u, FIFO 0) into the outputs
    and the history, append ``group_width`` fresh latents at level T. Latents with a negative
    index (FIFO's first ``T - f0``) are discarded.

    Returns:
        A new state whose ``outputs`` are the first N latents at the exit level; ``queue`` is emptied.
    """
    plan, sigmas = state.plan, state.sigmas
    N, cfg = plan.num_frames, plan.config
    progress = progress or progress_of(plan, ("zigzag",), callback)
    mark = _mark(progress)
    ctx = _context(denoiser, sigmas, plan, progress, "zigzag")
    queue, history, stats, next_index = state.queue, state.history, state.reflection, state.next_index
    chunks, done = [state.outputs], len(state.outputs)  # concatenated once at the end
    while done < N and len(queue):
        if plan.reflection is not None:
            queue, stats = reflect(ctx, queue, plan, stats, frames_done=done)
        queue = queue_pass(ctx, queue, history, num_guidance=plan.num_guidance, frames_done=done)
        level, head = queue.groups()[0]
        assert level == plan.exit_level, "the head group leaves at the plan's exit level [D4]"
        out, queue = queue.frames(slice(0, head)).copy(), queue.frames(slice(head, None))  # copy: outputs outlive the pass
        shown = out if plan.history_level is None else out.with_levels([plan.history_level] * head)  # FIFO: level 1 [D4]
        history = (history + shown).frames(slice(-plan.history_size, None))
        out = out.frames([i for i, idx in enumerate(out.index) if idx >= 0])
        chunks.append(out)
        done += len(out)
        add = plan.group_width
        queue = queue + fresh_latents(cfg.seed, Stream.FRESH, range(next_index, next_index + add), sigmas, queue.x)
        next_index += add
    outputs = LatentRun.cat(chunks)
    empty = LatentRun.empty_like(outputs.x)
    return replace(state, queue=empty, history=empty, outputs=outputs.frames(slice(0, N)), next_index=next_index,
                   reflection=stats).counted(progress, *mark)


def unified_stage(denoiser: Denoiser, state: MigaQueue, *, callback: Callback | None = None, progress: Progress | None = None) -> MigaQueue:
    """Stage 2, unified denoising (Eq. 4, Alg. 5 lines 16-26; [D4]).

    All N outputs share the plan's exit level k; for k..1 one Phi over all of them (no guidance,
    no reflection, no history before latent 0).

    Returns:
        A state whose ``outputs`` are N clean latents (level 0); ``outputs.x`` is ``[B, C, N, H, W]``.
    Raises:
        InvalidConfigError: the stage-1 outputs are missing or not at the exit level.
    """
    plan, out = state.plan, state.outputs
    if len(out) != plan.num_frames or set(out.level) != {plan.exit_level}:
        raise InvalidConfigError(bad_value("state.outputs", f"{len(out)} latents at levels {sorted(set(out.level))}",
                                           f"{plan.num_frames} latents at level {plan.exit_level}", "run zigzag_stage on the queue first"))
    progress = progress or progress_of(plan, ("unified",), callback)
    mark = _mark(progress)
    ctx = _context(denoiser, state.sigmas, plan, progress, "unified")
    empty = LatentRun.empty_like(out.x)
    for _ in range(plan.exit_level):
        out = queue_pass(ctx, out, empty, frames_done=plan.num_frames)
    return replace(state, outputs=out).counted(progress, *mark)
