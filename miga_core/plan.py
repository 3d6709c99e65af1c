"""The run plan: one immutable description of a whole run, built and validated once.

:func:`plan_run` takes everything a run is made of (options, T, N, guidance, self-reflection,
prompt schedule, whether an initial clip is given), checks all of it before any model call and
resolves what the stages would otherwise re-derive: the variant's queue rules, the queue layout
after initialization, the history size, the self-reflection geometry and the model calls
(windows) of every stage. The plan travels inside the queue state, so the stages take
``(denoiser, state)`` and cannot disagree on guidance or prompts.

Variants (chosen through :data:`VARIANTS`, never by ``if`` branches in the stages):
``"miga"`` (two stages [D4]), ``"fifo"`` (FIFO-Diffusion's queue [D4]) and ``"unified_only"``
(the paper's Alg. 8: ``unified_steps == T``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .config import GuidanceOptions, MigaConfig, ReflectionOptions
from .errors import InvalidConfigError, InvalidInitialClipError, MigaTypeError, PromptScheduleError, bad_value
from .frames import num_pixel_frames
from .prompts import PromptSchedule
from .windows import history_needed, plan_windows

__all__ = ["VariantName", "Variant", "VARIANTS", "RunPlan", "plan_run", "STAGES"]

VariantName = Literal["miga", "fifo", "unified_only"]
STAGES: tuple[str, ...] = ("initial_clip", "init", "zigzag", "unified", "refine")  # in run order

Groups = tuple[tuple[int, int], ...]  # (level, count) runs of the queue, head first


@dataclass(frozen=True)
class Variant:
    """How one variant's queue is built and moves [D4].

    Attributes:
        check: refuses option combinations the variant cannot run ``(config, T, m, reflection, has_clip)``.
        queue: the stage-1 queue right after initialization ``(config, T) -> (groups, index of its head)``.
        group_width: latents dequeued (and fresh ones enqueued) per stage-1 pass.
        exit_level: level of a latent leaving stage 1 (the unified stage takes it from there).
        history_level: level at which left history is shown to the model (None: the level it left at).
        init_passes: passes that grow the renoised initial clip into the stage-1 queue ``(config, T) -> int``; each
            appends ``group_width`` fresh latents at level T, then runs Phi (Alg. 4) [D4a].
        samples_initial_clip: whether a run without a given clip samples one (T calls).
    """

    check: Callable[[MigaConfig, int, int, ReflectionOptions | None, bool], None]
    queue: Callable[[MigaConfig, int], tuple[Groups, int]]
    group_width: Callable[[MigaConfig], int]
    exit_level: Callable[[MigaConfig, int], int]
    history_level: int | None
    init_passes: Callable[[MigaConfig, int], int]
    samples_initial_clip: bool


def _n_zig(config: MigaConfig) -> int:
    return math.ceil(config.window_length / config.zigzag_width)


def _check_miga(config: MigaConfig, T: int, m: int, reflection: ReflectionOptions | None, has_clip: bool) -> None:
    f0, u, n_zig = config.window_length, config.unified_steps, _n_zig(config)
    if not 0 <= u <= T - n_zig - 1:
        two_stage = f"0..{T - n_zig - 1}" if T - n_zig - 1 >= 0 else f"none (two stages need T >= n_zig + 1 = {n_zig + 1} steps)"
        if T - n_zig - 1 >= 0:
            fix = f"use {min(9, T - n_zig - 1)} (the paper's 9 where it fits), 0 for no unified stage, or {T} for the unified stage alone"
        elif T >= 2:  # a wider zigzag group gives fewer levels to the initial clip: n_zig <= T - 1 fits
            width = math.ceil(f0 / (T - 1))
            fix = (f"use at least {n_zig + 1} steps, or zigzag_width >= {width} (n_zig = ceil({f0}/zigzag_width) <= T-1 = {T - 1}; "
                   f"e.g. zigzag_width={width} with unified_steps={T - math.ceil(f0 / width) - 1}), or unified_steps={T} for the "
                   "unified stage alone")
        else:
            fix = f"use at least {n_zig + 1} steps, or unified_steps={T} for the unified stage alone"
        raise InvalidConfigError(bad_value(
            "unified_steps", u,
            f"{two_stage} (two stages: 0..T-n_zig-1 with T={T}, n_zig=ceil({f0}/{config.zigzag_width})={n_zig}) "
            f"or exactly T={T} (unified stage only) [D4]", fix))


def _check_fifo(config: MigaConfig, T: int, m: int, reflection: ReflectionOptions | None, has_clip: bool) -> None:
    f0 = config.window_length
    for name, value, want in (("zigzag_width", config.zigzag_width, 1), ("unified_steps", config.unified_steps, 0)):
        if value != want:
            raise InvalidConfigError(bad_value(name, value, f"{want} in mode 'fifo' (FIFO-Diffusion's queue has one latent per level "
                                               "and no unified stage) [D4]", f"set {name} to {want}, or use mode 'miga'"))
    if T < f0:
        raise InvalidConfigError(bad_value("steps", T, f">= window_length = {f0} in mode 'fifo' (the queue holds T latents) [D4]",
                                           f"use at least {f0} steps"))
    if m or reflection is not None:
        raise InvalidConfigError(bad_value(
            "mode", "fifo", "no long-range guidance and no self-reflection (FIFO-Diffusion has neither) [D4]",
            "disconnect the guidance/reflection options, or use mode 'miga' with zigzag_width 1 and unified_steps 0"))


def _check_unified_only(config: MigaConfig, T: int, m: int, reflection: ReflectionOptions | None, has_clip: bool) -> None:
    if m or reflection is not None:
        raise InvalidConfigError(bad_value(
            "unified_steps", config.unified_steps, f"< T={T} when long-range guidance or self-reflection is given (both act in "
            "stage 1, which a unified-only run does not have) [D3, D5]", "drop the guidance/reflection options, or lower unified_steps"))
    if has_clip:
        raise InvalidInitialClipError(bad_value("initial_clip", "a clip", f"none when unified_steps == T={T} (Alg. 8 starts from noise)",
                                           "drop the clip, or lower unified_steps to continue from it"))


def _miga_queue(config: MigaConfig, T: int) -> tuple[Groups, int]:
    f0, Lz, u, n_zig = config.window_length, config.zigzag_width, config.unified_steps, _n_zig(config)
    first = [(u + 1 + g, min(Lz, f0 - g * Lz)) for g in range(n_zig)]  # the initial clip, renoised [D4a]
    return tuple(first + [(k, Lz) for k in range(u + 1 + n_zig, T + 1)]), 0


def pass_windows(config: MigaConfig, history: int, length: int, *, num_guidance: int = 0, pass_index: int = 0,
                 borders: str | None = None, guidance_rule: str = "even") -> int:
    """Windows of one pass over ``length`` queue latents after ``history`` ones (exactly what :func:`~miga_core.passes.queue_pass`
    runs) [D1, D7]: ``ceil(L / s)`` for the paper's fixed regions, else the number of :func:`~miga_core.windows.plan_windows`."""
    borders = borders or config.borders
    if borders == "fixed" and config.update != "official":
        return math.ceil(length / config.stride)
    return len(plan_windows(history, length, config.window_length, config.stride, num_guidance=num_guidance,
                            zigzag_width=config.zigzag_width, update=config.update, borders=borders, pass_index=pass_index,
                            guidance_rule=guidance_rule))


