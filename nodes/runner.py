"""What the MIGA nodes do, in a few functions over :mod:`.host` and :mod:`miga_core`.

The composable nodes pass a :class:`QueueHandle` (ComfyUI type ``MIGA_QUEUE``) from stage to
stage; the all-in-one sampler runs the three stages in one model session. Latents are kept
on ComfyUI's intermediate device (host memory) and only windows go to the GPU, so GPU memory
holds one window whatever the video length.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..miga_core import GuidanceOptions, MigaConfig, MigaQueue, ReflectionOptions, initialize_queue, unified_stage, validate_run, zigzag_stage
from ..miga_core.ladder import num_steps
from ..miga_core.prompts import PromptSchedule
from ..miga_core.protocols import Progress
from ..miga_core.stages import check_num_frames, init_windows, planned_windows, unified_windows
from . import host

__all__ = ["PromptInput", "QueueHandle", "VideoRequest", "start_queue", "run_zigzag", "run_unified", "sample"]


@dataclass(frozen=True)
class PromptInput:
    """The ``MIGA_PROMPTS`` value: a schedule and one CONDITIONING per prompt index [D6]."""

    schedule: PromptSchedule
    conditionings: tuple[Any, ...]


@dataclass(frozen=True)
class QueueHandle:
    """The ``MIGA_QUEUE`` value handed between the stage nodes.

    Attributes:
        run: model, conditioning, ladder and seed.
        state: the core's queue state (latents in model space, host memory).
        guidance: long-range guidance options given at initialisation [D3] (None: off).
        window_shape: ``[B * window_batch, 16, f0, H, W]``, the latent ComfyUI sizes VRAM for.
        seconds: wall time spent so far.
    """

    run: host.ModelRun
    state: MigaQueue
    guidance: GuidanceOptions | None
    window_shape: tuple[int, ...]
    seconds: float = 0.0


def model_run(model: Any, positive: list, negative: list, cfg: float, scheduler: str, steps: int, seed: int,
              prompts: PromptInput | None) -> host.ModelRun:
    """Check the model and build the :class:`~.host.ModelRun` (a schedule's prompts replace ``positive``)."""
    parameterization = host.check_model(model)
    sigmas = host.ladder(model, scheduler, steps)
    if prompts is None:
        return host.ModelRun(model, positive, negative, float(cfg), sigmas, seed, parameterization=parameterization)
    first, *rest = prompts.conditionings
    return host.ModelRun(model, first, negative, float(cfg), sigmas, seed, prompts.schedule, list(rest), parameterization)


def _progress(run: host.ModelRun, total: int) -> Progress:
    return Progress(total, host.HostProgress(run.model, total))


@dataclass(frozen=True)
class VideoRequest:
    """What the user asked for: ``num_pixel_frames`` (4n+1) of ``batch`` videos of ``height`` x ``width`` pixels,
    optionally continuing ``initial_clip`` (a LATENT of exactly ``window_length`` latents, VAE space)."""

    num_pixel_frames: int
    batch: int
    height: int
    width: int
    initial_clip: dict | None = None


@dataclass(frozen=True)
class _Prepared:
    config: MigaConfig
    num_frames: int
    clip: torch.Tensor | None  # [B, 16, f0, h, w] in model space
    latent_shape: tuple[int, int, int, int]  # (B, 16, h, w)
    window_shape: tuple[int, ...]


def _prepare(run: host.ModelRun, config: MigaConfig, video: VideoRequest, guidance: GuidanceOptions | None,
             reflection: ReflectionOptions | None = None) -> _Prepared:
    """Check everything before the first model call; convert frames and the initial clip [D4]."""
    config = config.with_(parameterization=run.parameterization)
    N = check_num_frames(host.latent_frames(video.num_pixel_frames))
    validate_run(config, num_steps(run.sigmas), guidance=guidance, reflection=reflection)
    clip, shape = None, (video.batch, 16, video.height // 8, video.width // 8)
    if video.initial_clip is not None:
        samples = host.check_latent(video.initial_clip, "initial_clip")
        clip = host.to_model_space(run.model, samples.float().to(host.storage_device()))
        shape = (clip.shape[0], 16, clip.shape[3], clip.shape[4])
    window_shape = (shape[0] * config.window_batch, 16, config.window_length, shape[2], shape[3])
    return _Prepared(config, N, clip, shape, window_shape)


def _initialize(denoiser, device, run: host.ModelRun, p: _Prepared, guidance: GuidanceOptions | None, progress: Progress) -> MigaQueue:
    return initialize_queue(denoiser, run.sigmas, p.num_frames, p.config.with_(compute_device=host.compute_device(device)),
                            initial_clip=p.clip, latent_shape=p.latent_shape, device=host.storage_device(), guidance=guidance,
                            prompts=run.schedule, progress=progress)


def start_queue(run: host.ModelRun, config: MigaConfig, video: VideoRequest, guidance: GuidanceOptions | None = None) -> QueueHandle:
    """Queue initialization node: Alg. 4 (MIGA) or FIFO's queue, optionally from an initial clip [D4].

    Raises:
        MigaValueError subclasses, before any model call.
    """
    p = _prepare(run, config, video, guidance)
    total = init_windows(p.config, num_steps(run.sigmas), has_initial_clip=p.clip is not None)
    t0 = time.perf_counter()

    def work(denoiser, device):
        return _initialize(denoiser, device, run, p, guidance, _progress(run, total))

    state = host.run_on_model(run, p.window_shape, work) if total else _initialize(None, host.storage_device(), run, p, guidance, None)
    return QueueHandle(run, state, guidance, p.window_shape, time.perf_counter() - t0)


def run_zigzag(handle: QueueHandle, reflection: ReflectionOptions | None = None) -> QueueHandle:
    """Zigzag stage node: stage 1 until every latent left the queue at level u [D4], with DCE [D3, D5]."""
    state = handle.state
    validate_run(state.config, state.num_steps, guidance=handle.guidance, reflection=reflection)
    total = planned_windows(state.config, state.num_steps, state.num_frames) - init_windows(state.config, state.num_steps) - unified_windows(state.config, state.num_frames)
    t0 = time.perf_counter()

    def work(denoiser, device):
        return zigzag_stage(denoiser, state, guidance=handle.guidance, reflection=reflection, prompts=handle.run.schedule,
                            progress=_progress(handle.run, max(total, 0)))

    new = host.run_on_model(handle.run, handle.window_shape, work)
    return replace(handle, state=new, seconds=handle.seconds + time.perf_counter() - t0)


def run_unified(handle: QueueHandle) -> tuple[dict, str]:
    """Unified stage node: all frames from level u to 0 together (Eq. 4) [D4].

    Returns:
        ``({"samples": [B, 16, N, H, W]}, report JSON)``; samples in VAE space for VAE Decode.
    """
    state = handle.state
    calls = unified_windows(state.config, state.num_frames)
    t0 = time.perf_counter()

    def work(denoiser, device):
        return unified_stage(denoiser, state, prompts=handle.run.schedule, progress=_progress(handle.run, calls))

    new = host.run_on_model(handle.run, handle.window_shape, work) if calls else state
    return _finish(replace(handle, state=new, seconds=handle.seconds + time.perf_counter() - t0))


def sample(run: host.ModelRun, config: MigaConfig, video: VideoRequest, guidance: GuidanceOptions | None = None,
           reflection: ReflectionOptions | None = None) -> tuple[dict, str]:
    """The all-in-one sampler: initialization, zigzag and unified stages in one model session."""
    p = _prepare(run, config, video, guidance, reflection)
    total = planned_windows(p.config, num_steps(run.sigmas), p.num_frames, has_initial_clip=p.clip is not None)
    t0 = time.perf_counter()

    def work(denoiser, device):
        progress = _progress(run, total)
        state = _initialize(denoiser, device, run, p, guidance, progress)
        state = zigzag_stage(denoiser, state, guidance=guidance, reflection=reflection, prompts=run.schedule, progress=progress)
        return unified_stage(denoiser, state, prompts=run.schedule, progress=progress)

    state = host.run_on_model(run, p.window_shape, work)
    return _finish(QueueHandle(run, state, guidance, p.window_shape, time.perf_counter() - t0))


def _finish(handle: QueueHandle) -> tuple[dict, str]:
    state = handle.state
    latents = host.to_latent_space(handle.run.model, state.outputs.x.float()).to(host.storage_device())
    num_pixel_frames = (state.num_frames - 1) * 4 + 1
    report = {
        "mode": state.config.mode,
        "num_frames": state.num_frames,
        "num_pixel_frames": num_pixel_frames,
        "steps": state.num_steps,
        "model_calls": state.num_windows,
        "model_calls_per_latent": round(state.num_windows / state.num_frames, 4),
        "cfg_doubles_calls": handle.run.cfg != 1.0,
        "seconds": round(handle.seconds, 3),
        "seconds_per_pixel_frame": round(handle.seconds / num_pixel_frames, 4),
        "reflection": {"n_all": state.reflection.n_all, "n_eval": state.reflection.n_eval, "n_corr": state.reflection.n_corr,
                       "r_corr": state.reflection.r_corr, "r_succ": state.reflection.r_succ},
    }
    return {"samples": latents}, json.dumps(report, indent=1)
