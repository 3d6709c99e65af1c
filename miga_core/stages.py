"""The composable stages: queue initialization, zigzag stage, unified stage [D4].

Each stage takes and returns an immutable :class:`MigaQueue`, so hosts can run them
as separate nodes. FIFO-Diffusion (``mode="fifo"``) goes through the same three calls
with its own init and discard rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from .config import GuidanceOptions, MigaConfig, ReflectionOptions, validate_run
from .errors import InvalidConfigError, InvalidInitialClipError, MigaTypeError, bad_value
from .ladder import check_ladder, num_steps, sigma_of_levels
from .latents import LatentRun, fresh_latents
from .noise import Stream, add_noise, latent_noise, mix_key
from .prompts import PromptSchedule
from .protocols import Callback, Denoiser, Progress
from .passes import PassContext, queue_pass
from .reflection import ReflectionStats, reflect, reflection_geometry
from .windows import history_needed

__all__ = ["MigaQueue", "initialize_queue", "zigzag_stage", "unified_stage", "sample_initial_clip", "check_num_frames",
           "init_windows", "stage1_windows", "unified_windows", "planned_windows"]


@dataclass(frozen=True)
class MigaQueue:
    """The state handed from stage to stage.

    Attributes:
        config: the options the queue was built with.
        sigmas: the ladder ``[T + 1]``.
        num_frames: N, latents of the output video.
        queue: Q (empty before stage 1 in unified-only runs, and after stage 1).
        history: C, the most recent outputs kept as context [D1].
        outputs: stage-1 outputs so far, video order, all at level u (FIFO: level 0).
        next_index: absolute index of the next fresh latent.
        reflection: self-reflection counters [D5].
        num_windows: model calls (windows) so far.
    """

    config: MigaConfig
    sigmas: torch.Tensor
    num_frames: int
    queue: LatentRun
    history: LatentRun
    outputs: LatentRun
    next_index: int
    reflection: ReflectionStats = field(default_factory=ReflectionStats)
    num_windows: int = 0

    @property
    def num_steps(self) -> int:
        """T."""
        return num_steps(self.sigmas)


def check_num_frames(num_frames: object) -> int:
    """Raise unless ``num_frames`` (latent frames) is an int >= 1."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int):
        raise MigaTypeError(f"num_frames={num_frames!r} has type {type(num_frames).__name__}: allowed is an int >= 1. "
                            "Fix: pass the number of latent frames.")
    if num_frames < 1:
        raise InvalidConfigError(bad_value("num_frames", num_frames, "an integer >= 1 (latent frames)", "ask for at least one latent frame"))
    return num_frames


def _check_initial_clip(clip: object, config: MigaConfig) -> torch.Tensor:
    fix = f"pass a LATENT of exactly window_length={config.window_length} latent frames [B, C, F, H, W]"
    if not isinstance(clip, torch.Tensor):
        raise MigaTypeError(f"initial_clip has type {type(clip).__name__}: allowed is a torch.Tensor. Fix: {fix}.")
    if clip.ndim != 5:
        raise InvalidInitialClipError(bad_value("initial_clip.shape", tuple(clip.shape), "5 dims [B, C, F, H, W]", fix))
    if clip.shape[2] != config.window_length:
        raise InvalidInitialClipError(bad_value("initial_clip frames", clip.shape[2], f"exactly window_length={config.window_length}",
                                                fix + " (trim or generate a clip of that length)"))
    if not bool(torch.isfinite(clip).all()):
        raise InvalidInitialClipError(bad_value("initial_clip", "non-finite values", "finite values", "pass a finished, decoded-free LATENT"))
    return clip


def _ctx(denoiser, sigmas, config, prompts, progress, stage, num_frames, **kw) -> PassContext:
    return PassContext(denoiser, sigmas, config, prompts or PromptSchedule.single(), progress, stage, num_frames, **kw)


