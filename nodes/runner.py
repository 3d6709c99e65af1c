"""What the MIGA nodes do, in a few functions over :mod:`.host` and :mod:`miga_core`.

The composable nodes pass a :class:`QueueHandle` (ComfyUI type ``MIGA_QUEUE``) from stage to
stage; the all-in-one sampler runs the three stages in one model session. Latents are kept
on ComfyUI's intermediate device (host memory) and only windows go to the GPU, so GPU memory
holds one window whatever the video length.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..miga_core import (GuidanceOptions, MigaConfig, MigaQueue, MigaValueError, ReflectionOptions, RunPlan,
                         initialize_queue, plan_run, unified_stage, zigzag_stage)
from ..miga_core import run as run_plan
from ..miga_core.checkpoint import Checkpointer, load_checkpoint, plan_data
from ..miga_core.errors import bad_value
from ..miga_core.frames import num_latent_frames, num_pixel_frames
from ..miga_core.ladder import num_steps
from ..miga_core.prompts import PromptSchedule
from ..miga_core.reflection import ReflectionStats
from . import host
from .families import FAMILIES

__all__ = ["PromptInput", "QueueHandle", "VideoRequest", "plan_video", "start_queue", "run_zigzag",
           "run_unified", "sample"]

LATENT_RULE = "wan21"  # the default family's pixel <-> latent rule (miga_core.frames); a run uses its model family's
log = logging.getLogger("miga")


@dataclass(frozen=True)
class PromptInput:
    """The ``MIGA_PROMPTS`` value: a schedule and one CONDITIONING per prompt index [D6]."""

    schedule: PromptSchedule
    conditionings: tuple[Any, ...]
    #: the schedule for another pixel <-> latent rule (``schedule`` is Wan2.1's 4n+1; a family with one latent per frame
    #: rebuilds it from the same pixel frames: :func:`model_run`)
    for_rule: Callable[[str], PromptSchedule] | None = None


@dataclass(frozen=True)
class QueueHandle:
    """The ``MIGA_QUEUE`` value handed between the stage nodes.

    Attributes:
        run: model, conditioning, ladder and seed.
        state: the core's queue state (latents in model space, host memory; its plan holds the options).
        window_shape: ``[B * window_batch, 16, f0, H, W]``, the latent ComfyUI sizes VRAM for.
        seconds: wall time spent so far.
    """

    run: host.ModelRun
    state: MigaQueue
    window_shape: tuple[int, ...]
    seconds: float = 0.0


def model_run(model: Any, positive: list, negative: list, cfg: float, scheduler: str, steps: int, seed: int,
              prompts: PromptInput | None, devices: str = "") -> host.ModelRun:
    """Check the model and build the :class:`~.host.ModelRun` (a schedule's prompts replace ``positive``).

    ``devices``: the sampler's ``devices`` input (``host.parse_devices``: ``""`` = the model's own device).

    Raises:
        MigaValueError: a bad ``devices`` string (also refused in validation); see ``host.check_model``.
    """
    parameterization = host.check_model(model)
    family = host.model_family(model).name
    sigmas = host.ladder(model, scheduler, steps)
    where = host.parse_devices(devices)
    if prompts is None:
        return host.ModelRun(model, positive, negative, float(cfg), sigmas, seed, parameterization=parameterization, family=family,
                             devices=where)
    first, *rest = prompts.conditionings
    rule = FAMILIES[family].latent_rule
    schedule = prompts.for_rule(rule) if prompts.for_rule is not None and rule != "wan21" else prompts.schedule
    return host.ModelRun(model, first, negative, float(cfg), sigmas, seed, schedule, list(rest), parameterization, family, where)


@dataclass(frozen=True)
class VideoRequest:
    """What the user asked for: ``num_pixel_frames`` (4n+1) of ``batch`` videos of ``height`` x ``width`` pixels,
    optionally continuing ``initial_clip`` (a LATENT of exactly ``window_length`` latents, VAE space)."""

    num_pixel_frames: int
    batch: int
    height: int
    width: int
    initial_clip: dict | None = None


def plan_video(config: MigaConfig, steps: int, num_pixel_frames: int, *, guidance: GuidanceOptions | None = None,
               reflection: ReflectionOptions | None = None, prompts: PromptSchedule | None = None,
               has_initial_clip: bool = False, latent_rule: str = LATENT_RULE) -> RunPlan:
    """The run plan of a node's inputs: the one validation, used by ``validate_inputs`` and at execution.

    ``latent_rule``: the model family's pixel <-> latent rule (``families.ModelFamily.latent_rule``).

    Raises:
        MigaError subclasses naming the input, its value, the allowed range and the fix.
    """
    return plan_run(config, steps, num_latent_frames(num_pixel_frames, latent_rule), guidance=guidance, reflection=reflection,
                    prompts=prompts, has_initial_clip=has_initial_clip)


@dataclass(frozen=True)
class _Prepared:
    plan: RunPlan
    clip: torch.Tensor | None  # [B, 16, f0, h, w] in model space
    latent_shape: tuple[int, int, int, int]  # (B, 16, h, w)
    window_shape: tuple[int, ...]


def _prepare(run: host.ModelRun, config: MigaConfig, video: VideoRequest, guidance: GuidanceOptions | None,
             reflection: ReflectionOptions | None = None) -> _Prepared:
    """Plan the run (everything checked before the first model call) and convert the initial clip [D4]."""
    family = FAMILIES[run.family]
    for name, value in (("width", video.width), ("height", video.height)):
        if value % family.size_multiple:
            lower = max(family.size_multiple, value // family.size_multiple * family.size_multiple)
            raise MigaValueError(bad_value(name, value, f"a multiple of {family.size_multiple} pixels for {family.title}",
                                           f"use {lower} or {lower + family.size_multiple}"))
    # with several devices the executor says where windows run (miga_core refuses a compute_device with Replicas)
    compute = None if run.devices else host.compute_device(run.model.load_device)
    config = config.with_(parameterization=run.parameterization, compute_device=compute)
    plan = plan_video(config, num_steps(run.sigmas), video.num_pixel_frames, guidance=guidance, reflection=reflection,
                      prompts=run.schedule, has_initial_clip=video.initial_clip is not None, latent_rule=family.latent_rule)
    channels, k = family.latent_channels, family.pixels_per_latent
    clip, shape = None, (video.batch, channels, video.height // k, video.width // k)
    if video.initial_clip is not None:
        samples = host.check_latent(video.initial_clip, "initial_clip", channels)
        got = (samples.shape[0], channels, samples.shape[3], samples.shape[4])
        if got != shape:
            raise MigaValueError(bad_value(
                "initial_clip", f"batch {got[0]} of {got[3] * k}x{got[2] * k} pixels",
                f"the node's batch_size={video.batch}, width={video.width}, height={video.height}",
                f"set batch_size={got[0]}, width={got[3] * k}, height={got[2] * k} to match the clip, or resize the clip"))
        clip = host.to_model_space(run.model, samples.float().to(host.storage_device()))
    window_shape = (shape[0] * config.window_batch, channels, config.window_length, shape[2], shape[3])
    return _Prepared(plan, clip, shape, window_shape)


def start_queue(run: host.ModelRun, config: MigaConfig, video: VideoRequest, guidance: GuidanceOptions | None = None) -> QueueHandle:
    """Queue initialization node: Alg. 4 (MIGA) or FIFO's queue, optionally from an initial clip [D4].

    Raises:
        MigaValueError subclasses, before any model call.
    """
    p = _prepare(run, config, video, guidance)
    total = p.plan.calls["initial_clip"] + p.plan.calls["init"]
    t0 = time.perf_counter()

    def work(denoiser, device):
        return initialize_queue(denoiser, run.sigmas, p.plan, initial_clip=p.clip, latent_shape=p.latent_shape,
                                device=host.storage_device(), callback=host.HostProgress(run.model, total))

    state = host.run_on_model(run, p.window_shape, work) if total else work(None, None)
    return QueueHandle(run, state, p.window_shape, time.perf_counter() - t0)


def run_zigzag(handle: QueueHandle, reflection: ReflectionOptions | None = None) -> QueueHandle:
    """Zigzag stage node: stage 1 until every latent left the queue at level u [D4], with DCE [D3, D5].

    Self-reflection is given here (it acts in stage 1 only, ``phase="stage1"``: ``RunPlan.with_reflection``): the
    plan is re-validated with it.
    """
    state = replace(handle.state, plan=handle.state.plan.with_reflection(reflection))
    t0 = time.perf_counter()

    def work(denoiser, device):
        return zigzag_stage(denoiser, state, callback=host.HostProgress(handle.run.model, state.plan.calls["zigzag"]))

    new = host.run_on_model(handle.run, handle.window_shape, work) if state.plan.calls["zigzag"] else state
    return replace(handle, state=new, seconds=handle.seconds + time.perf_counter() - t0)


def run_unified(handle: QueueHandle) -> tuple[dict, str]:
    """Unified stage node: all frames from level u to 0 together (Eq. 4) [D4].

    Returns:
        ``({"samples": [B, 16, N, H, W]}, report JSON)``; samples in VAE space for VAE Decode.
    """
    state = handle.state
    calls = state.plan.calls["unified"]
    t0 = time.perf_counter()

    def work(denoiser, device):
        return unified_stage(denoiser, state, callback=host.HostProgress(handle.run.model, calls))

    new = host.run_on_model(handle.run, handle.window_shape, work) if calls else state
    seconds = handle.seconds + time.perf_counter() - t0
    return _finish(handle.run, new.plan, new.outputs.x, new.reflection, new.num_windows, new.model_calls, seconds)


def sample(run: host.ModelRun, config: MigaConfig, video: VideoRequest, guidance: GuidanceOptions | None = None,
           reflection: ReflectionOptions | None = None, resume_from: str = "", checkpoint_minutes: float = 0.0) -> tuple[dict, str]:
    """The all-in-one sampler: :func:`miga_core.run` (initialization, zigzag and unified stages) in one model session.

    The run is checkpointed (:class:`~miga_core.checkpoint.Checkpointer`) every ``checkpoint_minutes`` (0: only on cancel
    or error) to ``resume_from`` or ``<output>/miga_checkpoints/miga_<run hash>.safetensors``; the file is removed when the
    run finishes. A non-empty ``resume_from`` continues that checkpoint bit-identically, or refuses it (another model,
    prompt or options; a damaged file) before any model call.
    """
    p = _prepare(run, config, video, guidance, reflection)
    fp = host.fingerprint(run, p.clip, p.latent_shape)
    identity = hashlib.sha256(json.dumps([fp, plan_data(p.plan)], sort_keys=True).encode()).hexdigest()[:16]
    path = host.checkpoint_path(resume_from, identity)
    point = None
    if resume_from.strip():
        point = load_checkpoint(path, plan=p.plan, sigmas=run.sigmas, fingerprint=fp, device=host.storage_device())
        log.info("MIGA: resuming %s at %s, window %d of %d", path, point.state.at, point.progress["window"], p.plan.total_calls)
    start = {} if point is not None else {"initial_clip": p.clip, "latent_shape": p.latent_shape, "device": host.storage_device()}
    t0 = time.perf_counter()
    used: list = []

    def work(denoiser, device):
        used.append(denoiser)
        with Checkpointer(path, fp, interval_s=checkpoint_minutes * 60 if checkpoint_minutes > 0 else None) as ck:
            return run_plan(denoiser, run.sigmas, p.plan, callback=host.HostProgress(run.model, p.plan.total_calls), checkpoint=ck,
                            resume=point, **start)

    result = host.run_on_model(run, p.window_shape, work)
    return _finish(run, p.plan, result.latents, result.reflection, result.num_windows, result.model_calls, time.perf_counter() - t0,
                   executor=used[0] if used else None)


def _finish(run: host.ModelRun, plan: RunPlan, x: torch.Tensor, stats: ReflectionStats, num_windows: int, model_calls: int,
            seconds: float, executor: Any = None) -> tuple[dict, str]:
    latents = host.to_latent_space(run.model, x.float()).to(host.storage_device())
    N, frames = plan.num_frames, num_pixel_frames(plan.num_frames, FAMILIES[run.family].latent_rule)
    report = {
        "mode": plan.config.mode,
        "num_frames": N,
        "num_pixel_frames": frames,
        "steps": plan.num_steps,
        "windows": num_windows,
        "windows_planned": plan.total_calls,
        "model_calls": model_calls,
        "model_calls_per_latent": round(model_calls / N, 4),
        "cfg_doubles_calls": run.cfg != 1.0,
        "seconds": round(seconds, 3),
        "seconds_per_pixel_frame": round(seconds / frames, 4),
        "reflection": {"n_all": stats.n_all, "n_eval": stats.n_eval, "n_corr": stats.n_corr,
                       "r_corr": stats.r_corr, "r_succ": stats.r_succ},
        "devices": list(run.devices) or [str(run.model.load_device)],
    }
    waves = getattr(executor, "waves", None)
    if run.devices and waves:  # windows each device ran (miga_core.Replicas: round robin within each pass)
        report["windows_per_device"] = [sum(w[k] for w in waves) for k in range(len(run.devices))]
    host.send_to_client(host.REPORT_EVENT, {"report": report})
    return {"samples": latents}, json.dumps(report, indent=1)
