"""The composable stages: queue initialization, zigzag stage, unified stage [D4].

Each stage takes and returns an immutable :class:`MigaQueue` that carries the run plan, so
hosts can run the stages as separate nodes and the options cannot diverge between them.
The variants (MIGA, FIFO-Diffusion, unified stage only) differ in their initializer
(:data:`INITIALIZERS`) and in the queue rules their plan resolves; the stage loops are shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TypedDict

import torch

from .errors import InvalidConfigError, InvalidInitialClipError, MigaTypeError, bad_value
from .ladder import check_ladder, num_steps, sigma_of_levels, signal_scale
from .latents import LatentRun, TailSource
from .noise import KeyedNoise, NoiseDraw, NoiseSource, Stream, add_noise, mix_key
from .passes import PassContext, queue_pass
from .plan import STAGES, RunPlan
from .protocols import Callback, Denoiser, Progress
from .reflection import ReflectionStats, reflect, reflect_build
from .samplers import check_sampler_ladder
from .stream import Spill, SpilledRun, first_frames, per_chunk, refuse_checkpoint, stream_pass

__all__ = ["MigaQueue", "QueueStart", "Position", "RunPoint", "CheckpointHook", "initialize_queue", "finish_initialization",
           "zigzag_stage", "unified_stage", "refine_stage", "progress_of", "INITIALIZERS"]


@dataclass(frozen=True)
class Position:
    """Where a run stands inside a stage, between two of its passes (what a checkpoint resumes from).

    Attributes:
        stage: one of :data:`~miga_core.plan.STAGES`.
        passes: passes of that stage done (its loop continues with pass ``passes``).
        popping: zigzag stage with ``build_length="official"``: whether a group has left the queue yet (REFERENCE A1.8).
    """

    stage: str
    passes: int
    popping: bool = False


@dataclass(frozen=True)
class MigaQueue:
    """The state handed from stage to stage.

    Attributes:
        plan: the run plan (options, guidance, self-reflection, prompts, planned calls).
        sigmas: the ladder ``[T + 1]``.
        queue: Q (empty before stage 1 in unified-only runs, and after stage 1).
        history: C, the most recent outputs kept as context [D1].
        outputs: stage-1 outputs so far, video order, all at the plan's exit level (u; FIFO: 0); a
            :class:`~miga_core.stream.SpilledRun` (in files) when the run streams (``spill``).
        next_index: absolute index of the next fresh latent.
        reflection: self-reflection counters [D5].
        num_windows: windows run so far (search included).
        model_calls: denoiser invocations so far (a call holds up to ``window_batch`` windows).
        noise: where the run's noise comes from (None: :class:`~miga_core.noise.KeyedNoise` of the seed) [D1b, D7].
        clip_last: ``[B, C, 1, H, W]`` the initial clip's last latent (new latents' content with ``fresh_content="clip_last"``).
        at: None between stages; a :class:`Position` when the state was taken inside a stage (a checkpoint): the
            runs then hold that stage's loop state (``"initial_clip"``: ``queue`` is the clip being sampled; ``"zigzag"``:
            ``outputs`` are the latents out so far) and the stage functions continue from it.
        spill: None (the latents stay in memory), or where a streamed run keeps the stage-1 outputs and the unified
            stage's latents (:class:`~miga_core.stream.Spill`; ``run(..., sink=...)``): memory then does not grow with N.
    """

    plan: RunPlan
    sigmas: torch.Tensor
    queue: LatentRun
    history: LatentRun
    outputs: LatentRun | SpilledRun
    next_index: int
    reflection: ReflectionStats = field(default_factory=ReflectionStats)
    num_windows: int = 0
    model_calls: int = 0
    noise: NoiseSource | None = None
    clip_last: torch.Tensor | None = None
    at: Position | None = None
    spill: Spill | None = None

    @property
    def noise_source(self) -> NoiseSource:
        """:attr:`noise`, or the keyed default of the run's seed [D1b]."""
        return self.noise if self.noise is not None else KeyedNoise(self.plan.config.seed)

    def tails(self) -> TailSource:
        """What new tail latents are made of (``fresh_content``, REFERENCE item 11) [D7]."""
        cfg = self.plan.config
        return TailSource(self.noise_source, self.sigmas, cfg.fresh_content, self.clip_last, cfg.parameterization, cfg.tail_noise,
                          cfg.scale_arr)

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


