"""Our stand-in VC2 eps UNet and VP schedule for the ``vc2-official`` records (docs/official_equivalence.md).

The records in ``tests/fixtures/official_vc2/`` were made by running the authors' released VideoCrafter2 MIGA loop
outside this project with :func:`standin_eps` in place of the LVDM UNet and :func:`~tests.official_standin.keyed_noise`
in place of every global-RNG draw. Nothing here comes from the released code.

* :func:`vc2_alphas_cumprod` -- VC2's linear-beta schedule (0.00085..0.012 over 1000 steps) as the model keeps it (float32).
* :func:`standin_eps` -- the "UNet": one eps per latent frame of a VP-space window, from per-frame integer timesteps and text.
* :class:`StandinEpsDenoiser` -- the project's ``D(x, sigma, prompt) -> x0`` contract around it (k-diffusion sigma space).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tests.official_standin import TEXT_DIM, LadderStandin, standin_text

__all__ = ["vc2_alphas_cumprod", "standin_eps", "cfg_eps", "StandinEpsDenoiser"]


def vc2_alphas_cumprod() -> torch.Tensor:
    """``[1000]`` float32 cumulative alphas of VC2's "linear" schedule: betas = linspace(sqrt(8.5e-4), sqrt(1.2e-2))**2."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


_ABAR = vc2_alphas_cumprod().to(torch.float64)


def standin_eps(x: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The stand-in UNet on VP latents ``x`` ``[C, F, H, W]``: an eps per frame.

    With ``a_f = alphas_cumprod[t_f]`` (float64 of the float32 schedule) and ``s_f = t_f / 1000``::

        mix_f = sum_{g != f} w(f, g) (1 - 0.6 s_g) x_g,  w = 0.4 * 0.5^(|f-g|-1) (g < f), 0.2 * 0.5^(|f-g|-1) (g > f)
        z_f   = gain(text)_c x_f + 0.3 mix_f + 0.2 sin(1.3 (f + 1) + 2 s_f) + P(text)_{c,h,w}
        x0_f  = 1.2 tanh(z_f)
        eps_f = (x_f - sqrt(a_f) x0_f) / sqrt(1 - a_f)

    so each output depends on its own and its neighbours' timesteps, its position and order in the window and the text.

    Raises:
        ValueError: timesteps neither one nor one per frame, or outside 0..999.
    """
    C, F, H, W = x.shape
    dt = x.dtype
    t = timesteps.reshape(-1).to(torch.int64)
    if t.numel() == 1:
        t = t.expand(F)
    if t.numel() != F or (t < 0).any() or (t > 999).any():
        raise ValueError(f"timesteps={t.tolist()} for a window of F={F}: allowed one or F values in 0..999. Fix: pass one per frame.")
    a = _ABAR[t].to(dt)
    s = t.to(dt) / 1000.0
    pos = torch.arange(F, dtype=dt)
    d = pos.view(-1, 1) - pos.view(1, -1)
    dist = d.abs().clamp(min=1) - 1
    w = torch.where(d > 0, 0.4 * 0.5**dist, torch.where(d < 0, 0.2 * 0.5**dist, torch.zeros_like(d)))
    w = w * (1 - 0.6 * s).view(1, -1)
    mix = (w.view(1, F, F, 1, 1) * x.unsqueeze(1)).sum(dim=2)
    txt = text.reshape(-1).to(dt)
    gain = (0.6 + 0.3 * txt[torch.arange(C) % TEXT_DIM]).view(C, 1, 1, 1)
    cc = torch.arange(C, dtype=dt).view(C, 1, 1)
    hh = torch.arange(H, dtype=dt).view(1, H, 1)
    ww = torch.arange(W, dtype=dt).view(1, 1, W)
    pattern = 0.5 * torch.sin(1.5 * txt[1] * (hh + 1) + 0.8 * txt[2] * (ww + 1) + (cc + 1) * txt[3] + txt[0])
    where = 0.2 * torch.sin(1.3 * (pos + 1).view(1, F, 1, 1) + 2 * s.view(1, F, 1, 1))
    x0 = 1.2 * torch.tanh(gain * x + 0.3 * mix + where + pattern.unsqueeze(1))
    av = a.view(1, F, 1, 1)
    return (x - av.sqrt() * x0) / (1 - av).sqrt()


def cfg_eps(x: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor, text_null: torch.Tensor, guide: float) -> torch.Tensor:
    """CFG as the official sampler combines its two calls: ``u + g (c - u)``."""
    e_c = standin_eps(x, timesteps, text)
    e_u = standin_eps(x, timesteps, text_null)
    return e_u + guide * (e_c - e_u)


class StandinEpsDenoiser(LadderStandin):
    """:func:`cfg_eps` in the project's contract ``D(x, sigma, prompt) -> x0`` (k-diffusion sigma space, eps model).

    Each frame's sigma is looked up on the ladder and replaced by its integer timestep; the VP input is
    ``x / sqrt(1 + sigma^2)`` and ``x0 = x - sigma * eps``.

    Args:
        sigmas: ``[T + 1]`` the ladder; timesteps: ``[T + 1]`` the model timestep of each ladder entry.
        prompts: the schedule's prompts (weighted sum of their :func:`standin_text`); negative_prompt; guide (CFG).
    Raises (on call):
        ValueError: a sigma off the ladder.
    """

    ON_LADDER_LAST = True  # the ladder has no trailing 0

    def x0(self, x: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        sg = sigma.to(x.dtype).view(1, -1, 1, 1)
        e = cfg_eps(x / (1 + sg**2).sqrt(), self.timestep_of(sigma), text, self.text_null, self.guide)
        return x - sg * e