def _init_calls(config: MigaConfig, passes: int, width: int, m: int = 0, rule: str = "even") -> int:
    """Windows of the initialization passes: pass r runs over ``f0 + (r+1) * width`` latents, fixed borders [D1]."""
    return sum(pass_windows(config, 0, config.window_length + (r + 1) * width, num_guidance=m, pass_index=r, borders="fixed",
                            guidance_rule=rule) for r in range(passes))


def official_build(config: MigaConfig, T: int, num_out: int) -> tuple[Groups, int, bool]:
    """The released code's queue build (REFERENCE A1.4, item 2): ``(groups after it, passes, whether it broke)``.

    With ``G = ceil(M / L_zig)`` output groups wanted and ``B = T - n_zig - (u + 2)`` (Wan: ``T - 3 - 12``): ``min(G, B)``
    passes, each after appending a group at level T; when ``G > B`` the loop breaks after one more append (a group at
    level T without a pass). Groups run from level ``T - n_zig - passes`` (head) to ``T - 1`` (``T`` after a break).
    """
    Lz, f0, u, n_zig = config.zigzag_width, config.window_length, config.unified_steps, _n_zig(config)
    G, B = math.ceil(num_out / Lz), T - n_zig - (u + 2)
    passes, broke = min(G, B), G > B
    first = [(T - n_zig + g - passes, min(Lz, f0 - g * Lz)) for g in range(n_zig)]
    fresh = [(T - passes + r, Lz) for r in range(passes)] + ([(T, Lz)] if broke else [])
    return tuple(first + fresh), passes, broke


