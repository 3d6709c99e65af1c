"""``generate``: the whole MIGA run in one call (init -> zigzag stage -> unified stage)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import GuidanceOptions, MigaConfig, ReflectionOptions, validate_run
from .ladder import check_ladder, num_steps
from .prompts import PromptSchedule
from .protocols import Callback, Denoiser, Progress
from .reflection import ReflectionStats
from .stages import check_num_frames, initialize_queue, planned_windows, unified_stage, zigzag_stage

__all__ = ["MigaResult", "generate"]


@dataclass(frozen=True)
class MigaResult:
    """What a run returns.

    Attributes:
        latents: ``[B, C, N, H, W]`` clean latents of the video.
        reflection: self-reflection counters (``R_corr``, ``R_succ``) [D5].
        num_windows: model calls made (windows; each is one denoiser batch row, x2 with CFG).
    """

    latents: torch.Tensor
    reflection: ReflectionStats
    num_windows: int


def generate(
    denoiser: Denoiser,
    sigmas: torch.Tensor,
    num_frames: int,
    config: MigaConfig = MigaConfig(),
    *,
    initial_clip: torch.Tensor | None = None,
    latent_shape: tuple[int, int, int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    guidance: GuidanceOptions | None = None,
    reflection: ReflectionOptions | None = None,
    prompts: PromptSchedule | None = None,
    callback: Callback | None = None,
) -> MigaResult:
    """Generate ``num_frames`` latent frames with MIGA (or FIFO-Diffusion with ``mode="fifo"``).

    Args:
        denoiser: ``D(x [B,C,F,H,W], sigma [B,F], prompt [B,P]) -> x0 [B,C,F,H,W]``.
        sigmas: the host's ladder ``[T + 1]``, strictly descending.
        num_frames: N latent frames of the output.
        config: queue and sampler options (see :func:`miga_core.preset` for paper defaults).
        initial_clip: ``[B, C, f0, H, W]`` clean latents to start from (continuation); None samples one.
        latent_shape: ``(B, C, H, W)`` when there is no initial clip.
        guidance: long-range frame guidance [D3]; reflection: self-reflection [D5]; prompts: [D6].
        callback: called after every window with a :class:`~miga_core.WindowInfo`; raise to cancel.
    Returns:
        :class:`MigaResult`.
    Raises:
        MigaError subclasses for invalid input, all before the first model call;
        NonFiniteDenoiserOutputError if the model returns NaN/Inf.
    """
    sigmas = check_ladder(sigmas)
    T = num_steps(sigmas)
    validate_run(config, T, guidance=guidance, reflection=reflection)
    N = check_num_frames(num_frames)
    progress = Progress(planned_windows(config, T, N, has_initial_clip=initial_clip is not None), callback)
    state = initialize_queue(denoiser, sigmas, N, config, initial_clip=initial_clip, latent_shape=latent_shape, dtype=dtype,
                             device=device, guidance=guidance, prompts=prompts, progress=progress)
    state = zigzag_stage(denoiser, state, guidance=guidance, reflection=reflection, prompts=prompts, progress=progress)
    state = unified_stage(denoiser, state, prompts=prompts, progress=progress)
    return MigaResult(state.outputs.x, state.reflection, state.num_windows)