@dataclass(frozen=True)
class RunPoint:
    """A run between two passes: everything a resume needs (see :mod:`miga_core.checkpoint`).

    Attributes:
        state: the state, ``at`` set to the stage and pass (its ``num_windows``/``model_calls`` count up to here).
        progress: :meth:`~miga_core.protocols.Progress.counters` at that point (the resumed bar continues from them).
    """

    state: MigaQueue
    progress: Mapping[str, int]


#: Called after every pass of every stage with a zero-argument function that builds the :class:`RunPoint` of that
#: moment (its values are bound already; building it concatenates the stage-1 outputs so far, so call it only to
#: save). :class:`miga_core.checkpoint.Checkpointer` is one.
CheckpointHook = Callable[[Callable[[], RunPoint]], None]


@dataclass(frozen=True)
class _Saver:
    """Offers the hook the state after each pass of one stage, counted since ``mark`` (the stage's start)."""

    hook: CheckpointHook | None
    progress: Progress
    mark: tuple[int, int]

    def __call__(self, make: Callable[[], MigaQueue]) -> None:
        if self.hook is None:
            return
        windows, calls = _mark(self.progress)
        dw, dc, counters = windows - self.mark[0], calls - self.mark[1], self.progress.counters()

        def point() -> RunPoint:
            s = make()
            return RunPoint(replace(s, num_windows=s.num_windows + dw, model_calls=s.model_calls + dc), counters)

        self.hook(point)


def _inside(state: MigaQueue, stages: tuple[str, ...]) -> Position | None:
    """The state's position when it lies inside one of ``stages``; None when it starts them (``at`` None).

    Raises:
        InvalidConfigError: the state lies inside an earlier stage (run that one first).
    """
    at = state.at
    if at is None or at.stage in stages:
        return at
    if STAGES.index(at.stage) < STAGES.index(stages[0]):
        raise InvalidConfigError(bad_value("state.at", at, f"None or a position in {stages} or later",
                                           f"finish stage {at.stage!r} first (run() resumes every stage in order)"))
    return at


def _later(state: MigaQueue, stage: str) -> bool:
    """Whether the state lies inside a stage after ``stage`` (a resumed run passes ``stage`` by)."""
    return state.at is not None and STAGES.index(state.at.stage) > STAGES.index(stage)


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


def _sample_initial_clip(denoiser: Denoiser, state: MigaQueue, like: torch.Tensor, progress: Progress, save: _Saver) -> torch.Tensor:
    """The default initial clip: plain sampling of ``window_length`` latents over the ladder [D4].

    One window of f0 latents per step, all at one level, with the run's sampler, the prompt of
    latent 0 and its own noise stream. Returns ``[B, C, f0, H, W]`` clean latents.
    """
    plan, sigmas, noise = state.plan, state.sigmas, state.noise_source
    f0 = plan.config.window_length
    one_window = plan.config.with_(window_stride=f0, update="lookahead", borders="fixed")
    ctx = _context(denoiser, sigmas, plan, progress, "initial_clip", config=one_window,
                   ancestral_stream=mix_key(Stream.INITIAL_CLIP, Stream.ANCESTRAL), noise=noise)
    T = plan.num_steps
    if state.at is not None:  # resumed: the clip so far is in the queue
        run, start = state.queue, state.at.passes
    else:
        run, start = TailSource(noise, sigmas, tail_noise=plan.config.tail_noise)(NoiseDraw("initial_clip", "initial_clip", Stream.INITIAL_CLIP, tuple(range(f0)), (T,) * f0), like), 0
    empty = LatentRun.empty_like(like)
    for k in range(start, T):
        run = queue_pass(ctx, run, empty)
        save(partial(replace, state, queue=run, at=Position("initial_clip", k + 1)))
    return run.x


def _renoised(plan: RunPlan, sigmas: torch.Tensor, clip: torch.Tensor, frames: list[int], levels: list[int],
              indices: list[int], noise_source: NoiseSource | None = None) -> LatentRun:
    """Initial-clip latents ``frames`` noised to ``levels`` (Alg. 1 / Alg. 4), keyed by absolute ``indices`` [D1b]."""
    B, C, _, H, W = clip.shape
    source = noise_source or KeyedNoise(plan.config.seed)
    noise = source(NoiseDraw("renoise", "init", Stream.RENOISE, tuple(indices), tuple(levels)), (B, C, H, W), clip.dtype, clip.device)
    x = add_noise(clip[:, :, frames], noise, sigma_of_levels(sigmas, levels), plan.config.parameterization, _scales(plan, sigmas, levels))
    return LatentRun.fresh(x, levels, indices)