def stage1_lengths(config: MigaConfig, T: int, groups: Groups, head_index: int, width: int, exit_level: int,
                   num_out: int) -> list[int]:
    """Queue length before each stage-1 pass, until ``num_out`` latents are out [D4, D7].

    Paper (``build_length="paper"``): every pass dequeues the head group (latents with a negative index are
    discarded, FIFO) and enqueues ``width`` fresh latents. Official (REFERENCE A1.8): a pass dequeues the head group
    only when it reached the exit level; once one has (popping began), a group is appended whenever the tail is
    at level ``T - 1``: never in a drain, where the queue runs down in place.
    """
    official = config.build_length == "official" and config.mode == "miga"
    levels = [k for k, _ in groups]
    sizes = [c for _, c in groups]
    out, index, lengths, popping = 0, head_index, [], False
    while out < num_out and levels:
        lengths.append(sum(sizes))
        if not official:
            size = sizes.pop(0)
            levels.pop(0)
            out += max(0, index + size) - max(0, index)
            index += size
            levels = [k - 1 for k in levels] + [T]
            sizes.append(width)
            continue
        levels = [k - 1 for k in levels]
        if levels[0] == exit_level:
            out += sizes.pop(0)
            levels.pop(0)
        popping = popping or (bool(levels) and levels[0] <= exit_level + 1)
        if levels and (levels[-1] <= T - 1 if config.stage1_append == "every_pass" else popping and levels[-1] >= T - 1):
            levels.append(T)
            sizes.append(width)
    return lengths


def build_checks(config: MigaConfig, T: int, passes: int, options: ReflectionOptions) -> list[int]:
    """Queue-building passes after which ``phase="build"`` self-reflection checks (REFERENCE A1.7): those after which the
    head has had more than ``judge_from_tail + ceil(num_ref / L_zig)`` steps (Wan: 12)."""
    assert options.judge_from_tail is not None
    need = options.judge_from_tail + math.ceil(options.num_ref / config.zigzag_width)
    return [p for p in range(passes) if _n_zig(config) + p + 1 > need]


VARIANTS: dict[str, Variant] = {
    "miga": Variant(check=_check_miga, queue=_miga_queue, group_width=lambda c: c.zigzag_width,
                    exit_level=lambda c, T: c.unified_steps, history_level=None,
                    init_passes=lambda c, T: T - _n_zig(c) - (c.unified_steps + 1),
                    samples_initial_clip=True),
    # T latents at levels 1..T; its first T - f0 outputs (negative indices) are discarded; history shown at level 1
    "fifo": Variant(check=_check_fifo, queue=lambda c, T: (tuple((k, 1) for k in range(1, T + 1)), -(T - c.window_length)),
                    group_width=lambda c: 1, exit_level=lambda c, T: 0, history_level=1, init_passes=lambda c, T: 0,
                    samples_initial_clip=True),
    # Alg. 8: N latents of noise go straight to the unified stage at level T
    "unified_only": Variant(check=_check_unified_only, queue=lambda c, T: ((), 0), group_width=lambda c: 0,
                            exit_level=lambda c, T: T, history_level=None, init_passes=lambda c, T: 0, samples_initial_clip=False),
}


def _variant_name(config: MigaConfig, T: int) -> str:
    """``mode="fifo"`` is FIFO-Diffusion; otherwise ``unified_steps == T`` is the unified stage alone (Alg. 8)."""
    if config.mode == "fifo":
        return "fifo"
    return "unified_only" if config.unified_steps == T else "miga"


