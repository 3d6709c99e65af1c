"""Per-latent sampler steps [D2], in k-diffusion sigma space.

Each step moves every latent frame one level down, each frame with its own
``sigma -> sigma_next``. Sources: k-diffusion ``sample_euler``,
``sample_euler_ancestral`` (``get_ancestral_step``) and ``sample_dpmpp_2m``
(Karras et al. 2022; Lu et al. 2022, DPM-Solver++(2M)), rewritten per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["StepInputs", "euler_step", "euler_ancestral_step", "dpmpp_2m_step", "SAMPLERS", "ancestral_split"]


@dataclass(frozen=True)
class StepInputs:
    """One step for F latent frames.

    Attributes:
        x: latents ``[B, C, F, H, W]`` at ``sigma``.
        denoised: the model's x0 prediction ``[B, C, F, H, W]``.
        sigma, sigma_next: ``[F]`` current and next noise of each frame (``sigma > 0``).
        sigma_prev: ``[F]`` the noise of each frame's previous level (multistep only).
        old_denoised: ``[B, C, F, H, W]`` each frame's previous x0 prediction (multistep only).
        has_old: ``[F]`` bool, whether ``old_denoised`` is valid for the frame.
        eta: ancestral noise scale.
        noise: returns ``[B, C, F, H, W]`` standard noise for the frames (ancestral only).
    """

    x: torch.Tensor
    denoised: torch.Tensor
    sigma: torch.Tensor
    sigma_next: torch.Tensor
    sigma_prev: torch.Tensor | None = None
    old_denoised: torch.Tensor | None = None
    has_old: torch.Tensor | None = None
    eta: float = 1.0
    noise: Callable[[], torch.Tensor] | None = None


def _frames(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[F]`` -> ``[1, 1, F, 1, 1]`` on ``like``'s device."""
    return v.to(like.device).view(1, 1, -1, 1, 1)


def euler_step(s: StepInputs) -> torch.Tensor:
    """Euler: ``x + (sigma_next - sigma) * (x - denoised) / sigma``.

    For eps models in sigma space this is DDIM with eta 0; for flow models it is the
    flow-matching Euler step [D2].
    """
    sigma, sigma_next = _frames(s.sigma, s.x), _frames(s.sigma_next, s.x)
    d = (s.x - s.denoised) / sigma
    return (s.x + d * (sigma_next - sigma)).to(s.x.dtype)


def ancestral_split(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """k-diffusion ``get_ancestral_step``: ``(sigma_down, sigma_up)`` per frame."""
    up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).clamp_min(0).sqrt())
    down = (sigma_next**2 - up**2).clamp_min(0).sqrt()
    return down, up


def euler_ancestral_step(s: StepInputs) -> torch.Tensor:
    """Euler ancestral for eps models: deterministic step to ``sigma_down``, then noise ``sigma_up``."""
    down, up = ancestral_split(s.sigma, s.sigma_next, s.eta)
    sigma = _frames(s.sigma, s.x)
    d = (s.x - s.denoised) / sigma
    x = s.x + d * (_frames(down, s.x) - sigma)
    if s.noise is not None and bool((up > 0).any()):
        x = x + s.noise() * _frames(up, s.x)
    return x.to(s.x.dtype)


def dpmpp_2m_step(s: StepInputs) -> torch.Tensor:
    """DPM-Solver++(2M); a frame without a previous prediction (or going to 0) takes the first-order step.

    With ``h = log(sigma / sigma_next)``: ``x' = (sigma_next/sigma) x + (1 - sigma_next/sigma) D``,
    ``D = denoised`` (first order) or ``(1 + 1/2r) denoised - 1/2r old_denoised``,
    ``r = log(sigma_prev/sigma) / h``.
    """
    sigma, sigma_next = s.sigma.to(torch.float64), s.sigma_next.to(torch.float64)
    ratio = sigma_next / sigma
    d = s.denoised
    if s.old_denoised is not None and s.has_old is not None and s.sigma_prev is not None:
        second = s.has_old.to(torch.bool) & (sigma_next > 0)
        if bool(second.any()):
            h = torch.log(sigma / sigma_next.clamp_min(1e-30))
            h_last = torch.log(s.sigma_prev.to(torch.float64) / sigma)
            r = torch.where(second, h_last / h, torch.ones_like(h))
            c = torch.where(second, 1.0 / (2.0 * r), torch.zeros_like(r))
            c = _frames(c.to(torch.float32), s.x)
            d = (1 + c) * s.denoised - c * s.old_denoised
    ratio_f = _frames(ratio.to(torch.float32), s.x)
    return (ratio_f * s.x + (1 - ratio_f) * d).to(s.x.dtype)


SAMPLERS: dict[str, Callable[[StepInputs], torch.Tensor]] = {
    "euler": euler_step,
    "euler_ancestral": euler_ancestral_step,
    "dpmpp_2m": dpmpp_2m_step,
}