def _scales(plan: RunPlan, sigmas: torch.Tensor, levels: list[int] | tuple[int, ...]) -> torch.Tensor | None:
    """The signal scale of each of ``levels`` (``MigaConfig.scale_arr``; None: dropped) [D7]."""
    scales = signal_scale(sigmas, plan.config.scale_arr)
    return None if scales is None else sigma_of_levels(scales, levels)


def _init_miga(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, state: MigaQueue, clip: torch.Tensor,
               progress: Progress, save: _Saver) -> MigaQueue:
    """Alg. 4 with the floor fix [D4a]: the initial clip renoised in groups, then grown pass by pass to ``plan.init_groups``.

    ``build_length="official"`` (REFERENCE A1.4): the plan's (fewer) passes and the last group only if its build broke;
    ``build_reads="gauss_seidel"``: guidance read as earlier windows of the pass left it; ``phase="build"``
    self-reflection after the passes of ``plan.check_passes`` [D7]. A state ``at`` an init pass continues from it.
    """
    cfg = plan.config
    f0, Lz, T = cfg.window_length, cfg.zigzag_width, plan.num_steps
    passes = plan.init_passes  # each pass moves the clip one level down: it starts at T - n_zig + floor(i / L_zig)
    if state.at is not None and state.at.stage == "init":  # resumed after pass state.at.passes - 1
        queue, next_index, first = state.queue, state.next_index, state.at.passes
        clip = queue.x  # only its batch, channels, size, dtype and device are used from here on
    else:
        levels = [k + passes for k, c in plan.init_groups for _ in range(c)][:f0]
        state = replace(state, clip_last=clip[:, :, -1:])
        queue = _renoised(plan, sigmas, clip, list(range(f0)), levels, list(range(f0)), state.noise_source)
        next_index, first = f0, 0
    ctx = _context(denoiser, sigmas, plan, progress, "init", noise=state.noise)
    tails, stats = state.tails(), state.reflection
    empty = LatentRun.empty_like(clip)
    gauss_seidel = cfg.build_reads == "gauss_seidel"

    def group(start: int) -> LatentRun:
        return tails(NoiseDraw("fresh", "init", Stream.FRESH, tuple(range(start, start + Lz)), (T,) * Lz), clip)

    for p in range(first, passes):
        queue = queue + group(next_index)
        next_index += Lz
        queue = queue_pass(replace(ctx, pass_index=p, borders="fixed", gauss_seidel=gauss_seidel), queue, empty,
                           num_guidance=plan.num_guidance)
        if p in plan.check_passes:
            queue, stats = reflect_build(ctx, queue, plan, stats, build_pass=p, tails=tails)
        save(partial(replace, state, queue=queue, next_index=next_index, reflection=stats, at=Position("init", p + 1)))
    if len(queue) < sum(c for _, c in plan.init_groups):  # the paper's last group; official: only when its build broke
        queue = queue + group(next_index)
        next_index += Lz
    assert queue.groups() == list(plan.init_groups), "the initialized queue must match the plan [D4]"
    return replace(state, queue=queue, next_index=next_index, reflection=stats)


def _init_fifo(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, state: MigaQueue, clip: torch.Tensor,
               progress: Progress, save: _Saver) -> MigaQueue:
    """FIFO-Diffusion's queue (Alg. 1) [D4]: position p (level p+1) holds initial latent ``max(0, p - (T - f0))`` renoised;
    with ``update="lookahead"`` a left pad of ``f0 - s`` copies of latent 0 at level 1 is its history."""
    cfg, T = plan.config, plan.num_steps
    offset = -plan.head_index  # T - f0: queue position p holds absolute index p - offset; indices < 0 are discarded
    queue = _renoised(plan, sigmas, clip, [max(0, p - offset) for p in range(T)], [p + 1 for p in range(T)], [p - offset for p in range(T)],
                      state.noise_source)
    pad = cfg.window_length - cfg.stride if cfg.update == "lookahead" else 0
    history = _renoised(plan, sigmas, clip, [0] * pad, [1] * pad, list(range(-offset - pad, -offset)), state.noise_source)
    return replace(state, queue=queue, history=history, next_index=T - offset)


