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
from .latents import LatentRun, TailSource
from .noise import KeyedNoise, NoiseDraw, NoiseSource, Stream, add_noise, mix_key
from .passes import PassContext, queue_pass
from .plan import RunPlan
from .protocols import Callback, Denoiser, Progress
from .reflection import ReflectionStats, reflect, reflect_build
from .samplers import check_sampler_ladder

__all__ = ["MigaQueue", "QueueStart", "initialize_queue", "zigzag_stage", "unified_stage", "refine_stage", "progress_of",
           "INITIALIZERS"]


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
        noise: where the run's noise comes from (None: :class:`~miga_core.noise.KeyedNoise` of the seed) [D1b, D7].
        clip_last: ``[B, C, 1, H, W]`` the initial clip's last latent (new latents' content with ``fresh_content="clip_last"``).
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
    noise: NoiseSource | None = None
    clip_last: torch.Tensor | None = None

    @property
    def noise_source(self) -> NoiseSource:
        """:attr:`noise`, or the keyed default of the run's seed [D1b]."""
        return self.noise if self.noise is not None else KeyedNoise(self.plan.config.seed)

    def tails(self) -> TailSource:
        """What new tail latents are made of (``fresh_content``, REFERENCE item 11) [D7]."""
        cfg = self.plan.config
        return TailSource(self.noise_source, self.sigmas, cfg.fresh_content, self.clip_last, cfg.parameterization)

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
    return PassContext(denoiser, sigmas, kw.pop("config", plan.config), plan.prompts, progress, stage, plan.num_frames,
                       guidance_rule=plan.guidance_rule, **kw)


