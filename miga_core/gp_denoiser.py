"""An exact denoiser for a Gaussian-process video prior: a model with no weights.

Data: every latent pixel follows, over time, a zero-mean Gaussian process with squared-
exponential kernel ``K_ij = exp(-(i - j)^2 / (2 l^2))`` over the window's frame order. For
``x = a x0 + s n`` per frame (eps: ``a = 1``; flow: ``a = 1 - sigma``; ``s = sigma``) the
posterior mean is ``E[x0 | x] = K A (A K A + S^2)^-1 x`` (Rasmussen & Williams 2006, Eq. 2.23).
It is the Bayes-optimal x0 predictor at per-frame noise levels, so it exercises the queue the
way a trained model does, and runs anywhere: the embedded default of ``python -m miga_core.demo``
and a reference in tests. Each batch row is solved on its own (batch-invariant).
"""

from __future__ import annotations

import torch

__all__ = ["GaussianProcessDenoiser"]


class GaussianProcessDenoiser:
    """``D(x [B,C,F,H,W], sigma [B,F], prompt [B,P]) -> x0 [B,C,F,H,W]`` for a GP prior over frames.

    Args:
        length_scale: kernel length in frames (larger = smoother videos).
        parameterization: ``"flow"`` or ``"eps"``, as in :class:`~miga_core.MigaConfig`.
        prompt_means: optional ``[P, C]`` per-prompt channel means (the prior's mean), so a
            prompt schedule visibly changes the video.
    """

    def __init__(self, length_scale: float = 3.0, parameterization: str = "flow", prompt_means: torch.Tensor | None = None) -> None:
        self.length_scale = float(length_scale)
        self.parameterization = parameterization
        self.prompt_means = prompt_means
        self.calls = 0

    def _one(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        C, F, H, W = x.shape
        t = torch.arange(F, dtype=torch.float64)
        K = torch.exp(-((t[:, None] - t[None, :]) ** 2) / (2 * self.length_scale**2)) + 1e-6 * torch.eye(F, dtype=torch.float64)
        s = sigma.to(torch.float64).cpu()
        a = torch.ones_like(s) if self.parameterization == "eps" else 1 - s
        mean = torch.zeros(C, dtype=torch.float64)
        if self.prompt_means is not None:
            mean = prompt.to(torch.float64).cpu() @ self.prompt_means.to(torch.float64)
        y = x.to(torch.float64).cpu().permute(1, 0, 2, 3).reshape(F, -1)  # [F, C*H*W]
        mu = mean.view(1, C, 1).expand(F, C, H * W).reshape(F, -1)
        A = torch.diag(a)
        cov = A @ K @ A + torch.diag(s**2)
        gain = K @ A @ torch.linalg.inv(cov)  # [F, F]
        x0 = mu + gain @ (y - a[:, None] * mu)
        return x0.reshape(F, C, H, W).permute(1, 0, 2, 3).to(dtype=x.dtype, device=x.device)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        self.calls += x.shape[0]
        return torch.stack([self._one(x[b], sigma[b], prompt[b]) for b in range(x.shape[0])])