def _init_unified_only(denoiser: Denoiser, sigmas: torch.Tensor, plan: RunPlan, state: MigaQueue, like: torch.Tensor,
                       progress: Progress, save: _Saver) -> MigaQueue:
    """Alg. 8: N latents of fresh noise at level T go straight to the unified stage."""
    M, T = plan.stage1_frames, plan.num_steps
    tails = TailSource(state.noise_source, sigmas, tail_noise=plan.config.tail_noise)

    def fresh(a: int, b: int) -> LatentRun:
        return tails(NoiseDraw("fresh", "init", Stream.FRESH, tuple(range(a, b)), (T,) * (b - a)), like)

    if state.spill is None:
        return replace(state, outputs=fresh(0, M), next_index=M)
    outputs, n = state.spill.store(like), state.spill.chunk_frames  # streamed: the noise is keyed per latent [D1b]
    for a in range(0, M, n):
        outputs.append(fresh(a, min(a + n, M)))
    return replace(state, outputs=outputs, next_index=M)


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


#: ``(denoiser, sigmas, plan, state, clip, progress, save) -> state``; ``save`` offers the state after each pass to the checkpoint hook.
Initializer = Callable[[Denoiser, torch.Tensor, RunPlan, MigaQueue, torch.Tensor, Progress, _Saver], MigaQueue]
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
    checkpoint: CheckpointHook | None = None,
    spill: Spill | None = None,
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
        checkpoint: called after every pass (:data:`CheckpointHook`).
        spill: None, or where a streamed run keeps its stage-1 outputs (:class:`~miga_core.stream.Spill`); it travels
            in the state to the later stages, whose outputs are then :class:`~miga_core.stream.SpilledRun` values.
    Raises:
        MigaError subclasses for an invalid ladder, clip or shape, before any model call;
        InvalidConfigError: ``checkpoint`` with ``spill``.
    """
    refuse_checkpoint(spill, checkpoint)
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
    empty = LatentRun.empty_like(like)
    state = MigaQueue(plan, sigmas, empty, empty, empty, 0, noise=noise, spill=spill)
    return _initialize(denoiser, state, like, progress, checkpoint)


def _initialize(denoiser: Denoiser, state: MigaQueue, like: torch.Tensor, progress: Progress, hook: CheckpointHook | None) -> MigaQueue:
    """The initial clip (unless given) and the variant's initializer, from the start or from ``state.at``."""
    plan, at = state.plan, state.at
    save = _Saver(hook, progress, _mark(progress))
    clip = like
    if plan.calls["initial_clip"] and (at is None or at.stage == "initial_clip"):
        clip = _sample_initial_clip(denoiser, state, like, progress, save)
        state = replace(state, queue=LatentRun.empty_like(like), at=None)
    state = INITIALIZERS[plan.variant](denoiser, state.sigmas, plan, state, clip, progress, save)
    return replace(state, at=None).counted(progress, *save.mark)


def finish_initialization(denoiser: Denoiser, state: MigaQueue, *, progress: Progress, checkpoint: CheckpointHook | None = None) -> MigaQueue:
    """Continue :func:`initialize_queue` from a state taken inside it (``state.at`` in ``"initial_clip"``/``"init"``);
    any other state is returned as it is (it lies past the initialization).

    Args:
        progress: the run's progress, restored to the checkpoint's counters.  checkpoint: as in :func:`initialize_queue`.
    """
    if state.at is None or state.at.stage not in ("initial_clip", "init"):
        return state
    return _initialize(denoiser, state, state.queue.x[:, :, :0], progress, checkpoint)


