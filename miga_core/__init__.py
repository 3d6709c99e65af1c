"""miga_core: the MIGA long-video sampler as a host-agnostic library.

MIGA (arXiv 2605.18233, ICML 2026) on FIFO-Diffusion's diagonal denoising: a queue of
latent frames at rising noise levels slid through a short-clip video model window by
window. This package is the math only (PyTorch + einops); it never imports a host
(ComfyUI) and touches no device at import. Decisions are tagged as in docs/algorithm.md: [D1]
queue pass, [D2] samplers, [D3] long-range guidance, [D4] two-stage alignment, [D5]
self-reflection, [D6] prompt schedules.

Composable API (mirrors the node graph)::

    plan = plan_run(config, num_steps=len(sigmas) - 1, num_frames=121, guidance=GuidanceOptions(),
                    reflection=ReflectionOptions())          # validates everything once
    state = initialize_queue(denoiser, sigmas, plan, latent_shape=(1, 16, 60, 104))
    state = zigzag_stage(denoiser, state)
    state = unified_stage(denoiser, state)
    video_latents = state.outputs.x  # [B, C, N, H, W]

or ``run(denoiser, sigmas, plan, ...)`` / ``generate(...)`` for all three; ``run(..., checkpoint=Checkpointer(path))``
saves the run between passes and ``run(..., resume=load_checkpoint(path, plan=plan))`` continues it bit-identically;
``run(..., sink=write_chunk)`` streams a long video in bounded host memory (latents spilled to files, the finished
ones handed to ``write_chunk`` a chunk at a time; :mod:`miga_core.stream`).
"""

from .config import (
    PRESETS,
    GuidanceOptions,
    MigaConfig,
    ReflectionOptions,
    preset,
)
from .errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointMismatchError,
    DenoiserOutputShapeError,
    InvalidConfigError,
    InvalidInitialClipError,
    InvalidLadderError,
    MigaError,
    MigaTypeError,
    MigaValueError,
    NonFiniteDenoiserOutputError,
    PromptScheduleError,
)
from .ladder import check_ladder, ddim_ladder, official_flow_ladder, sigma_of_levels
from .latents import LatentRun
from .noise import KeyedNoise, NoiseDraw, NoiseSource, Stream, add_noise, latent_noise
from .pipeline import MigaResult, generate, run
from .frames import LatentRule, num_latent_frames, num_pixel_frames, pixel_to_latent
from .plan import VARIANTS, RunPlan, plan_run
from .prompts import PromptSchedule
from .protocols import Callback, Denoiser, Progress, WindowInfo
from .passes import PassContext, queue_pass
from .executors import Distributed, Executor, Replicas, ReplicaFailedError, Sequential
from .reflection import ReflectionStats, consistency_score, reflect
from .samplers import SAMPLERS
from .stages import MigaQueue, Position, RunPoint, initialize_queue, refine_stage, unified_stage, zigzag_stage
from .stream import LatentSink, Spill, SpilledRun, stream_pass
from .checkpoint import Checkpointer, load_checkpoint, read_checkpoint, save_checkpoint
from .windows import Window, guidance_positions, history_needed, plan_windows

__all__ = [
    "PRESETS", "GuidanceOptions", "MigaConfig", "ReflectionOptions", "preset",
    "VARIANTS", "RunPlan", "plan_run", "LatentRule", "num_latent_frames", "num_pixel_frames",
    "DenoiserOutputShapeError", "InvalidConfigError", "InvalidInitialClipError", "InvalidLadderError", "MigaError",
    "MigaTypeError", "MigaValueError", "NonFiniteDenoiserOutputError", "PromptScheduleError",
    "check_ladder", "sigma_of_levels", "LatentRun", "Stream", "add_noise", "latent_noise",
    "MigaResult", "generate", "run", "PromptSchedule", "pixel_to_latent",
    "Callback", "Denoiser", "Progress", "WindowInfo", "PassContext", "queue_pass", "Executor", "Sequential", "Replicas", "Distributed", "ReplicaFailedError",
    "ReflectionStats", "consistency_score", "reflect", "SAMPLERS",
    "MigaQueue", "initialize_queue", "unified_stage", "zigzag_stage", "refine_stage",
    "KeyedNoise", "NoiseDraw", "NoiseSource", "official_flow_ladder", "ddim_ladder",
    "Window", "guidance_positions", "history_needed", "plan_windows",
    "Position", "RunPoint", "Checkpointer", "load_checkpoint", "read_checkpoint", "save_checkpoint",
    "CheckpointError", "CheckpointCorruptError", "CheckpointMismatchError",
    "LatentSink", "Spill", "SpilledRun", "stream_pass",
]

__version__ = "0.1.0"
