"""Self-reflection: consistency score, anomaly trigger and candidate search
(paper Sec. 3.3, Eq. 5-7, Alg. 6; [D5]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from einops import reduce

from collections.abc import Callable

from .latents import LatentRun, TailSource
from .noise import NoiseDraw, Stream, mix_key
from .passes import PassContext, queue_pass
from .plan import RunPlan

SCORE_HISTORY = 64  # checks whose scores ReflectionStats keeps (an endless run keeps constant memory)

__all__ = ["consistency_score", "consistency_scores", "ReflectionStats", "reflect", "reflect_build", "SCORE_HISTORY"]


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
    check's score or the accepted candidate's); ``scores`` lists the C per video of the last
    :data:`SCORE_HISTORY` checks (older ones are dropped, so memory stays constant in any run).
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


def _score_frames(run: LatentRun, on: str) -> torch.Tensor:
    """The tensor a score reads: the latents, or their latest x0 prediction where there is one."""
    if on == "latent":
        return run.x
    mask = torch.as_tensor(run.has_denoised, device=run.x.device).view(1, 1, -1, 1, 1)
    return torch.where(mask, run.denoised, run.x)


def _check(ctx: PassContext, queue: LatentRun, j: int, options, stats: ReflectionStats,
           grow: Callable[[int], LatentRun]) -> tuple[LatentRun, ReflectionStats]:
    """Score ``Q[j : j+f_eval]`` against ``Q[j-f_ref : j]``; on ``C_prev - C > threshold`` grow ``num_candidates`` tails
    (``grow(k)``, levels and indices of ``Q[j:]``) and keep the best if it beats C [D5, D5b]. The progress learns the
    counters (checks and corrections so far, per video) for its reports."""
    queue, stats = _judge(ctx, queue, j, options, stats, grow)
    ctx.progress.note_reflection(stats.n_all, stats.n_corr)
    return queue, stats


def _judge(ctx: PassContext, queue: LatentRun, j: int, options, stats: ReflectionStats,
           grow: Callable[[int], LatentRun]) -> tuple[LatentRun, ReflectionStats]:
    ref = _score_frames(queue.frames(slice(j - options.num_ref, j)), options.score_on)
    score = consistency_scores(ref, _score_frames(queue.frames(slice(j, j + options.num_eval)), options.score_on))  # [B]
    B = score.shape[0]
    stats = replace(stats, n_all=stats.n_all + B, scores=(stats.scores + (tuple(score.tolist()),))[-SCORE_HISTORY:])
    if stats.last_score is None:
        ctx.progress.count_check(0, 0)
        return queue, replace(stats, last_score=tuple(score.tolist()))
    trigger = torch.as_tensor(stats.last_score, dtype=score.dtype, device=score.device) - score > options.threshold  # [B]
    ctx.progress.count_check(B, int(trigger.sum()))
    if not bool(trigger.any()):
        return queue, replace(stats, last_score=tuple(score.tolist()))
    stats = replace(stats, n_eval=stats.n_eval + int(trigger.sum()))
    tail = queue.frames(slice(j, None))
    best_score, best = torch.full_like(score, -math.inf), None
    for k in range(options.num_candidates):  # candidates run for the whole batch; each video keeps its own best
        cand = grow(k)
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


def reflect(
    ctx: PassContext,
    queue: LatentRun,
    plan: RunPlan,
    stats: ReflectionStats,
    *,
    frames_done: int = 0,
    tails: TailSource | None = None,
) -> tuple[LatentRun, ReflectionStats]:
    """One self-reflection check before a stage-1 pass (Alg. 6; [D5]).

    Scores ``Q[f_judg : f_judg+f_eval]`` against ``Q[f_judg-f_ref : f_judg]``. When
    ``C_prev - C > threshold``, ``num_candidates`` candidates regenerate the tail ``Q[f_judg:]``
    from fresh noise, guided by ``Q[f_judg-f_guid : f_judg]`` as history; the best replaces the
    tail only if it scores higher than C.

    Args:
        ctx: the stage-1 pass context.  queue: Q.  plan: the run plan (options ``plan.reflection``,
            judge level and f_guid resolved by :func:`~miga_core.plan.plan_run`).  stats: counters so far.
        tails: makes the candidates' new latents (None: the paper's keyed noise of ``config.seed``).
    Returns:
        The (possibly corrected) queue and the updated counters. The input is not modified.
    """
    cfg, options = ctx.config, plan.reflection
    assert options is not None and plan.judge_level is not None and plan.num_guide is not None
    tails = tails or TailSource.keyed(cfg.seed, ctx.sigmas)
    j = queue.level.index(plan.judge_level)
    tail = queue.frames(slice(j, None))
    guide = queue.frames(slice(j - plan.num_guide, j))
    groups = tail.groups()  # (level, count), lowest level first; every count is L_zig
    check_id = queue.index[j]
    T = len(ctx.sigmas) - 1

    def grow(k: int) -> LatentRun:
        stream = mix_key(Stream.CANDIDATE, check_id, k)
        cctx = replace(ctx, stage="reflection", search=True, ancestral_stream=mix_key(stream, Stream.ANCESTRAL))
        start = 0
        cand = LatentRun.empty_like(queue.x)
        for g, (_, count) in enumerate(groups):
            idx = tail.index[start:start + count]
            start += count
            cand = cand + tails(NoiseDraw("candidate", ctx.stage, stream, idx, (T,) * count, (check_id, k)), queue.x)
            if g < len(groups) - 1:
                cand = queue_pass(cctx, cand, guide, num_guidance=plan.num_guidance, frames_done=frames_done)
        return cand

    return _check(ctx, queue, j, options, stats, grow)


def reflect_build(
    ctx: PassContext,
    queue: LatentRun,
    plan: RunPlan,
    stats: ReflectionStats,
    *,
    build_pass: int,
    tails: TailSource,
) -> tuple[LatentRun, ReflectionStats]:
    """One ``phase="build"`` self-reflection check after a queue-building pass (REFERENCE A1.7, items 3, 4) [D7].

    The judged group is the ``judge_from_tail``-th group from the tail (``j = L - judge_from_tail * L_zig``); the
    score, trigger and acceptance are those of :func:`reflect`. A candidate starts empty after the fixed guide
    ``Q[j-f_guid : j]`` and grows ``judge_from_tail`` rounds: append ``L_zig`` new latents at level T, then one pass
    with fixed borders over guide + candidate updating the candidate only (no long-range guidance unless
    ``candidate_guidance``). Its groups then sit at the tail's levels.

    Args:
        ctx: the queue-building pass context.  queue: Q after the pass.  plan: the run plan.  stats: counters so far.
        build_pass: the pass's number (keys the candidates' noise).  tails: makes the candidates' new latents.
    Returns:
        The (possibly corrected) queue and the updated counters. The input is not modified.
    """
    cfg, options = ctx.config, plan.reflection
    assert options is not None and options.judge_from_tail is not None and plan.num_guide is not None
    Lz, J, T = cfg.zigzag_width, options.judge_from_tail, len(ctx.sigmas) - 1
    j = len(queue) - J * Lz
    tail, guide = queue.frames(slice(j, None)), queue.frames(slice(j - plan.num_guide, j))
    m = plan.num_guidance if options.candidate_guidance else 0
    gauss_seidel = cfg.build_reads == "gauss_seidel"

    def grow(k: int) -> LatentRun:
        stream = mix_key(Stream.CANDIDATE, -1 - build_pass, k)
        cctx = replace(ctx, stage="reflection", search=True, ancestral_stream=mix_key(stream, Stream.ANCESTRAL), borders="fixed",
                       gauss_seidel=gauss_seidel)
        cand = LatentRun.empty_like(queue.x)
        for r in range(J):
            idx = tail.index[r * Lz:(r + 1) * Lz]
            cand = cand + tails(NoiseDraw("candidate", ctx.stage, stream, idx, (T,) * Lz, (build_pass, k)), queue.x)
            cand = queue_pass(replace(cctx, pass_index=r), cand, guide, num_guidance=m)
        return cand

    return _check(ctx, queue, j, options, stats, grow)


def _pick(mask: torch.Tensor, a: LatentRun, b: LatentRun) -> LatentRun:
    """Per video (``mask [B]``), the frames of ``a`` where True, else ``b`` (same levels and indices).

    A frame keeps its x0 prediction only where both runs have one (``has_denoised`` is per frame),
    and its multistep history (``past``) only as deep as both runs have it (``depth`` is per frame):
    a shallower history is a valid lower-order one (REFERENCE A1.2).
    """
    m = mask.to(a.x.device).view(-1, 1, 1, 1, 1)
    has = tuple(p and q for p, q in zip(a.has_denoised, b.has_denoised))
    depth = tuple(min(p, q) for p, q in zip(a.depth, b.depth))
    past = None if a.past is None and b.past is None else torch.where(m.unsqueeze(0), a.past_or_zeros(), b.past_or_zeros())
    return replace(b, x=torch.where(m, a.x, b.x), denoised=torch.where(m, a.denoised, b.denoised), has_denoised=has,
                   past=past, depth=depth)