def _stage1_calls(groups: Groups, head_index: int, width: int, num_frames: int, stride: int) -> tuple[int, int]:
    """``(windows, passes)`` of stage 1 from a queue of ``groups`` whose head has absolute index ``head_index`` [D1].

    Each pass costs ``ceil(L / s)`` windows, dequeues the head group (latents with a negative
    index are discarded, FIFO) and enqueues ``width`` fresh latents, until N latents are out.
    """
    sizes, length, out, index, calls = [c for _, c in groups], sum(c for _, c in groups), 0, head_index, 0
    head = 0  # passes so far
    while out < num_frames and head < len(sizes):
        calls += math.ceil(length / stride)
        size = sizes[head]
        head += 1
        out += max(0, index + size) - max(0, index)  # latents of this group with index >= 0
        index += size
        sizes.append(width)
        length += width - size
    return calls, head


@dataclass(frozen=True)
class RunPlan:
    """Everything a run does, resolved and validated once (see :func:`plan_run`).

    Attributes:
        config: queue and sampler options.  num_steps: T.  num_frames: N latent frames.
        guidance: long-range guidance [D3] (``num_guidance == 0``: off).
        reflection: self-reflection options [D5], or None.
        prompts: the prompt schedule [D6].
        has_initial_clip: whether the caller gives the initial clip (else it is sampled, T calls).
        variant: ``"miga"``, ``"fifo"`` or ``"unified_only"`` (a key of :data:`VARIANTS`).
        init_groups: ``(level, count)`` of the stage-1 queue after initialization, head first.
        init_passes: passes that build it from the renoised initial clip (MIGA: ``T - n_zig - (u+1)``; others 0) [D4a].
        head_index: absolute index of that queue's head (FIFO: ``-(T - f0)``, discarded latents first).
        group_width, exit_level, history_level: the variant's queue rules (see :class:`Variant`).
        history_size: history latents kept for left context and guidance [D1].
        judge_level: level whose first queue position is f_judg [D5] (None without self-reflection).
        num_guide: f_guid, guide latents of a candidate [D5] (None without self-reflection).
        stage_calls: planned windows of each stage, in :data:`STAGES` order (self-reflection's search excluded).
        num_checks: self-reflection checks, one before every stage-1 pass (0 without self-reflection) [D5].
        search_windows: windows one search costs when a check fires: ``num_candidates`` candidates, each grown
            group by group to the tail ``Q[f_judg:]`` with one pass per group but the last [D5b] (``phase="build"``:
            one pass per group, ``judge_from_tail`` groups).
        stage1_frames: M = N + ``trim_tail``, latents stage 1 outputs and stage 2 / the refinement denoise [D7].
        check_passes: queue-building passes followed by a ``phase="build"`` self-reflection check [D7].
        stage1_passes: queue length before each stage-1 pass (the plan's count of stage-1 windows follows it).
    """

    config: MigaConfig
    num_steps: int
    num_frames: int
    guidance: GuidanceOptions
    reflection: ReflectionOptions | None
    prompts: PromptSchedule
    has_initial_clip: bool
    variant: str
    init_groups: Groups
    init_passes: int
    head_index: int
    group_width: int
    exit_level: int
    history_level: int | None
    history_size: int
    judge_level: int | None
    num_guide: int | None
    stage_calls: tuple[int, ...] = field(repr=False, default=())
    num_checks: int = 0
    search_windows: int = 0
    stage1_frames: int = 0
    check_passes: tuple[int, ...] = ()
    stage1_passes: tuple[int, ...] = field(repr=False, default=())

    @property
    def num_guidance(self) -> int:
        """m_guid, guidance latents per stage-1 window (0: off) [D3]."""
        return self.guidance.num_guidance

    @property
    def guidance_rule(self) -> str:
        """``"even"`` [D3] or ``"official"`` guidance positions [D7]."""
        return self.guidance.positions

    @property
    def calls(self) -> dict[str, int]:
        """Planned windows per stage ``{"initial_clip", "init", "zigzag", "unified", "refine"}`` (search excluded)."""
        return dict(zip(STAGES, self.stage_calls))

    @property
    def total_calls(self) -> int:
        """Planned windows of the whole run (self-reflection's search excluded)."""
        return sum(self.stage_calls)

    def with_reflection(self, reflection: ReflectionOptions | None) -> "RunPlan":
        """The same run with other self-reflection options, validated anew, for a queue already built: they act in
        stage 1 only (:func:`check_stage1_reflection`: ``phase="build"`` is refused)."""
        check_stage1_reflection(reflection)
        return plan_run(self.config, self.num_steps, self.num_frames, guidance=self.guidance, reflection=reflection,
                        prompts=self.prompts, has_initial_clip=self.has_initial_clip)