def sample_initial_clip(
    denoiser: Denoiser,
    sigmas: torch.Tensor,
    config: MigaConfig,
    like: torch.Tensor,
    *,
    prompts: PromptSchedule | None = None,
    progress: Progress | None = None,
    num_frames: int = 0,
) -> torch.Tensor:
    """The default initial clip: plain sampling of ``window_length`` latents over the ladder [D4].

    One window of f0 latents per step, all at one level, with the run's sampler, prompt of
    latent 0 and its own noise stream. ``like`` gives ``[B, C, *, H, W]``, dtype and device.

    Returns:
        ``[B, C, f0, H, W]`` clean latents (level 0).
    """
    f0, T = config.window_length, num_steps(sigmas)
    progress = progress or Progress(T)
    one_window = config.with_(window_stride=f0, update="lookahead")
    ctx = _ctx(denoiser, sigmas, one_window, prompts, progress, "initial_clip", num_frames,
               ancestral_stream=mix_key(Stream.INITIAL_CLIP, Stream.ANCESTRAL))
    run = fresh_latents(config.seed, Stream.INITIAL_CLIP, range(f0), sigmas, like)
    empty = LatentRun.empty_like(like)
    for _ in range(T):
        run = queue_pass(ctx, run, empty)
    return run.x


def initialize_queue(
    denoiser: Denoiser,
    sigmas: torch.Tensor,
    num_frames: int,
    config: MigaConfig = MigaConfig(),
    *,
    initial_clip: torch.Tensor | None = None,
    latent_shape: tuple[int, int, int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    guidance: GuidanceOptions | None = None,
    prompts: PromptSchedule | None = None,
    callback: Callback | None = None,
    progress: Progress | None = None,
) -> MigaQueue:
    """Build the stage-1 queue (Alg. 4 with the floor fix [D4a]; FIFO: Alg. 1 [D4]).

    MIGA: initial latent i is noised to level ``T - n_zig + floor(i / L_zig)``; then
    ``T - n_zig - (u+1)`` times: append L_zig fresh latents at level T and run Phi; then append
    one more group. Result: levels ``u+1..T``, L_zig latents each (``L = (T-u) * L_zig`` when
    L_zig divides f0). ``unified_steps == T``: no queue, N fresh latents go to stage 2 (Alg. 8).

    FIFO: T latents at levels 1..T, position p holds initial latent ``max(0, p-1-(T-f0))`` for level
    p (1-based); with ``update="lookahead"`` a left pad of ``f0 - s`` copies of latent 0 at level 1.

    Args:
        denoiser: the model.  sigmas: the ladder ``[T + 1]``.  num_frames: N latent frames.
        initial_clip: ``[B, C, f0, H, W]`` clean latents; None = sample one (costs T calls).
        latent_shape: ``(B, C, H, W)`` when there is no initial clip; dtype, device likewise.
        guidance: long-range guidance for the init passes [D3].
        prompts: prompt schedule [D6].  callback / progress: per-window reports.
    Raises:
        MigaError subclasses for any invalid option, before any model call.
    """
    sigmas = check_ladder(sigmas)
    T = num_steps(sigmas)
    validate_run(config, T, guidance=guidance)
    N = check_num_frames(num_frames)
    unified_only = config.mode == "miga" and config.unified_steps == T
    if initial_clip is not None:
        if unified_only:
            raise InvalidInitialClipError(bad_value("initial_clip", "a clip", "None when unified_steps == T (Alg. 8 starts from noise)",
                                                    "drop the clip, or lower unified_steps to continue from it"))
        like = _check_initial_clip(initial_clip, config)
    else:
        if latent_shape is None or len(latent_shape) != 4 or not all(isinstance(d, int) and d >= 1 for d in latent_shape):
            raise MigaTypeError(f"latent_shape={latent_shape!r} is invalid: allowed is (B, C, H, W) of positive ints when initial_clip is None. "
                                "Fix: pass latent_shape or an initial_clip.")
        B, C, H, W = latent_shape
        like = torch.zeros((B, C, 0, H, W), dtype=dtype, device=device)
    m = guidance.num_guidance if guidance is not None else 0
    progress = progress or Progress(init_windows(config, T, has_initial_clip=initial_clip is not None), callback)
    calls0 = progress.window
    empty = LatentRun.empty_like(like)
    f0, Lz, u = config.window_length, config.zigzag_width, config.unified_steps
    state = MigaQueue(config, sigmas, N, empty, empty, empty, 0)

    if unified_only:  # Alg. 8: N latents at level T, straight to stage 2
        return replace(state, outputs=fresh_latents(config.seed, Stream.FRESH, range(N), sigmas, like), next_index=N)

    clip = initial_clip if initial_clip is not None else sample_initial_clip(
        denoiser, sigmas, config, like, prompts=prompts, progress=progress, num_frames=N)
    B, C, _, H, W = clip.shape

    def renoised(frames: list[int], levels: list[int], indices: list[int]) -> LatentRun:
        noise = latent_noise(config.seed, Stream.RENOISE, indices, levels, (B, C, H, W), dtype=clip.dtype, device=clip.device)
        x = add_noise(clip[:, :, frames], noise, sigma_of_levels(sigmas, levels), config.parameterization)
        return LatentRun.fresh(x, levels, indices)

    if config.mode == "fifo":
        offset = T - f0  # queue position p holds absolute index p - offset; indices < 0 are discarded
        queue = renoised([max(0, p - offset) for p in range(T)], [p + 1 for p in range(T)], [p - offset for p in range(T)])
        pad = f0 - config.stride if config.update == "lookahead" else 0
        history = renoised([0] * pad, [1] * pad, list(range(-offset - pad, -offset)))
        return replace(state, queue=queue, history=history, next_index=T - offset, num_windows=progress.window - calls0)

    n_zig = math.ceil(f0 / Lz)
    queue = renoised(list(range(f0)), [T - n_zig + i // Lz for i in range(f0)], list(range(f0)))
    ctx = _ctx(denoiser, sigmas, config, prompts, progress, "init", N)
    next_index = f0
    for _ in range(T - n_zig - (u + 1)):
        queue = queue + fresh_latents(config.seed, Stream.FRESH, range(next_index, next_index + Lz), sigmas, clip)
        next_index += Lz
        queue = queue_pass(ctx, queue, empty, num_guidance=m)
    queue = queue + fresh_latents(config.seed, Stream.FRESH, range(next_index, next_index + Lz), sigmas, clip)
    return replace(state, queue=queue, next_index=next_index + Lz, num_windows=progress.window - calls0)


def zigzag_stage(
    denoiser: Denoiser,
    state: MigaQueue,
    *,
    guidance: GuidanceOptions | None = None,
    reflection: ReflectionOptions | None = None,
    prompts: PromptSchedule | None = None,
    callback: Callback | None = None,
    progress: Progress | None = None,
) -> MigaQueue:
    """Stage 1, zigzag denoising (Alg. 5, with Alg. 6 and Alg. 7; SPEC D4, D3, D5).

    Repeat until N latents are out: self-reflection check, Phi with guidance, dequeue the head
    group (now level u) into the outputs and the history, append L_zig fresh latents at level T.
    FIFO: Phi, dequeue the level-0 head, append one; the first ``T - f0`` outputs are discarded.

    Returns:
        A new state whose ``outputs`` are the first N latents at level u; ``queue`` is emptied.
    """
    cfg, sigmas, N = state.config, state.sigmas, state.num_frames
    T = num_steps(sigmas)
    validate_run(cfg, T, guidance=guidance, reflection=reflection)
    m = guidance.num_guidance if guidance is not None else 0
    geometry = reflection_geometry(cfg, T, reflection) if reflection is not None and len(state.queue) else None
    if progress is None:
        discard = sum(1 for i in state.queue.index if i < 0)
        progress = Progress(stage1_windows(cfg, state.queue.groups(), len(state.outputs), N, discard), callback)
    calls0 = progress.window
    ctx = _ctx(denoiser, sigmas, cfg, prompts, progress, "zigzag", N)
    fifo = cfg.mode == "fifo"
    keep = history_needed(cfg.window_length, cfg.stride, m, cfg.zigzag_width)  # >= 1 since f0 >= s + m + 1
    queue, history, stats, next_index = state.queue, state.history, state.reflection, state.next_index
    chunks, done = [state.outputs], len(state.outputs)  # concatenated once at the end
    while done < N and len(queue):
        if geometry is not None:
            queue, stats = reflect(ctx, queue, reflection, geometry, stats, num_guidance=m, frames_done=done)
        queue = queue_pass(ctx, queue, history, num_guidance=m, frames_done=done)
        level, head = queue.groups()[0]
        assert level == (0 if fifo else cfg.unified_steps), "the head group leaves at level u [D4]"
        out, queue = queue.frames(slice(0, head)).copy(), queue.frames(slice(head, None))  # copy: outputs outlive the pass
        # FIFO shows its history to the model at level 1, as the official code does its pad [D4]
        history = (history + (out.with_levels([1] * head) if fifo else out)).frames(slice(-keep, None))
        if fifo:  # its first T - f0 outputs (negative indices) are discarded
            out = out.frames([i for i, idx in enumerate(out.index) if idx >= 0])
        chunks.append(out)
        done += len(out)
        add = 1 if fifo else cfg.zigzag_width
        queue = queue + fresh_latents(cfg.seed, Stream.FRESH, range(next_index, next_index + add), sigmas, queue.x)
        next_index += add
    outputs = LatentRun.cat(chunks)
    empty = LatentRun.empty_like(outputs.x)
    return replace(state, queue=empty, history=empty, outputs=outputs.frames(slice(0, N)), next_index=next_index,
                   reflection=stats, num_windows=state.num_windows + progress.window - calls0)


def unified_stage(
    denoiser: Denoiser,
    state: MigaQueue,
    *,
    prompts: PromptSchedule | None = None,
    callback: Callback | None = None,
    progress: Progress | None = None,
) -> MigaQueue:
    """Stage 2, unified denoising (Eq. 4, Alg. 5 lines 16-26; SPEC D4).

    All N outputs share level k; for k = u..1 one Phi over all of them (no guidance, no
    reflection, no history before latent 0).

    Returns:
        A state whose ``outputs`` are N clean latents (level 0); ``outputs.x`` is ``[B, C, N, H, W]``.
    Raises:
        InvalidConfigError: the stage-1 outputs are missing or not at one level.
    """
    out = state.outputs
    if len(out) != state.num_frames or len(set(out.level)) > 1:
        raise InvalidConfigError(bad_value("state.outputs", f"{len(out)} latents at levels {sorted(set(out.level))}",
                                           f"{state.num_frames} latents at one level", "run zigzag_stage on the queue first"))
    level = out.level[0] if len(out) else 0
    if progress is None:
        progress = Progress(level * math.ceil(len(out) / state.config.stride), callback)
    ctx = _ctx(denoiser, state.sigmas, state.config, prompts, progress, "unified", state.num_frames)
    empty = LatentRun.empty_like(out.x)
    calls0 = progress.window
    for _ in range(level):
        out = queue_pass(ctx, out, empty, frames_done=state.num_frames)
    return replace(state, outputs=out, num_windows=state.num_windows + progress.window - calls0)


def stage1_windows(config: MigaConfig, groups: list[tuple[int, int]], num_out: int, num_frames: int, num_discard: int = 0) -> int:
    """Model calls stage 1 makes from a queue of ``(level, count)`` groups, without self-reflection.

    ``num_discard``: FIFO latents still to come out that are discarded (negative indices).
    """
    s = config.stride
    length = sum(c for _, c in groups)
    if config.mode == "fifo":
        return max(0, num_frames - num_out + num_discard) * math.ceil(length / s) if length else 0
    calls = 0
    groups = list(groups)
    while num_out < num_frames and groups:
        calls += math.ceil(sum(c for _, c in groups) / s)
        num_out += groups.pop(0)[1]
        groups.append((groups[-1][0] + 1 if groups else 0, config.zigzag_width))
    return calls


def init_windows(config: MigaConfig, T: int, *, has_initial_clip: bool = False) -> int:
    """Model calls of :func:`initialize_queue`: the default initial clip (T) and the Alg. 4 passes."""
    f0, Lz, u, s = config.window_length, config.zigzag_width, config.unified_steps, config.stride
    if config.mode == "miga" and u == T:
        return 0
    calls = 0 if has_initial_clip else T
    if config.mode == "fifo":
        return calls
    n_zig = math.ceil(f0 / Lz)
    return calls + sum(math.ceil((f0 + (r + 1) * Lz) / s) for r in range(T - n_zig - (u + 1)))


def unified_windows(config: MigaConfig, num_frames: int) -> int:
    """Model calls of :func:`unified_stage`: u passes over the N outputs (FIFO mode has no unified stage) [D4]."""
    return 0 if config.mode == "fifo" else config.unified_steps * math.ceil(num_frames / config.stride)


def planned_windows(config: MigaConfig, T: int, num_frames: int, *, has_initial_clip: bool = False) -> int:
    """Model calls (windows) of a whole run, without self-reflection's extra search.

    Guidance changes which latents a window reads, never how many windows there are [D1].
    """
    f0, Lz, u, s, N = config.window_length, config.zigzag_width, config.unified_steps, config.stride, num_frames
    calls = init_windows(config, T, has_initial_clip=has_initial_clip)
    if config.mode == "miga" and u == T:
        return unified_windows(config, N)
    if config.mode == "fifo":
        return calls + (N + T - f0) * math.ceil(T / s)
    n_zig = math.ceil(f0 / Lz)
    groups = [(u + 1 + g, min(Lz, f0 - g * Lz)) for g in range(n_zig)] + [(k, Lz) for k in range(u + 1 + n_zig, T + 1)]
    return calls + stage1_windows(config, groups, 0, N) + unified_windows(config, N)
