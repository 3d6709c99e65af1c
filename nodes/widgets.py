"""Input definitions shared by the queue-initialization node and the all-in-one sampler.

Widget order is part of every saved workflow: append new inputs at the end, never insert or
rename (docs/style.md). Defaults are the paper's Wan2.1 preset (docs/algorithm.md, "Paper defaults"; T = steps).
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ..miga_core import MigaConfig, preset
from ..miga_core.frames import num_latent_frames
from . import host

__all__ = ["QUEUE", "PROMPTS", "GUIDANCE", "REFLECTION", "CATEGORY", "start_inputs", "config_from", "check_pixel_frames"]

CATEGORY = "sampling/miga"
QUEUE = io.Custom("MIGA_QUEUE")
PROMPTS = io.Custom("MIGA_PROMPTS")
GUIDANCE = io.Custom("MIGA_GUIDANCE")
REFLECTION = io.Custom("MIGA_REFLECTION")

WAN, _, _ = preset("wan21")
MAX_FRAMES = 100_001  # pixel frames; memory is constant, time grows linearly


def model_inputs() -> list[io.Input]:
    """model, positive, negative and the video size."""
    return [
        io.Model.Input("model", tooltip="A Wan2.1 text-to-video model (UNETLoader), with any LoRA / ModelSamplingSD3 shift applied."),
        io.Conditioning.Input("positive", tooltip="Prompt for the whole video (a connected prompt schedule replaces it)."),
        io.Conditioning.Input("negative", tooltip="Negative prompt for CFG."),
        io.Int.Input("width", default=832, min=16, max=8192, step=16, tooltip="Video width in pixels."),
        io.Int.Input("height", default=480, min=16, max=8192, step=16, tooltip="Video height in pixels."),
        io.Int.Input("num_pixel_frames", default=481, min=1, max=MAX_FRAMES, step=4,
                     tooltip="Video frames to generate, 4n+1 (Wan2.1 packs 4 frames per latent after the first): 481 = 121 latents."),
        io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Videos generated side by side."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Noise seed: the noise of each latent is a function of (seed, frame, level)."),
        io.Int.Input("steps", default=54, min=1, max=1000, tooltip="T, denoising steps per frame (the paper uses 54 for Wan2.1)."),
        io.Float.Input("cfg", default=6.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance scale (1 = off, half the model calls)."),
        io.Combo.Input("scheduler", options=host.SCHEDULER_NAMES, default="simple", tooltip="How the T+1 sigmas are spaced (as in KSampler)."),
    ]


def queue_inputs() -> list[io.Input]:
    """The queue options (MigaConfig) [D1, D2, D4]."""
    return [
        io.Combo.Input("mode", options=["miga", "fifo"], default="miga",
                       tooltip="miga: zigzag queue + unified stage (the paper). fifo: FIFO-Diffusion's diagonal queue for A/B "
                               "(zigzag_width and unified_steps are then 1 and 0; guidance and reflection are refused)."),
        io.Int.Input("window_length", default=WAN.window_length, min=2, max=256,
                     tooltip="f0, latent frames per model call: the model's clip length (Wan2.1: 21 latents = 81 frames)."),
        io.Int.Input("zigzag_width", default=WAN.zigzag_width, min=1, max=256,
                     tooltip="L_zig, latents per noise level in the queue (paper: 7 for Wan2.1; 1 = FIFO's queue). miga mode only."),
        io.Int.Input("unified_steps", default=WAN.unified_steps, min=0, max=1000,
                     tooltip="u, steps finished by the unified stage at one shared level (paper: 9; = steps for unified only). miga mode only."),
        io.Combo.Input("sampler", options=["euler", "dpmpp_2m", "euler_ancestral"], default="euler",
                       tooltip="Per-frame step [D2]. euler_ancestral needs an eps model."),
        io.Int.Input("window_stride", default=0, min=0, max=256, tooltip="s, latents each window updates; 0 = window_length // 2."),
        io.Combo.Input("update", options=["lookahead", "former"], default="lookahead",
                       tooltip="Where a window's updated latents sit: lookahead (FIFO's, middle-late) or former (head) [D1]."),
        io.Int.Input("window_batch", default=1, min=1, max=64,
                     tooltip="Windows per model call; same result, more speed if VRAM allows."),
    ]


def start_inputs(guidance_tooltip: str) -> list[io.Input]:
    """Every input of a node that starts a run (MigaQueueInit, MigaSampler), in frozen order."""
    return model_inputs() + queue_inputs() + [
        io.Latent.Input("initial_clip", optional=True,
                        tooltip="A clip of exactly window_length latents (81 frames for Wan2.1) to start from, e.g. a KSampler "
                                "result to continue; its size wins over width/height/batch."),
        PROMPTS.Input("prompts", optional=True, tooltip="A MIGA prompt schedule; replaces positive."),
        GUIDANCE.Input("guidance", optional=True, tooltip=guidance_tooltip),
    ]


def config_from(mode: str, window_length: int, zigzag_width: int, unified_steps: int, sampler: str, window_stride: int,
                update: str, window_batch: int, seed: int) -> MigaConfig:
    """The MigaConfig of the widget values (fifo mode fixes L_zig = 1 and u = 0, FIFO's queue) [D4]."""
    if mode == "fifo":
        zigzag_width, unified_steps = 1, 0
    return MigaConfig(window_length=window_length, window_stride=window_stride or None, zigzag_width=zigzag_width,
                      unified_steps=unified_steps, sampler=sampler, update=update, window_batch=window_batch, seed=seed, mode=mode)


def check_pixel_frames(num_pixel_frames: Any) -> bool | str:
    """ComfyUI validation of ``num_pixel_frames``: True or the error message (4n+1, in range)."""
    if not isinstance(num_pixel_frames, int) or not 1 <= num_pixel_frames <= MAX_FRAMES:
        return f"num_pixel_frames={num_pixel_frames!r}: allowed is an integer 1..{MAX_FRAMES} of the form 4n+1. Fix: use 481."
    try:
        num_latent_frames(num_pixel_frames, "wan21")
    except ValueError as exc:
        return str(exc)
    return True