def check_stage1_reflection(reflection: ReflectionOptions | None) -> None:
    """Self-reflection added once the queue is built (:meth:`RunPlan.with_reflection`, the MIGA Zigzag Stage node) must
    check before stage-1 passes: ``phase="build"`` checks while the queue is built, so it would never run there [D7].

    Raises:
        InvalidConfigError: ``phase="build"``, naming the fix.
    """
    if reflection is not None and reflection.phase == "build":
        raise InvalidConfigError(bad_value(
            "phase", "build", "'stage1' for self-reflection added after the queue is built (MIGA Zigzag Stage, "
            "RunPlan.with_reflection): phase build checks while the queue is built, which MIGA Queue Initialization / "
            "initialize_queue has already done", "set phase to stage1, or give phase build where the queue is built "
            "(MIGA Long Video Sampler, plan_run)"))


def _check_count(name: str, value: object, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MigaTypeError(f"{name}={value!r} has type {type(value).__name__}: allowed is an int >= 1. Fix: {fix}.")
    if value < 1:
        raise InvalidConfigError(bad_value(name, value, "an integer >= 1", fix))
    return value


def _check_prompts(prompts: PromptSchedule, num_frames: int) -> None:
    """Every segment of the schedule must start inside the video [D6]."""
    for j, start in enumerate(prompts.starts):
        if start < num_frames:
            continue
        if prompts.frames and prompts.latent_rule is not None:
            frames = num_pixel_frames(num_frames, prompts.latent_rule)
            value = prompts.frames[j]
            allowed = f"a pixel frame of the video (0..{frames - 1}): it has {frames} pixel frames ({num_frames} latents)"
            longer = f"at least {num_pixel_frames(start + 1, prompts.latent_rule)} frames"
        else:
            allowed, value, longer = f"a latent of the video (0..{num_frames - 1})", start, f"at least {start + 1} latents"
        raise PromptScheduleError(bad_value("keyframe", value, allowed,
                                            f"remove the keyframes past the end, or make the video {longer}"))


def _reflection_geometry(config: MigaConfig, T: int, options: ReflectionOptions, first: list[int], full: list[int]) -> tuple[int, int]:
    """Resolve f_judg (as the judge level) and f_guid, and check both fit the stage-1 queue [D5]."""
    Lz, u = config.zigzag_width, config.unified_steps
    if options.judge_position is None:
        levels = range(u + 1, T)
        if not levels:
            raise InvalidConfigError(bad_value("unified_steps", u, f"<= T-2 = {T - 2} for self-reflection (the queue needs a level "
                                               "below T to judge)", "lower unified_steps or disable self-reflection"))
        judge_level = min(levels, key=lambda k: (abs(k - 0.8 * T), k))
    else:
        pos = options.judge_position
        if pos % Lz or pos >= len(full):
            raise InvalidConfigError(bad_value("judge_position", pos, f"a multiple of zigzag_width={Lz} below the queue length {len(full)}",
                                               "use None for the level nearest 0.8*T"))
        judge_level = full[pos]
    num_guide = options.num_guide if options.num_guide is not None else config.window_length - config.stride
    for levels in (first, full):
        j, L = levels.index(judge_level), len(levels)
        if j < options.num_ref or j < num_guide or j + options.num_eval > L:
            raise InvalidConfigError(bad_value(
                "judge_position", j,
                f">= max(num_ref={options.num_ref}, num_guide={num_guide}) and <= queue length - num_eval = {L - options.num_eval}",
                "move the judge (judge_position) or lower num_ref/num_guide/num_eval"))
        tail = levels[j:]
        if any(tail.count(k) != Lz for k in set(tail)):
            raise InvalidConfigError(bad_value(
                "judge_position", j, f"a position whose tail holds only full zigzag groups (level > u + ceil(f0/L_zig) = {u + _n_zig(config)})",
                "choose window_length divisible by zigzag_width, or judge nearer the tail"))
    return judge_level, num_guide


def _check_build_reflection(config: MigaConfig, T: int, options: ReflectionOptions, num_guide: int, groups: Groups, passes: int,
                            checks: list[int]) -> None:
    """Every ``phase="build"`` check must find its judged group, reference and guide inside the queue, and a tail of
    full groups one level apart (REFERENCE A1.7) [D7]."""
    Lz, J = config.zigzag_width, options.judge_from_tail
    assert J is not None
    if options.num_eval > Lz * J:
        raise InvalidConfigError(bad_value("num_eval", options.num_eval, f"<= judge_from_tail * zigzag_width = {J * Lz}",
                                           "use zigzag_width (the released code's f_eval)"))
    initial = [k for k, c in groups for _ in range(c)][:config.window_length]
    for p in checks:
        levels = [k + (passes - p - 1) for k in initial] + [T - 1 - q for q in range(p, -1, -1) for _ in range(Lz)]
        j = len(levels) - J * Lz
        tail = levels[j:]
        if j < max(options.num_ref, num_guide) or tail != [T - J + g // Lz for g in range(J * Lz)]:
            raise InvalidConfigError(bad_value(
                "judge_from_tail", J, f"a judged group with num_ref={options.num_ref} and num_guide={num_guide} latents before it and a tail "
                f"of full groups (queue of {len(levels)} latents after build pass {p})",
                "lower judge_from_tail / num_ref / num_guide, or choose window_length divisible by zigzag_width"))


def plan_run(
    config: MigaConfig,
    num_steps: int,
    num_frames: int,
    *,
    guidance: GuidanceOptions | None = None,
    reflection: ReflectionOptions | None = None,
    prompts: PromptSchedule | None = None,
    has_initial_clip: bool = False,
) -> RunPlan:
    """Validate a run and resolve everything the stages need [D1-D6]; no tensors, no model.

    Args:
        config: queue and sampler options.
        num_steps: T = ``len(sigmas) - 1`` of the host's ladder.
        num_frames: N latent frames of the output video.
        guidance: long-range guidance [D3]; reflection: self-reflection [D5]; prompts: schedule [D6].
        has_initial_clip: True when the caller will pass the initial clip (continuation).
    Returns:
        The :class:`RunPlan`.
    Raises:
        InvalidConfigError / MigaTypeError: any option out of range, alone or in combination (e.g.
            ``unified_steps`` outside ``0..T-n_zig-1`` and not T, guidance in FIFO mode, a judge
            position that does not fit the queue), naming the value, the range and the fix.
        PromptScheduleError: a keyframe past the end of the video.
    """
    T = _check_count("steps", num_steps, "use at least 1 step (the paper: 54 for Wan2.1, 64 for VC2)")
    N = _check_count("num_frames", num_frames, "ask for at least one latent frame")
    guidance = guidance if guidance is not None else GuidanceOptions(num_guidance=0)
    guidance.validate()
    if reflection is not None:
        reflection.validate()
    prompts = prompts if prompts is not None else PromptSchedule.single()
    config.validate(num_guidance=guidance.num_guidance)
    name = _variant_name(config, T)
    variant = VARIANTS[name]
    variant.check(config, T, guidance.num_guidance, reflection, has_initial_clip)
    _check_prompts(prompts, N)
    M, s = N + config.trim_tail, config.stride
    width, exit_level = variant.group_width(config), variant.exit_level(config, T)
    m, rule = guidance.num_guidance, guidance.positions
    official = name == "miga" and config.build_length == "official"
    if official:
        if config.unified_steps > T - _n_zig(config) - 2:
            raise InvalidConfigError(bad_value("unified_steps", config.unified_steps, f"0..T-n_zig-2 = {T - _n_zig(config) - 2} with "
                                               "build_length='official' (its build stops with the head two levels above u) [D7]",
                                               "lower unified_steps, use more steps, or build_length='paper'"))
        groups, init_passes, _ = official_build(config, T, M)
        head_index = 0
    else:
        groups, head_index = variant.queue(config, T)
        init_passes = variant.init_passes(config, T)
    lengths = stage1_lengths(config, T, groups, head_index, width, exit_level, M)
    zigzag_calls = sum(pass_windows(config, 0, L, num_guidance=m, pass_index=i, guidance_rule=rule) for i, L in enumerate(lengths))
    passes = len(lengths)
    judge_level = num_guide = None
    num_checks = search_windows = 0
    check_passes: list[int] = []
    if reflection is not None and reflection.phase == "build":
        if name != "miga":
            raise InvalidConfigError(bad_value("phase", "build", "'stage1' outside two-stage MIGA runs", "use phase='stage1'"))
        num_guide = reflection.num_guide if reflection.num_guide is not None else reflection.num_ref
        check_passes = build_checks(config, T, init_passes, reflection)
        if not check_passes and not official:  # asked for, never checking: refused (the official build keeps the release's no-op)
            most = _n_zig(config) + init_passes - 1 - math.ceil(reflection.num_ref / config.zigzag_width)
            raise InvalidConfigError(bad_value(
                "judge_from_tail", reflection.judge_from_tail,
                f"at most {most} with num_ref={reflection.num_ref} (judge_from_tail + ceil(num_ref / zigzag_width) must stay "
                f"below the {_n_zig(config) + init_passes} steps the queue head takes while it is built), or no check ever runs",
                f"lower judge_from_tail to {most} or less" if most >= 1 else "use more steps, or phase='stage1', or no self-reflection"))
        _check_build_reflection(config, T, reflection, num_guide, groups, init_passes, check_passes)
        num_checks = len(check_passes)
        J, mc = reflection.judge_from_tail, (m if reflection.candidate_guidance else 0)
        assert J is not None
        search_windows = reflection.num_candidates * sum(
            pass_windows(config, num_guide, (r + 1) * width, num_guidance=mc, borders="fixed", guidance_rule=rule) for r in range(J))
    elif reflection is not None:
        if official:
            raise InvalidConfigError(bad_value("phase", "stage1", "'build' with build_length='official' (its stage-1 queue drains, "
                                               "so a judge position before every stage-1 pass does not exist) [D7]",
                                               "use phase='build' with judge_from_tail, or build_length='paper'"))
        first = [k for k, c in groups for _ in range(c)]
        full = [k for k in range(exit_level + 1, T + 1) for _ in range(width)]
        judge_level, num_guide = _reflection_geometry(config, T, reflection, first, full)
        num_checks = passes
        search_windows = reflection.num_candidates * sum(math.ceil(g * width / s) for g in range(1, T - judge_level + 1))
    stage2_passes = exit_level
    if config.official_stage2_mislabel and exit_level + 1 > T:
        raise InvalidConfigError(bad_value("official_stage2_mislabel", True, f"only with unified_steps < T={T}", "set it to False"))
    if config.refine_steps > T:
        raise InvalidConfigError(bad_value("refine_steps", config.refine_steps, f"0..T={T}", "use the released code's 10 or fewer"))
    calls = (
        T if variant.samples_initial_clip and not has_initial_clip else 0,
        _init_calls(config, init_passes, width, m, rule),
        zigzag_calls,
        sum(pass_windows(config, 0, M, pass_index=i) for i in range(stage2_passes)),
        sum(pass_windows(config, 0, M, pass_index=i) for i in range(config.refine_steps)),
    )
    history = 0 if config.update == "official" else history_needed(config.window_length, s, m, config.zigzag_width)
    return RunPlan(config, T, N, guidance, reflection, prompts, has_initial_clip, name, groups, init_passes, head_index, width, exit_level,
                   variant.history_level, history, judge_level, num_guide, calls, num_checks, search_windows, M, tuple(check_passes),
                   tuple(lengths))

