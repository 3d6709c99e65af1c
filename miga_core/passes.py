"""One queue pass Phi (paper Eq. 2, Alg. 3 / Alg. 7; [D1, D2, D3]).

Windows read the queue as it was when the pass began (Jacobi), each updates its own
region, every queue latent moves exactly one level down. Windows may run one by one
or ``window_batch`` at a time with identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from .config import MigaConfig
from .errors import DenoiserOutputShapeError, InvalidConfigError, MigaValueError, NonFiniteDenoiserOutputError, bad_value
from .executors import ModelCall, executor_of
from .ladder import num_steps, sigma_of_levels, signal_scale
from .latents import LatentRun
from .noise import KeyedNoise, NoiseDraw, NoiseSource, Stream
from .prompts import PromptSchedule
from .protocols import Denoiser, Progress
from .samplers import PAST_SAMPLERS, SAMPLERS, SignalScale, StepInputs, scaled_update
from .windows import Window, plan_windows

__all__ = ["PassContext", "queue_pass", "pass_windows", "window_batches"]


@dataclass(frozen=True)
class PassContext:
    """Everything a pass needs besides the latents.

    Attributes:
        denoiser: the model [:class:`~miga_core.protocols.Denoiser`].
        sigmas: the ladder ``[T + 1]``.
        config: queue and sampler options.
        prompts: the prompt schedule [D6].
        progress: call counter and callback.
        stage: reported to the callback.
        num_frames: N, reported to the callback.
        ancestral_stream: noise stream of ancestral steps (candidates use their own).
        search: the pass belongs to self-reflection's candidate search (not in the plan's count) [D5].
        noise: where noise comes from (None: :class:`~miga_core.noise.KeyedNoise` of ``config.seed``) [D1b, D7].
        guidance_rule: ``"even"`` [D3] or ``"official"`` guidance positions [D7].
        pass_index: the pass's number in its stage (rotating borders shift by it) [D7].
        borders: ``"fixed"`` or ``"rotating"`` (None: ``config.borders``) (REFERENCE A1.5).
        gauss_seidel: guidance latents are read as the earlier windows of this pass left them, at their new
            level (REFERENCE A1.4, item 16); local parts never hold such latents, so only guidance differs.
    """

    denoiser: Denoiser
    sigmas: torch.Tensor
    config: MigaConfig
    prompts: PromptSchedule
    progress: Progress
    stage: str = "zigzag"
    num_frames: int = 0
    ancestral_stream: int = Stream.ANCESTRAL
    search: bool = False
    noise: NoiseSource | None = None
    guidance_rule: str = "even"
    pass_index: int = 0
    borders: str | None = None
    gauss_seidel: bool = False

    @property
    def noise_source(self) -> NoiseSource:
        """:attr:`noise`, or the keyed default of the run's seed."""
        return self.noise if self.noise is not None else KeyedNoise(self.config.seed)


def _batches(windows: list[Window], size: int, gauss_seidel: bool = False) -> list[list[Window]]:
    """Consecutive windows of equal length, at most ``size`` per batch; with ``gauss_seidel`` a window never shares a
    batch with a window whose region holds one of its guidance latents (it must read that window's output)."""
    out: list[list[Window]] = []
    for w in windows:
        reads_batch = gauss_seidel and out and any(a <= p < b for p in w.positions[:w.num_guidance] for a, b in (v.region for v in out[-1]))
        if out and len(out[-1]) < size and len(out[-1][0].positions) == len(w.positions) and not reads_batch:
            out[-1].append(w)
        else:
            out.append([w])
    return out


