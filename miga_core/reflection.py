"""Self-reflection: consistency score, anomaly trigger and candidate search
(paper Sec. 3.3, Eq. 5-7, Alg. 6; SPEC D5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from einops import reduce

from .config import MigaConfig, ReflectionOptions
from .errors import InvalidConfigError, bad_value
from .latents import LatentRun, fresh_latents
from .noise import Stream, mix_key
from .passes import PassContext, queue_pass

__all__ = ["consistency_score", "consistency_scores", "ReflectionStats", "ReflectionGeometry", "reflection_geometry", "reflect"]


def consistency_scores(reference: torch.Tensor, evaluated: torch.Tensor) -> torch.Tensor:
    """C_score of paper Eq. 5-7 per video [D5a]: ``[B]`` floats in ``[-1, 1]``.

    Each frame is averaged over channels into an ``H*W`` map, L2-normalised; a video's score is
    the mean of its ``[f_eval, f_ref]`` cosine matrix.

    Args:
        reference: ``[B, C, f_ref, H, W]``.
        evaluated: ``[B, C, f_eval, H, W]``.
    """
    ref = torch.nn.functional.normalize(reduce(reference.float(), "b c f h w -> b f (h w)", "mean"), dim=-1)
    ev = torch.nn.functional.normalize(reduce(evaluated.float(), "b c f h w -> b f (h w)", "mean"), dim=-1)
    return torch.einsum("bed,brd->ber", ev, ref).mean(dim=(1, 2))


def consistency_score(reference: torch.Tensor, evaluated: torch.Tensor) -> float:
    """The batch mean of :func:`consistency_scores`; 1 when every evaluated map is parallel to every reference map."""
    return float(consistency_scores(reference, evaluated).mean())


@dataclass(frozen=True)
class ReflectionStats:
    """Counters of paper Fig. 5, per video: checks ``n_all``, anomalies searched ``n_eval``, corrections ``n_corr``.

    A check of a batch of B videos counts B checks: each video is judged, searched and corrected
    on its own [D5]. ``last_score`` is C_prev of each video for the next check (the previous
    check's score or the accepted candidate's); ``scores`` lists every check's C per video.
    """

    n_all: int = 0
    n_eval: int = 0
    n_corr: int = 0
    last_score: tuple[float, ...] | None = None
    scores: tuple[tuple[float, ...], ...] = ()

    @property
    def r_corr(self) -> float:
        """R_corr = n_corr / n_all (0 when nothing was checked)."""
        return self.n_corr / self.n_all if self.n_all else 0.0

    @property
    def r_succ(self) -> float:
        """R_succ = n_corr / n_eval (0 when nothing was searched)."""
        return self.n_corr / self.n_eval if self.n_eval else 0.0


@dataclass(frozen=True)
class ReflectionGeometry:
    """Resolved positions: the judge level k_j (its first queue position is f_judg) and f_guid."""

    judge_level: int
    num_guide: int


def _stage1_levels(config: MigaConfig, T: int) -> tuple[list[int], list[int]]:
    """Levels of the stage-1 queue right after init, and once the initial clip has left (all groups full)."""
    f0, Lz, u = config.window_length, config.zigzag_width, config.unified_steps
    n_zig = math.ceil(f0 / Lz)
    full = [k for k in range(u + 1, T + 1) for _ in range(Lz)]
    first = [u + 1 + i // Lz for i in range(f0)] + [k for k in range(u + 1 + n_zig, T + 1) for _ in range(Lz)]
    return first, full


def reflection_geometry(config: MigaConfig, T: int, options: ReflectionOptions) -> ReflectionGeometry:
    """Resolve and check f_judg and f_guid against the stage-1 queue [D5], before any model call.

    Raises:
        InvalidConfigError: the judge, reference, evaluation or guide latents do not fit the queue.
    """
    Lz, u = config.zigzag_width, config.unified_steps
    first, full = _stage1_levels(config, T)
    if options.judge_position is None:
        levels = range(u + 1, T)
        if not levels:
            raise InvalidConfigError(bad_value("unified_steps", u, f"<= T-2 = {T - 2} for self-reflection (the queue needs a level below T to judge)",
                                               "lower unified_steps or disable self-reflection"))
        judge_level = min(levels, key=lambda k: (abs(k - 0.8 * T), k))
    else:
        pos = options.judge_position
        if pos % Lz or pos >= len(full):
            raise InvalidConfigError(bad_value("judge_position", pos, f"a multiple of zigzag_width={Lz} below the queue length {len(full)}",
                                               "use None for the level nearest 0.8*T"))
        judge_level = full[pos]
    num_guide = options.num_guide if options.num_guide is not None else config.window_length - config.stride
    for levels in (first, full):
        j = levels.index(judge_level)
        L = len(levels)
        if j < options.num_ref or j < num_guide or j + options.num_eval > L:
            raise InvalidConfigError(bad_value(
                "judge_position", j,
                f">= max(num_ref={options.num_ref}, num_guide={num_guide}) and <= queue length - num_eval = {L - options.num_eval}",
                "move the judge (judge_position) or lower num_ref/num_guide/num_eval"))
        tail = levels[j:]
        if any(tail.count(k) != Lz for k in set(tail)):
            raise InvalidConfigError(bad_value(
                "judge_position", j, f"a position whose tail holds only full zigzag groups (level > u + ceil(f0/L_zig) = {u + math.ceil(config.window_length / Lz)})",
                "choose window_length divisible by zigzag_width, or judge nearer the tail"))
    return ReflectionGeometry(judge_level, num_guide)


def _score_frames(run: LatentRun, on: str) -> torch.Tensor:
    """The tensor a score reads: the latents, or their latest x0 prediction where there is one."""
    if on == "latent":
        return run.x
    mask = torch.as_tensor(run.has_denoised, device=run.x.device).view(1, 1, -1, 1, 1)
    return torch.where(mask, run.denoised, run.x)


def reflect(
    ctx: PassContext,
    queue: LatentRun,
    options: ReflectionOptions,
    geometry: ReflectionGeometry,
    stats: ReflectionStats,
    *,
    num_guidance: int = 0,
    frames_done: int = 0,
) -> tuple[LatentRun, ReflectionStats]:
    """One self-reflection check before a stage-1 pass (Alg. 6; SPEC D5).

    Scores ``Q[f_judg : f_judg+f_eval]`` against ``Q[f_judg-f_ref : f_judg]``. When
    ``C_prev - C > threshold``, ``num_candidates`` candidates regenerate the tail ``Q[f_judg:]``
    from fresh noise, guided by ``Q[f_judg-f_guid : f_judg]`` as history; the best replaces the
    tail only if it scores higher than C.

    Returns:
        The (possibly corrected) queue and the updated counters. The input is not modified.
    """
    cfg = ctx.config
    j = queue.level.index(geometry.judge_level)
    ref = _score_frames(queue.frames(slice(j - options.num_ref, j)), options.score_on)
    score = consistency_scores(ref, _score_frames(queue.frames(slice(j, j + options.num_eval)), options.score_on))  # [B]
    B = score.shape[0]
    stats = replace(stats, n_all=stats.n_all + B, scores=stats.scores + (tuple(score.tolist()),))
    if stats.last_score is None:
        return queue, replace(stats, last_score=tuple(score.tolist()))
    trigger = torch.as_tensor(stats.last_score, dtype=score.dtype, device=score.device) - score > options.threshold  # [B]
    if not bool(trigger.any()):
        return queue, replace(stats, last_score=tuple(score.tolist()))
    stats = replace(stats, n_eval=stats.n_eval + int(trigger.sum()))
    tail = queue.frames(slice(j, None))
    guide = queue.frames(slice(j - geometry.num_guide, j))
    groups = tail.groups()  # (level, count), lowest level first; every count is L_zig
    s = cfg.stride
    lengths = [sum(c for _, c in groups[: g + 1]) for g in range(len(groups) - 1)]
    ctx.progress.add_planned(options.num_candidates * sum(-(-n // s) for n in lengths))
    check_id = queue.index[j]
    best_score, best = torch.full_like(score, -math.inf), None
    for k in range(options.num_candidates):  # candidates run for the whole batch; each video keeps its own best
        stream = mix_key(Stream.CANDIDATE, check_id, k)
        cctx = replace(ctx, stage="reflection", ancestral_stream=mix_key(stream, Stream.ANCESTRAL))
        start = 0
        cand = LatentRun.empty_like(queue.x)
        for g, (_, count) in enumerate(groups):
            idx = tail.index[start:start + count]
            start += count
            cand = cand + fresh_latents(cfg.seed, stream, idx, ctx.sigmas, queue.x)
            if g < len(groups) - 1:
                cand = queue_pass(cctx, cand, guide, num_guidance=num_guidance, frames_done=frames_done)
        c_score = consistency_scores(ref, _score_frames(cand.frames(slice(0, options.num_eval)), options.score_on))
        better = c_score > best_score
        best = cand if best is None else _pick(better, cand, best)
        best_score = torch.where(better, c_score, best_score)
    assert best is not None and best.level == tail.level, "candidate levels must match the tail's [D5b]"
    accept = trigger & (best_score > score)  # [B]
    new_score = tuple(torch.where(accept, best_score, score).tolist())
    if not bool(accept.any()):
        return queue, replace(stats, last_score=new_score)
    new_tail = best if bool(accept.all()) else _pick(accept, best, tail)
    return queue.frames(slice(0, j)) + new_tail, replace(stats, n_corr=stats.n_corr + int(accept.sum()), last_score=new_score)


def _pick(mask: torch.Tensor, a: LatentRun, b: LatentRun) -> LatentRun:
    """Per video (``mask [B]``), the frames of ``a`` where True, else ``b`` (same levels and indices).

    A frame keeps its x0 prediction only where both runs have one (``has_denoised`` is per frame).
    """
    m = mask.to(a.x.device).view(-1, 1, 1, 1, 1)
    has = tuple(p and q for p, q in zip(a.has_denoised, b.has_denoised))
    return replace(b, x=torch.where(m, a.x, b.x), denoised=torch.where(m, a.denoised, b.denoised), has_denoised=has)