def zigzag_stage(denoiser: Denoiser, state: MigaQueue, *, callback: Callback | None = None, progress: Progress | None = None,
                 checkpoint: CheckpointHook | None = None) -> MigaQueue:
    """Stage 1, zigzag denoising (Alg. 5, with Alg. 6 and Alg. 7; [D3, D4, D5]).

    Repeat until N latents are out: self-reflection check (if the plan has it), Phi with
    guidance, dequeue the head group (now at the plan's exit level: u, FIFO 0) into the outputs
    and the history, append ``group_width`` fresh latents at level T. Latents with a negative
    index (FIFO's first ``T - f0``) are discarded.

    A state ``at`` a zigzag pass (a checkpoint) continues from it; one inside a later stage is returned as it is.
    ``checkpoint`` is called after every pass (:data:`CheckpointHook`). A streamed state (``state.spill``) appends
    the outputs to a :class:`~miga_core.stream.SpilledRun` as they leave the queue.

    Returns:
        A new state whose ``outputs`` are the first N latents at the exit level; ``queue`` is emptied.
    Raises:
        InvalidConfigError: the state lies inside the initialization (:func:`finish_initialization` first);
            ``checkpoint`` with a streamed state.
    """
    refuse_checkpoint(state.spill, checkpoint)
    if _later(state, "zigzag"):
        return state
    at = _inside(state, ("zigzag",))
    plan, sigmas = state.plan, state.sigmas
    M, cfg, T = plan.stage1_frames, plan.config, plan.num_steps
    official = cfg.build_length == "official" and plan.variant == "miga"
    progress = progress or progress_of(plan, ("zigzag",), callback)
    save = _Saver(checkpoint, progress, _mark(progress))
    ctx = _context(denoiser, sigmas, plan, progress, "zigzag", noise=state.noise)
    tails = state.tails()
    if cfg.stage1_content == "noise":  # vc2-official: stage-1 tail latents are pure noise (REFERENCE A2.5)
        tails = replace(tails, content="noise")
    every_pass = cfg.stage1_append == "every_pass"  # vc2-official: a group after every pass (REFERENCE A2.5)
    queue, history, stats, next_index = state.queue, state.history, state.reflection, state.next_index
    chunks, done = [state.outputs], len(state.outputs)  # concatenated once at the end
    store = state.outputs if isinstance(state.outputs, SpilledRun) else None  # streamed: outputs go to files as they leave
    if store is None and state.spill is not None:
        store = state.spill.store(queue.x)
        store.append(state.outputs)
    check = plan.reflection is not None and plan.reflection.phase == "stage1"
    popping, n_pass = (at.popping, at.passes) if at is not None else (False, 0)
    while done < M and len(queue):
        if check:
            queue, stats = reflect(ctx, queue, plan, stats, frames_done=done, tails=tails)
        queue = queue_pass(replace(ctx, pass_index=n_pass, gauss_seidel=cfg.zigzag_reads == "gauss_seidel"), queue, history,
                           num_guidance=plan.num_guidance, frames_done=done)
        n_pass += 1
        level, head = queue.groups()[0]
        if official and level != plan.exit_level:  # the head has not reached the exit level: nothing leaves (REFERENCE A1.8)
            popping = popping or level <= plan.exit_level + 1
            add = plan.group_width if (queue.level[-1] <= T - 1 if every_pass else popping and queue.level[-1] >= T - 1) else 0
        else:
            assert level == plan.exit_level, "the head group leaves at the plan's exit level [D4]"
            out, queue = queue.frames(slice(0, head)).copy(), queue.frames(slice(head, None))  # copy: outputs outlive the pass
            if plan.history_size:
                shown = out if plan.history_level is None else _shown_at(plan, sigmas, out, plan.history_level)  # FIFO: level 1 [D4]
                history = (history + shown).frames(slice(-plan.history_size, None))
            out = out.frames([i for i, idx in enumerate(out.index) if idx >= 0])
            if store is not None:
                store.append(out)
            else:
                chunks.append(out)
            done += len(out)
            popping = True
            add = plan.group_width if not official or (len(queue) and (queue.level[-1] <= T - 1 if every_pass
                                                                     else queue.level[-1] >= T - 1)) else 0
        if add:
            queue = queue + tails(NoiseDraw("fresh", "zigzag", Stream.FRESH, tuple(range(next_index, next_index + add)), (T,) * add), queue.x)
            next_index += add
        save(partial(_with_outputs, state, tuple(chunks), queue=queue, history=history, next_index=next_index, reflection=stats,
                     at=Position("zigzag", n_pass, popping)))
    assert n_pass == len(plan.stage1_passes), "stage 1 must run the plan's passes [D4]"
    outputs = store if store is not None else LatentRun.cat(chunks)
    empty = LatentRun.empty_like(queue.x)
    return replace(state, queue=empty, history=empty, outputs=first_frames(outputs, M), next_index=next_index,
                   reflection=stats, at=None).counted(progress, *save.mark)