def _waves(batches: list[list[Window]], gauss_seidel: bool) -> list[list[list[Window]]]:
    """Consecutive batches whose model calls may run at once: the whole pass under Jacobi reads [D1]; under
    Gauss-Seidel reads a batch starts a new wave when one of its windows reads (any position) the region of a window
    already in the wave, so reading the wave's inputs before its steps is exactly reading them one window at a time."""
    if not gauss_seidel:
        return [batches] if batches else []
    out: list[list[list[Window]]] = []
    regions: list[tuple[int, int]] = []
    for batch in batches:
        if out and not any(a <= p < b for w in batch for p in w.positions for a, b in regions):
            out[-1].append(batch)
        else:
            out.append([batch])
            regions = []
        regions += [w.region for w in batch]
    return out


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element of the floating-point tensor ``t`` is finite (no NaN or +-Inf).

    One reduction instead of an elementwise test: a sum is NaN or Inf when an element is, so a finite sum (accumulated in
    float32, float64 for float64 tensors) proves every element finite; only a sum that is not finite (a bad element, or
    finite values whose sum overflows) takes the exact elementwise test. At a Wan2.1 window (21 x 16 x 60 x 104 latents)
    this is about 0.06 ms on the host instead of 2 ms, paid at every model call.
    """
    total = t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32)
    return bool(torch.isfinite(total)) or bool(torch.isfinite(t).all())


def _check_output(out: object, expected: torch.Size, device: torch.device, batch: list[Window], x_index: tuple[int, ...], stage: str, B: int, h: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.shape != expected or out.device != device:
        got = f"{tuple(out.shape)} on {out.device}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise DenoiserOutputShapeError(
            f"denoiser output={got} does not match its input {tuple(expected)} [B, C, F, H, W] on {device} in stage {stage!r}. "
            "Fix: return one x0 prediction per input latent frame, on the input's device."
        )
    if not all_finite(out):
        bad = (~torch.isfinite(out)).flatten(3).any(-1).any(1)  # [B*nw, F]
        for k, w in enumerate(batch):
            frames = bad[k * B:(k + 1) * B].any(0).nonzero().flatten().tolist()
            if frames:
                idx = [x_index[w.positions[f]] for f in frames]
                raise NonFiniteDenoiserOutputError(
                    f"denoiser returned NaN/Inf in stage {stage!r}, in the window updating queue positions "
                    f"{w.region[0] - h}..{w.region[1] - h - 1}, for latents with absolute indices {idx}. "
                    "Fix: check the model's dtype (fp16 overflows; try bf16/fp32), the sigmas and the conditioning."
                )
    return out


def pass_windows(ctx: PassContext, num_history: int, queue_length: int, num_guidance: int = 0) -> list[Window]:
    """The windows of one pass of ``ctx`` over ``X = C + Q`` (:func:`~miga_core.windows.plan_windows` with the context's
    options, ``pass_index``, ``borders`` and guidance rule) [D1, D3, D7]: what :func:`queue_pass` runs."""
    cfg = ctx.config
    return plan_windows(num_history, queue_length, cfg.window_length, cfg.stride, num_guidance=num_guidance,
                        zigzag_width=cfg.zigzag_width, update=cfg.update, borders=ctx.borders or cfg.borders,
                        pass_index=ctx.pass_index, guidance_rule=ctx.guidance_rule)


def window_batches(ctx: PassContext, windows: list[Window]) -> list[list[Window]]:
    """The model calls :func:`queue_pass` makes of ``windows``: consecutive windows of equal length, at most
    ``window_batch`` per call (under Gauss-Seidel reads never one that reads another's region)."""
    return _batches(windows, ctx.config.window_batch, ctx.gauss_seidel)


def queue_pass(ctx: PassContext, queue: LatentRun, history: LatentRun, *, num_guidance: int = 0, frames_done: int = 0,
               windows: list[Window] | None = None) -> LatentRun:
    """Apply Phi once: every queue latent goes one level down [D1].

    Args:
        ctx: model, ladder, options, prompts, progress.
        queue: Q, every level >= 1.
        history: C, left context and guidance source (not updated).
        num_guidance: m guidance latents per window [D3] (0 in stage 2).
        frames_done: reported to the callback.
        windows: None (the whole pass: :func:`pass_windows`), or consecutive windows of a pass planned over a longer
            run, in X positions of ``history + queue``, whose regions tile one span of ``queue`` (a streamed pass runs
            a long pass a part at a time, :mod:`miga_core.stream`); the result then holds that span only.
    The window plan follows ``ctx.pass_index``, ``ctx.borders`` and ``ctx.gauss_seidel`` [D7].
    Returns:
        The new queue: same frames, levels - 1, ``denoised`` set to this pass's predictions;
        with ``uni_pc`` also ``past`` (the previous ``denoised``, the corrected start latents)
        and ``depth + 1`` (at most 2) per frame (REFERENCE A1.2).
    Raises:
        NonFiniteDenoiserOutputError, DenoiserOutputShapeError: the denoiser misbehaved.
    """
    if not len(queue):
        return queue
    if min(queue.level) < 1:
        raise MigaValueError(f"queue levels={queue.level} include a finished latent: allowed is levels >= 1. Fix: dequeue level-0 latents before a pass.")
    cfg, sigmas = ctx.config, ctx.sigmas
    T = num_steps(sigmas)
    h = len(history)
    x_all = torch.cat([history.x, queue.x], dim=2) if h else queue.x  # X = C + Q; only regions (in Q) need state
    x_index = history.index + queue.index
    B = x_all.shape[0]
    sig_X = sigma_of_levels(sigmas, history.level + queue.level)
    if windows is None:  # the whole pass: its regions tile the queue
        windows, lo, hi = pass_windows(ctx, h, len(queue), num_guidance), 0, len(queue)
    else:  # a part of a longer pass: the queue span its regions tile
        regions = sorted(w.region for w in windows)
        if not windows or regions[0][0] < h or regions[-1][1] > h + len(queue) or any(a[1] != b[0] for a, b in zip(regions, regions[1:])):
            raise MigaValueError(bad_value("windows", f"regions {regions[:3]}..{regions[-3:]}", f"consecutive regions inside the queue "
                                           f"(X positions {h}..{h + len(queue)})", "pass consecutive windows of one pass_windows() plan"))
        lo, hi = regions[0][0] - h, regions[-1][1] - h
    if (lo, hi) != (0, len(queue)):
        queue = queue.frames(slice(lo, hi))  # the frames whose state and result matter; X keeps every latent the windows read
    h += lo  # X position of the span's first latent: regions below count from there
    gauss_seidel = ctx.gauss_seidel
    if gauss_seidel:  # windows write their results back into X as they go (a copy: the inputs are never written)
        x_all, sig_X = x_all.clone(), sig_X.clone()
    noise_source = ctx.noise_source
    step, past_step = SAMPLERS[cfg.sampler], PAST_SAMPLERS.get(cfg.sampler)
    scales = signal_scale(sigmas, cfg.scale_arr)  # None: scale_arr "dropped" (s = 1) [D7]
    compute = torch.device(cfg.compute_device) if cfg.compute_device is not None else x_all.device
    new_x, new_d = torch.empty_like(queue.x), torch.empty_like(queue.x)  # every region writes its slice once
    new_past = queue.x.new_empty((2, *queue.x.shape)) if past_step is not None else None
    executor = executor_of(ctx.denoiser)
    if executor.multi_device and cfg.compute_device is not None:
        raise InvalidConfigError(bad_value("compute_device", cfg.compute_device, f"None with {type(executor).__name__}",
                                           "leave compute_device unset: the executor's devices say where windows run"))

    def prepare(batch: list[Window]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = [torch.as_tensor(w.positions, dtype=torch.long) for w in batch]
        xs = torch.cat([x_all.index_select(2, p.to(x_all.device)) for p in pos], dim=0)
        sig = torch.stack([sig_X[p] for p in pos]).repeat_interleave(B, dim=0)
        prompt = torch.stack([ctx.prompts.weights(x_index[w.region[0]]) for w in batch]).repeat_interleave(B, dim=0)
        return xs, sig, prompt

    def call_of(batch: list[Window]) -> ModelCall:
        shape = torch.Size((B * len(batch), x_all.shape[1], len(batch[0].positions), *x_all.shape[3:]))
        return ModelCall(partial(prepare, batch), shape, x_all.device, len(batch),
                         lambda out, xs: _check_output(out, xs.shape, xs.device, batch, x_index, ctx.stage, B, h))

    for wave in _waves(_batches(windows, cfg.window_batch, gauss_seidel), gauss_seidel):
        outs = executor.map_calls([call_of(batch) for batch in wave], compute)  # outputs in call order, on x_all's device
        written: list[tuple[Window, torch.Tensor]] = []
        try:
            for batch in wave:
                ctx.progress.count_call()
                out = next(outs)
                for k, w in enumerate(batch):
                    off, n = w.region_offset, w.region[1] - w.region[0]
                    denoised = out[k * B:(k + 1) * B, :, off:off + n]
                    region = queue.frames(slice(w.region[0] - h, w.region[1] - h))
                    levels = region.level
                    inputs = StepInputs(
                        x=region.x,
                        denoised=denoised.to(region.x.dtype),
                        sigma=sigma_of_levels(sigmas, levels),
                        sigma_next=sigma_of_levels(sigmas, [lv - 1 for lv in levels]),
                        sigma_prev=sigma_of_levels(sigmas, [min(lv + 1, T) for lv in levels]),
                        old_denoised=region.denoised,
                        has_old=torch.as_tensor(region.has_denoised),
                        eta=cfg.eta,
                        noise=lambda r=region: noise_source(NoiseDraw("ancestral", ctx.stage, ctx.ancestral_stream, r.index, r.level),
                                                            (B, r.x.shape[1], *r.x.shape[3:]), r.x.dtype, r.x.device),
                        sigma_prev2=sigma_of_levels(sigmas, [min(lv + 2, T) for lv in levels]),
                        past=region.past,
                        depth=torch.as_tensor(region.depth, dtype=torch.long),
                        final=torch.as_tensor([lv == 1 for lv in levels]),
                        parameterization=cfg.parameterization,
                    )
                    sl = slice(w.region[0] - h, w.region[1] - h)
                    if scales is not None:  # VC2's scale_arr: the step in unit-signal units [D7]
                        scale = SignalScale(*(sigma_of_levels(scales, [min(max(lv + d, 0), T) for lv in levels]) for d in (0, -1, 1, 2)))
                        update = past_step or (lambda s: (step(s), s.x))
                        new_x[:, :, sl], start = scaled_update(update, inputs, scale)
                        if past_step is not None:
                            new_past[1, :, :, sl], new_past[0, :, :, sl] = start, region.denoised
                    elif past_step is None:
                        new_x[:, :, sl] = step(inputs)
                    else:  # the frame's state moves one step: older x0 <- its last x0, start latent <- the corrected x
                        new_x[:, :, sl], new_past[1, :, :, sl] = past_step(inputs)
                        new_past[0, :, :, sl] = region.denoised
                    if cfg.final_step == "identity" and 1 in levels:  # DDIM's alphas_prev[0] = alphacums[0]: level 1 -> 0 keeps x [D7]
                        last = torch.as_tensor([lv == 1 for lv in levels], device=region.x.device).view(1, 1, -1, 1, 1)
                        new_x[:, :, sl] = torch.where(last, region.x, new_x[:, :, sl])
                    new_d[:, :, sl] = denoised
                    if gauss_seidel:  # written back after the wave: no window of the wave reads it [D7]
                        written.append((w, inputs.sigma_next))
                    ctx.progress.report(ctx.stage, frames_done, ctx.num_frames, denoised, region.index, region.level, search=ctx.search)
        finally:  # on an error or a cancel: the executor stops its devices before the error leaves the pass
            outs.close()
        for w, sigma_next in written:
            x_all[:, :, w.region[0]:w.region[1]] = new_x[:, :, w.region[0] - h:w.region[1] - h]
            sig_X[w.region[0]:w.region[1]] = sigma_next
    depth = tuple(min(d + 1, 2) for d in queue.depth) if past_step is not None else ()
    return LatentRun(new_x, tuple(k - 1 for k in queue.level), queue.index, new_d, (True,) * len(queue), new_past, depth)