def progress_of(plan: RunPlan, stages: tuple[str, ...], callback: Callback | None) -> Progress:
    """A :class:`Progress` over the planned windows of ``stages`` (with the self-reflection checks when stage 1 is one)."""
    checking = "init" if plan.reflection is not None and plan.reflection.phase == "build" else "zigzag"
    return Progress({k: plan.calls[k] for k in stages}, callback, checks=plan.num_checks if checking in stages else 0,
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


def _sample_initial_clip(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, like: torch.Tensor, progress: Progress,
                        noise: NoiseSource) -> torch.Tensor:
    """The default initial clip: plain sampling of ``window_length`` latents over the ladder [D4].

    One window of f0 latents per step, all at one level, with the run's sampler, the prompt of
    latent 0 and its own noise stream. Returns ``[B, C, f0, H, W]`` clean latents.
    """
    f0 = plan.config.window_length
    one_window = plan.config.with_(window_stride=f0, update="lookahead", borders="fixed")
    ctx = _context(denoiser, sigmas, plan, progress, "initial_clip", config=one_window,
                   ancestral_stream=mix_key(Stream.INITIAL_CLIP, Stream.ANCESTRAL), noise=noise)
    T = plan.num_steps
    run = TailSource(noise, sigmas)(NoiseDraw("initial_clip", "initial_clip", Stream.INITIAL_CLIP, tuple(range(f0)), (T,) * f0), like)
    empty = LatentRun.empty_like(like)
    for _ in range(plan.num_steps):
        run = queue_pass(ctx, run, empty)
    return run.x


def _renoised(plan: RunPlan, sigmas: torch.Tensor, clip: torch.Tensor, frames: list[int], levels: list[int],
              indices: list[int], noise_source: NoiseSource | None = None) -> LatentRun:
    """Initial-clip latents ``frames`` noised to ``levels`` (Alg. 1 / Alg. 4), keyed by absolute ``indices`` [D1b]."""
    B, C, _, H, W = clip.shape
    source = noise_source or KeyedNoise(plan.config.seed)
    noise = source(NoiseDraw("renoise", "init", Stream.RENOISE, tuple(indices), tuple(levels)), (B, C, H, W), clip.dtype, clip.device)
    x = add_noise(clip[:, :, frames], noise, sigma_of_levels(sigmas, levels), plan.config.parameterization)
    return LatentRun.fresh(x, levels, indices)


def _init_miga(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, state: MigaQueue, clip: torch.Tensor,
               progress: Progress) -> MigaQueue:
    """Alg. 4 with the floor fix [D4a]: the initial clip renoised in groups, then grown pass by pass to ``plan.init_groups``.

    ``build_length="official"`` (REFERENCE A1.4): the plan's (fewer) passes and the last group only if its build broke;
    ``build_reads="gauss_seidel"``: guidance read as earlier windows of the pass left it; ``phase="build"``
    self-reflection after the passes of ``plan.check_passes`` [D7].
    """
    cfg = plan.config
    f0, Lz, T = cfg.window_length, cfg.zigzag_width, plan.num_steps
    passes = plan.init_passes  # each pass moves the clip one level down: it starts at T - n_zig + floor(i / L_zig)
    levels = [k + passes for k, c in plan.init_groups for _ in range(c)][:f0]
    state = replace(state, clip_last=clip[:, :, -1:])
    queue = _renoised(plan, sigmas, clip, list(range(f0)), levels, list(range(f0)), state.noise_source)
    ctx = _context(denoiser, sigmas, plan, progress, "init", noise=state.noise)
    tails, stats = state.tails(), state.reflection
    empty, next_index = LatentRun.empty_like(clip), f0
    gauss_seidel = cfg.build_reads == "gauss_seidel"

    def group(start: int) -> LatentRun:
        return tails(NoiseDraw("fresh", "init", Stream.FRESH, tuple(range(start, start + Lz)), (T,) * Lz), clip)

    for p in range(passes):
        queue = queue + group(next_index)
        next_index += Lz
        queue = queue_pass(replace(ctx, pass_index=p, borders="fixed", gauss_seidel=gauss_seidel), queue, empty,
                           num_guidance=plan.num_guidance)
        if p in plan.check_passes:
            queue, stats = reflect_build(ctx, queue, plan, stats, build_pass=p, tails=tails)
    if len(queue) < sum(c for _, c in plan.init_groups):  # the paper's last group; official: only when its build broke
        queue = queue + group(next_index)
        next_index += Lz
    assert queue.groups() == list(plan.init_groups), "the initialized queue must match the plan [D4]"
    return replace(state, queue=queue, next_index=next_index, reflection=stats)


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
    M, T = plan.stage1_frames, plan.num_steps
    fresh = TailSource(state.noise_source, sigmas)(NoiseDraw("fresh", "init", Stream.FRESH, tuple(range(M)), (T,) * M), like)
    return replace(state, outputs=fresh, next_index=M)


class QueueStart(TypedDict, total=False):
    """What :func:`initialize_queue` starts from (keywords of :func:`~miga_core.pipeline.run` and ``generate`` too).

    Keys:
        initial_clip: ``[B, C, f0, H, W]`` clean latents, when the plan has one (continuation).
        latent_shape: ``(B, C, H, W)`` of the latents when there is no initial clip (one is sampled).
        dtype / device: of the latents sampled from ``latent_shape`` (default float32 on the CPU).
        noise: where the run's noise comes from (:class:`~miga_core.noise.NoiseSource`; None: keyed noise of the seed) [D7].
    """

    initial_clip: torch.Tensor | None
    latent_shape: tuple[int, int, int, int] | None
    dtype: torch.dtype
    device: torch.device | str
    noise: NoiseSource | None


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
    noise: NoiseSource | None = None,
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
        noise: the run's :class:`~miga_core.noise.NoiseSource` (None: :class:`~miga_core.noise.KeyedNoise` of the seed);
            it travels in the state to the later stages [D1b, D7].
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
    state = MigaQueue(plan, sigmas, empty, empty, empty, 0, noise=noise)
    clip = like
    if plan.calls["initial_clip"]:
        clip = _sample_initial_clip(denoiser, sigmas, plan, like, progress, state.noise_source)
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
    M, cfg, T = plan.stage1_frames, plan.config, plan.num_steps
    official = cfg.build_length == "official" and plan.variant == "miga"
    progress = progress or progress_of(plan, ("zigzag",), callback)
    mark = _mark(progress)
    ctx = _context(denoiser, sigmas, plan, progress, "zigzag", noise=state.noise)
    tails = state.tails()
    queue, history, stats, next_index = state.queue, state.history, state.reflection, state.next_index
    chunks, done = [state.outputs], len(state.outputs)  # concatenated once at the end
    check = plan.reflection is not None and plan.reflection.phase == "stage1"
    popping, n_pass = False, 0
    while done < M and len(queue):
        if check:
            queue, stats = reflect(ctx, queue, plan, stats, frames_done=done, tails=tails)
        queue = queue_pass(replace(ctx, pass_index=n_pass), queue, history, num_guidance=plan.num_guidance, frames_done=done)
        n_pass += 1
        level, head = queue.groups()[0]
        if official and level != plan.exit_level:  # the head has not reached the exit level: nothing leaves (REFERENCE A1.8)
            popping = popping or level <= plan.exit_level + 1
            add = plan.group_width if popping and queue.level[-1] >= T - 1 else 0
        else:
            assert level == plan.exit_level, "the head group leaves at the plan's exit level [D4]"
            out, queue = queue.frames(slice(0, head)).copy(), queue.frames(slice(head, None))  # copy: outputs outlive the pass
            if plan.history_size:
                shown = out if plan.history_level is None else out.with_levels([plan.history_level] * head)  # FIFO: level 1 [D4]
                history = (history + shown).frames(slice(-plan.history_size, None))
            out = out.frames([i for i, idx in enumerate(out.index) if idx >= 0])
            chunks.append(out)
            done += len(out)
            popping = True
            add = plan.group_width if not official or (len(queue) and queue.level[-1] >= T - 1) else 0
        if add:
            queue = queue + tails(NoiseDraw("fresh", "zigzag", Stream.FRESH, tuple(range(next_index, next_index + add)), (T,) * add), queue.x)
            next_index += add
    assert n_pass == len(plan.stage1_passes), "stage 1 must run the plan's passes [D4]"
    outputs = LatentRun.cat(chunks)
    empty = LatentRun.empty_like(outputs.x)
    return replace(state, queue=empty, history=empty, outputs=outputs.frames(slice(0, M)), next_index=next_index,
                   reflection=stats).counted(progress, *mark)


def unified_stage(denoiser: Denoiser, state: MigaQueue, *, callback: Callback | None = None, progress: Progress | None = None,
                  refine: bool = True) -> MigaQueue:
    """Stage 2, unified denoising (Eq. 4, Alg. 5 lines 16-26; [D4]), then :func:`refine_stage` (``refine=True``).

    All stage-1 outputs (``plan.stage1_frames``) share the plan's exit level u; for u..1 one Phi over all of
    them (no guidance, no reflection, no history before latent 0). ``stage2_history="reset"`` drops the multistep
    state first; ``official_stage2_mislabel`` labels the latents u+1, so stage 2 ends at level 1 (REFERENCE A1.9) [D7].

    Returns:
        A state whose ``outputs`` are the N clean latents ``[B, C, N, H, W]`` (``refine=False``: the stage-2 output,
        ``plan.stage1_frames`` latents before the refinement and the trim).
    Raises:
        InvalidConfigError: the stage-1 outputs are missing or not at the exit level.
    """
    plan, out, cfg = state.plan, state.outputs, state.plan.config
    M, u = plan.stage1_frames, plan.exit_level
    if len(out) != M or set(out.level) != {u}:
        raise InvalidConfigError(bad_value("state.outputs", f"{len(out)} latents at levels {sorted(set(out.level))}",
                                           f"{M} latents at level {u}", "run zigzag_stage on the queue first"))
    progress = progress or progress_of(plan, ("unified", "refine") if refine else ("unified",), callback)
    mark = _mark(progress)
    ctx = _context(denoiser, state.sigmas, plan, progress, "unified", noise=state.noise)
    empty = LatentRun.empty_like(out.x)
    if cfg.stage2_history == "reset":  # REFERENCE A1.9: fresh solver states
        out = out.without_history()
    if cfg.official_stage2_mislabel:  # the released code's off-by-one (item 13): the latents are told level u + 1
        out = out.with_levels([u + 1] * M)
    for i in range(u):
        out = queue_pass(replace(ctx, pass_index=i), out, empty, frames_done=plan.num_frames)
    state = replace(state, outputs=out).counted(progress, *mark)
    return refine_stage(denoiser, state, progress=progress) if refine else state


def refine_stage(denoiser: Denoiser, state: MigaQueue, *, callback: Callback | None = None, progress: Progress | None = None) -> MigaQueue:
    """The released code's refinement and trim (REFERENCE A1.10, A1.11, items 1, 10) [D7]; nothing when both are off.

    With ``r = refine_steps > 0``: the stage-2 output (taken as finished, also when the mislabel left it at level 1)
    is re-noised to level r with fresh noise, ``add_noise(x, eps, sigmas[T - r])``, its multistep state dropped, then
    r unified passes take it to level 0. Then the last ``trim_tail`` latents are dropped.

    Returns:
        A state whose ``outputs`` are the N clean latents ``[B, C, N, H, W]``.
    Raises:
        InvalidConfigError: the outputs are not the stage-2 output (``plan.stage1_frames`` latents at its end level).
    """
    plan, out, cfg = state.plan, state.outputs, state.plan.config
    M, r = plan.stage1_frames, cfg.refine_steps
    end = 1 if cfg.official_stage2_mislabel else 0
    if len(out) != M or set(out.level) != {end}:
        raise InvalidConfigError(bad_value("state.outputs", f"{len(out)} latents at levels {sorted(set(out.level))}",
                                           f"{M} latents at level {end}", "run unified_stage(refine=False) first"))
    progress = progress or progress_of(plan, ("refine",), callback)
    mark = _mark(progress)
    if r:
        sigma = sigma_of_levels(state.sigmas, [r] * M).to(out.x.dtype)
        eps = state.noise_source(NoiseDraw("refine", "refine", Stream.REFINE, out.index, (r,) * M),
                                 (out.x.shape[0], out.x.shape[1], *out.x.shape[3:]), out.x.dtype, out.x.device)
        out = LatentRun.fresh(add_noise(out.x, eps, sigma, cfg.parameterization), [r] * M, out.index)
        ctx = _context(denoiser, state.sigmas, plan, progress, "refine", noise=state.noise)
        empty = LatentRun.empty_like(out.x)
        for i in range(r):
            out = queue_pass(replace(ctx, pass_index=i), out, empty, frames_done=plan.num_frames)
    if M != plan.num_frames:  # trim_tail (REFERENCE A1.11)
        out = out.frames(slice(0, plan.num_frames))
    return replace(state, outputs=out).counted(progress, *mark)