def _shown_at(plan: RunPlan, sigmas: torch.Tensor, run: LatentRun, level: int) -> LatentRun:
    """Outputs relabelled as history at ``level`` (FIFO: level 1, without re-noising, as FIFO-Diffusion) [D4]. With
    ``scale_arr="vc2"`` the signal moves to the level's scale, ``x * s_level / s_content``; the content is at the exit
    level, or at level 1 when ``final_step="identity"`` kept it there [D7]."""
    shown = run.with_levels([level] * len(run))
    scales = signal_scale(sigmas, plan.config.scale_arr)
    if scales is None:
        return shown
    content = 1 if plan.config.final_step == "identity" and plan.exit_level == 0 else plan.exit_level
    factor = float(sigma_of_levels(scales, [level])[0] / sigma_of_levels(scales, [content])[0])
    return shown if factor == 1.0 else replace(shown, x=shown.x * factor)


def _with_outputs(state: MigaQueue, chunks: tuple[LatentRun, ...], **changes) -> MigaQueue:
    return replace(state, outputs=LatentRun.cat(chunks), **changes)


def unified_stage(denoiser: Denoiser, state: MigaQueue, *, callback: Callback | None = None, progress: Progress | None = None,
                  refine: bool = True, checkpoint: CheckpointHook | None = None) -> MigaQueue:
    """Stage 2, unified denoising (Eq. 4, Alg. 5 lines 16-26; [D4]), then :func:`refine_stage` (``refine=True``).

    All stage-1 outputs (``plan.stage1_frames``) share the plan's exit level u; for u..1 one Phi over all of
    them (no guidance, no reflection, no history before latent 0). ``stage2_history="reset"`` drops the multistep
    state first; ``official_stage2_mislabel`` labels the latents u+1, so stage 2 ends at level 1 (REFERENCE A1.9) [D7].

    A state ``at`` a unified pass continues from it; one at a refinement pass goes to :func:`refine_stage`.
    ``checkpoint`` is called after every pass (:data:`CheckpointHook`). Spilled outputs (a streamed run) are passed
    a part at a time (:func:`~miga_core.stream.stream_pass`) and stay spilled.

    Returns:
        A state whose ``outputs`` are the N clean latents ``[B, C, N, H, W]`` (``refine=False``: the stage-2 output,
        ``plan.stage1_frames`` latents before the refinement and the trim).
    Raises:
        InvalidConfigError: the stage-1 outputs are missing or not at the exit level; ``checkpoint`` with a streamed state.
    """
    refuse_checkpoint(state.spill, checkpoint)
    plan, out, cfg = state.plan, state.outputs, state.plan.config
    progress = progress or progress_of(plan, ("unified", "refine") if refine else ("unified",), callback)
    if _later(state, "unified"):
        return refine_stage(denoiser, state, progress=progress, checkpoint=checkpoint) if refine else state
    at = _inside(state, ("unified",))
    M, u = plan.stage1_frames, plan.exit_level
    if at is None and (len(out) != M or set(out.level) != {u}):
        raise InvalidConfigError(bad_value("state.outputs", f"{len(out)} latents at levels {sorted(set(out.level))}",
                                           f"{M} latents at level {u}", "run zigzag_stage on the queue first"))
    save = _Saver(checkpoint, progress, _mark(progress))
    ctx = _context(denoiser, state.sigmas, plan, progress, "unified", noise=state.noise)
    if at is None and (cfg.stage2_history == "reset" or cfg.official_stage2_mislabel):
        out = per_chunk(out, partial(_stage2_start, reset=cfg.stage2_history == "reset",
                                     level=u + 1 if cfg.official_stage2_mislabel else None))
    for i in range(at.passes if at is not None else 0, u):
        out = _whole_pass(replace(ctx, pass_index=i), out, plan.num_frames)
        save(partial(replace, state, outputs=out, at=Position("unified", i + 1)))
    state = replace(state, outputs=out, at=None).counted(progress, *save.mark)
    return refine_stage(denoiser, state, progress=progress, checkpoint=checkpoint) if refine else state


