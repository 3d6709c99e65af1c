"""Long videos from the ToyDiT with miga_core: the toy preset, the ladder, and one call per batch of videos."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._core import Callback, GuidanceOptions, MigaConfig, MigaResult, PromptSchedule, ReflectionOptions, generate

from .model import ToyDenoiser, ToyDiT
from .world import ClipSpec

__all__ = ["TOY_STEPS", "toy_preset", "ladder", "VideoRun", "generate_videos"]

TOY_STEPS = 48  # T of the toy ladder: the fewest Euler steps at which the shipped ToyDiT keeps its object in all of its own clips (toy_models_steps_cuda.json)


def toy_preset() -> tuple[MigaConfig, GuidanceOptions, ReflectionOptions]:
    """MIGA options for the ToyDiT (f0 = 16 as trained; L_zig = 4, u = 6, m_guid = 4 scaled from the paper's VC2 row)."""
    return (MigaConfig(window_length=16, zigzag_width=4, unified_steps=6, sampler="euler", parameterization="flow"),
            GuidanceOptions(num_guidance=4), ReflectionOptions(threshold=0.01))


def ladder(steps: int = TOY_STEPS, shift: float = 1.0) -> torch.Tensor:
    """Flow sigmas ``[steps + 1]`` from 1 to 0, time-shifted as SD3/Wan: ``s' = shift*s / (1 + (shift-1)*s)``."""
    s = torch.linspace(1.0, 0.0, steps + 1)
    return shift * s / (1 + (shift - 1) * s)


@dataclass(frozen=True)
class VideoRun:
    """Videos ``[V, F, 3, H, W]`` in [0, 1], the core's result, and the model calls made."""

    video: torch.Tensor
    result: MigaResult
    model_calls: int


def generate_videos(
    model: ToyDiT,
    prompts: Sequence[Sequence[ClipSpec]],
    num_frames: int,
    config: MigaConfig,
    *,
    starts: Sequence[int] = (0,),
    steps: int = TOY_STEPS,
    guidance: GuidanceOptions | None = None,
    reflection: ReflectionOptions | None = None,
    cfg_scale: float = 3.0,
    callback: Callback | None = None,
    device: str | torch.device = "cpu",
) -> VideoRun:
    """Generate V videos at once (the latent batch), video v conditioned by ``prompts[v][i]`` from frame ``starts[i]``.

    One latent per frame (the ``vc2`` rule), so frames and latents coincide [D6].

    Raises:
        MigaError subclasses for invalid options (before any model call).
    """
    attributes = torch.tensor([[spec.attributes() for spec in row] for row in prompts])  # [V, P, 4]
    schedule = PromptSchedule(tuple(starts), tuple(range(len(starts))), len(starts)) if len(starts) > 1 else None
    denoiser = ToyDenoiser(model, attributes, cfg_scale)
    size = model.config.size
    result = generate(denoiser, ladder(steps), num_frames, config, latent_shape=(len(prompts), 3, size, size), device=device,
                      guidance=guidance, reflection=reflection, prompts=schedule, callback=callback)
    video = ((result.latents.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 1, 3, 4).cpu()
    return VideoRun(video, result, denoiser.calls)
