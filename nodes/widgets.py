"""Input definitions shared by the queue-initialization node and the all-in-one sampler.

Widget order is part of every saved workflow: append new inputs at the end, never insert or
rename (docs/style.md). Defaults are the ``wan21`` preset (miga_core.config.PRESETS: the paper's Wan2.1 values with the
four choices of the authors' released loop that measured better on the toy benchmark, issue 9; T = steps).
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ..miga_core import MigaConfig, MigaValueError, preset
from ..miga_core.errors import bad_value
from ..miga_core.frames import num_latent_frames
from . import host

__all__ = ["WAN", "QUEUE", "PROMPTS", "GUIDANCE", "REFLECTION", "CATEGORY", "START_WIDGETS", "APPENDED_START_WIDGETS", "start_inputs",
           "appended_start_inputs", "config_from", "check_pixel_frames", "check_ranges", "check_size"]

CATEGORY = "sampling/miga"
QUEUE = io.Custom("MIGA_QUEUE")
PROMPTS = io.Custom("MIGA_PROMPTS")
GUIDANCE = io.Custom("MIGA_GUIDANCE")
REFLECTION = io.Custom("MIGA_REFLECTION")

WAN, _, _ = preset("wan21")
MAX_FRAMES = 100_001  # pixel frames; memory is constant, time grows linearly
SIZE_MULTIPLE = 16  # and the DiT patches 2x2 latents: width/height a multiple of 16 pixels

#: The widgets of a node that starts a run (MigaSampler, MigaQueueInit), as validate_inputs receives them.
START_WIDGETS = ("width", "height", "num_pixel_frames", "batch_size", "seed", "steps", "cfg", "scheduler", "mode",
                 "window_length", "zigzag_width", "unified_steps", "sampler", "window_stride", "update", "window_batch")
#: Queue widgets appended later (optional inputs, after every older one); a prompt without them runs with
#: :func:`config_from`'s defaults.
APPENDED_START_WIDGETS = ("borders",)


def model_inputs() -> list[io.Input]:
    """model, positive, negative and the video size."""
    return [
        io.Model.Input("model", tooltip="A Wan2.1 text-to-video model (UNETLoader), with any LoRA / ModelSamplingSD3 shift applied."),
        io.Conditioning.Input("positive", tooltip="Prompt for the whole video (a connected prompt schedule replaces it)."),
        io.Conditioning.Input("negative", tooltip="Negative prompt for CFG."),
        io.Int.Input("width", default=832, min=16, max=8192, step=16, tooltip="Video width in pixels, a multiple of 16."),
        io.Int.Input("height", default=480, min=16, max=8192, step=16, tooltip="Video height in pixels, a multiple of 16."),
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
                               "(needs zigzag_width 1, unified_steps 0 and update lookahead, which the editor sets when you pick "
                               "fifo, with borders fixed as FIFO-Diffusion has them; guidance "
                               "and reflection are refused)."),
        io.Int.Input("window_length", default=WAN.window_length, min=2, max=256,
                     tooltip="f0, latent frames per model call: the model's clip length (Wan2.1: 21 latents = 81 frames)."),
        io.Int.Input("zigzag_width", default=WAN.zigzag_width, min=1, max=256,
                     tooltip="L_zig, latents per noise level in the queue (paper: 7 for Wan2.1; 1 = FIFO's queue, required in fifo mode)."),
        io.Int.Input("unified_steps", default=WAN.unified_steps, min=0, max=1000,
                     tooltip="u, steps finished by the unified stage at one shared level (paper: 9; = steps for unified only; 0 in fifo mode)."),
        io.Combo.Input("sampler", options=["euler", "dpmpp_2m", "euler_ancestral", "uni_pc"], default="euler",
                       tooltip="How each frame takes one denoising step: euler (default), dpmpp_2m, euler_ancestral (needs an eps "
                               "model) or uni_pc (the authors' Wan sampler: second order, each frame keeps its own history)."),
        io.Int.Input("window_stride", default=0, min=0, max=256, tooltip="Advanced. How many latent frames each model call moves forward; 0 = half the window (the usual choice). Smaller is slower and smoother."),
        io.Combo.Input("update", options=["lookahead", "former", "official"], default=WAN.update,
                       tooltip="Advanced. Which frames of a window each call updates: official (the authors' released code: "
                               "the frames from the start of the window's region, the last window all it can; the default, it "
                               "measured smoother with fewer jumps and fewer calls), lookahead (the later middle, as the paper and "
                               "FIFO-Diffusion do; fifo mode needs it) or former (the start of the window)."),
        io.Int.Input("window_batch", default=1, min=1, max=64,
                     tooltip="Advanced. Windows computed together in one model call: the same video, faster if the GPU memory allows."),
    ]


def start_inputs(guidance_tooltip: str) -> list[io.Input]:
    """Every input of a node that starts a run (MigaQueueInit, MigaSampler), in frozen order."""
    return model_inputs() + queue_inputs() + [
        io.Latent.Input("initial_clip", optional=True,
                        tooltip="A clip of exactly window_length latents (81 frames for Wan2.1) to start from, e.g. a KSampler "
                                "result to continue; its size and batch must equal width/height/batch_size."),
        PROMPTS.Input("prompts", optional=True, tooltip="A MIGA prompt schedule; replaces positive."),
        GUIDANCE.Input("guidance", optional=True, tooltip=guidance_tooltip),
    ]


def appended_start_inputs() -> list[io.Input]:
    """Queue widgets added after the first release, appended after every other input of a start node (optional, so a
    saved workflow or API prompt without them runs with :func:`config_from`'s defaults)."""
    return [
        io.Combo.Input("borders", options=["fixed", "rotating"], default=WAN.borders, optional=True,
                       tooltip="Advanced. Where the window edges fall: rotating (the authors' released code: the edges move by "
                               "one frame every pass, so no frame always sits at an edge; the default, it measured smoother with "
                               "fewer jumps) or fixed (the same edges every pass, as the paper and FIFO-Diffusion). A prompt "
                               "saved without this input runs rotating in miga mode and fixed in fifo mode."),
    ]


def config_from(mode: str, window_length: int, zigzag_width: int, unified_steps: int, sampler: str, window_stride: int,
                update: str, window_batch: int, seed: int, borders: str | None = None) -> MigaConfig:
    """The MigaConfig of the widget values, as they are (fifo mode with zigzag_width != 1 or unified_steps != 0 is
    refused by the core, never corrected) [D4]; the one place the start nodes, their validation and the plan preview
    build it. ``borders`` None (a prompt saved before the widget existed): FIFO-Diffusion's ``"fixed"`` in fifo mode,
    else the ``wan21`` preset's ``"rotating"``."""
    if borders is None:
        borders = "fixed" if mode == "fifo" else WAN.borders
    return MigaConfig(window_length=window_length, window_stride=window_stride or None, zigzag_width=zigzag_width,
                      unified_steps=unified_steps, sampler=sampler, update=update, window_batch=window_batch, seed=seed, mode=mode,
                      borders=borders)


def check_pixel_frames(num_pixel_frames: Any, latent_rule: str = "wan21") -> bool | str:
    """ComfyUI validation of ``num_pixel_frames``: True or the error message (in range; 4n+1 for Wan2.1's rule)."""
    if not isinstance(num_pixel_frames, int) or not 1 <= num_pixel_frames <= MAX_FRAMES:
        form = " of the form 4n+1" if latent_rule == "wan21" else ""
        return f"num_pixel_frames={num_pixel_frames!r}: allowed is an integer 1..{MAX_FRAMES}{form}. Fix: use 481."
    try:
        num_latent_frames(num_pixel_frames, latent_rule)
    except ValueError as exc:
        return str(exc)
    return True


def check_ranges(node: Any, values: dict[str, Any]) -> bool | str:
    """ComfyUI's own min/max/option check for ``values`` (name -> widget value; None = linked, skipped).

    ComfyUI skips these checks for every input that ``validate_inputs`` names (execution.py ``validate_inputs``),
    so a node that names an input repeats them here from its schema.
    """
    types = node.INPUT_TYPES()
    spec = {**types.get("required", {}), **types.get("optional", {})}
    for name, value in values.items():
        if value is None or name not in spec:
            continue
        kind, info = spec[name][0], (spec[name][1] if len(spec[name]) > 1 else {})
        options = kind if isinstance(kind, list) else info.get("options") if kind == "COMBO" else None
        if options is not None and value not in options:
            return bad_value(name, value, f"one of {options}", "pick a listed value")
        low, high = info.get("min"), info.get("max")
        if kind in ("INT", "FLOAT") and ((low is not None and value < low) or (high is not None and value > high)):
            return bad_value(name, value, f"{low}..{high}", f"use a value from {low} to {high}")
    return True


def check_size(width: int, height: int) -> None:
    """Refuse a video size the model cannot take exactly (no silent flooring).

    Raises:
        MigaValueError: width or height not a multiple of 16 pixels (8 per latent, 2x2 latent patches).
    """
    for name, value in (("width", width), ("height", height)):
        if value % SIZE_MULTIPLE:
            lower = max(SIZE_MULTIPLE, value // SIZE_MULTIPLE * SIZE_MULTIPLE)
            raise MigaValueError(bad_value(name, value, f"a multiple of {SIZE_MULTIPLE} pixels (Wan2.1: 8 pixels per latent, 2x2 "
                                                        "latent patches)", f"use {lower} or {lower + SIZE_MULTIPLE}"))