def _whole_pass(ctx: PassContext, run: LatentRun | SpilledRun, frames_done: int) -> LatentRun | SpilledRun:
    """One pass over a whole run with no history (stage 2, refinement): :func:`queue_pass`, or
    :func:`~miga_core.stream.stream_pass` (a part at a time) when the run is spilled."""
    if isinstance(run, SpilledRun):
        return stream_pass(ctx, run, frames_done=frames_done)
    return queue_pass(ctx, run, LatentRun.empty_like(run.x), frames_done=frames_done)


def _stage2_start(run: LatentRun, *, reset: bool, level: int | None) -> LatentRun:
    """Stage 2's input, frame by frame: ``reset`` drops the multistep state (REFERENCE A1.9); ``level`` relabels the
    latents (the released code's off-by-one, item 13: u + 1) [D7]."""
    if reset:  # fresh solver states
        run = run.without_history()
    if level is not None:
        run = run.with_levels([level] * len(run))
    return run


def _refine_start(run: LatentRun, *, state: MigaQueue) -> LatentRun:
    """The refinement's input, frame by frame: re-noised to level r with fresh noise, no multistep state (REFERENCE A1.10) [D7]."""
    cfg, r, n = state.plan.config, state.plan.config.refine_steps, len(run)
    sigma = sigma_of_levels(state.sigmas, [r] * n).to(run.x.dtype)
    eps = state.noise_source(NoiseDraw("refine", "refine", Stream.REFINE, run.index, (r,) * n),
                             (run.x.shape[0], run.x.shape[1], *run.x.shape[3:]), run.x.dtype, run.x.device)
    x = run.x
    if cfg.refine_renoise == "vp":  # vc2-official: the release's add_noise on its VP latent (REFERENCE A2.6)
        x = x / (1 + state.sigmas[-1].to(x.dtype) ** 2).sqrt()
    return LatentRun.fresh(add_noise(x, eps, sigma, cfg.parameterization, _scales(state.plan, state.sigmas, [r] * n)), [r] * n, run.index)


def refine_stage(denoiser: Denoiser, state: MigaQueue, *, callback: Callback | None = None, progress: Progress | None = None,
                 checkpoint: CheckpointHook | None = None) -> MigaQueue:
    """The released code's refinement and trim (REFERENCE A1.10, A1.11, items 1, 10) [D7]; nothing when both are off.

    With ``r = refine_steps > 0``: the stage-2 output (taken as finished, also when the mislabel left it at level 1)
    is re-noised to level r with fresh noise, ``add_noise(x, eps, sigmas[T - r])``, its multistep state dropped, then
    r unified passes take it to level 0. Then the last ``trim_tail`` latents are dropped. A state ``at`` a refinement
    pass continues from it; ``checkpoint`` is called after every pass (:data:`CheckpointHook`).

    Returns:
        A state whose ``outputs`` are the N clean latents ``[B, C, N, H, W]``.
    Raises:
        InvalidConfigError: the outputs are not the stage-2 output (``plan.stage1_frames`` latents at its end level);
            ``checkpoint`` with a streamed state.
    """
    refuse_checkpoint(state.spill, checkpoint)
    plan, out, cfg = state.plan, state.outputs, state.plan.config
    M, r = plan.stage1_frames, cfg.refine_steps
    at = _inside(state, ("refine",))
    end = 1 if cfg.official_stage2_mislabel else 0
    if at is None and (len(out) != M or set(out.level) != {end}):
        raise InvalidConfigError(bad_value("state.outputs", f"{len(out)} latents at levels {sorted(set(out.level))}",
                                           f"{M} latents at level {end}", "run unified_stage(refine=False) first"))
    progress = progress or progress_of(plan, ("refine",), callback)
    save = _Saver(checkpoint, progress, _mark(progress))
    if r:
        if at is None:
            out = per_chunk(out, partial(_refine_start, state=state))
        ctx = _context(denoiser, state.sigmas, plan, progress, "refine", noise=state.noise)
        for i in range(at.passes if at is not None else 0, r):
            out = _whole_pass(replace(ctx, pass_index=i), out, plan.num_frames)
            save(partial(replace, state, outputs=out, at=Position("refine", i + 1)))
    if M != plan.num_frames:  # trim_tail (REFERENCE A1.11)
        out = first_frames(out, plan.num_frames)
    return replace(state, outputs=out, at=None).counted(progress, *save.mark)
