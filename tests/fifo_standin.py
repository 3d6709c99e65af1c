"""Our stand-in eps model for the FIFO-Diffusion equivalence records (``tests/fixtures/fifo_official/``).

The records were made by running FIFO-Diffusion's released ``fifo_ddim_sampling`` (outside this project, see
``docs/official_equivalence.md`` "FIFO-Diffusion") with :func:`standin_eps` in place of VC2's UNet and
:func:`~miga_core.noise.latent_noise` in place of its global-RNG draws. Our FIFO run must call the very same
function, so it lives here; it contains nothing of the released code.

* :func:`standin_eps` -- the "UNet": one eps prediction per frame of a window, from the window's DDPM-space
  latents, one integer DDPM timestep per frame (0..999) and a text vector.
* :class:`EpsStandinDenoiser` -- the project's ``D(x, sigma, prompt) -> x0`` contract around it, as a host wraps
  an eps model (ComfyUI's EPS: input ``x / sqrt(1 + sigma^2)``, ``x0 = x - sigma * eps``), with CFG inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tests.official_standin import TEXT_DIM, LadderStandin, standin_text

__all__ = ["standin_eps", "cfg_eps", "EpsStandinDenoiser"]


def standin_eps(x: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The stand-in UNet: an eps prediction per frame of one window.

    For frame ``f`` of F (``s_f = t_f / 1000``, earlier frames ``g < f``, later ``g > f``)::

        mix_f = sum_{g != f} w(f, g) * (1 - 0.5 * s_g) * x_g,   w = 0.45 * 0.55^(|f-g|-1) (g < f), 0.25 * 0.55^(|f-g|-1) (g > f)
        z_f   = a(text)_c * (0.6 + 0.4 * s_f) * x_f + 0.35 * mix_f + 0.15 * sin(1.1 * (f + 1) + 3 * s_f) + P(text)_{c,h,w}
        eps_f = s_f * x_f + (1 - s_f) * 0.8 * tanh(z_f)

    so every output depends on its own timestep, each neighbour's timestep, its position and the order of the
    frames, and the text (per-channel gain ``a``, spatial pattern ``P``); near t = 1000 it predicts ``eps ~ x`` (a
    DDPM latent there is nearly all noise), which keeps the DDIM trajectory bounded. Timestep 0 is allowed (DDIM's
    identity last step calls the model there). One window on its own, plain broadcast sums, dtype of ``x``.

    Args:
        x: ``[C, F, H, W]`` DDPM-space latents of one window.
        timesteps: ``[F]`` or ``[1]`` integer DDPM timesteps in 0..999.
        text: ``[TEXT_DIM]`` from :func:`~tests.official_standin.standin_text`.
    Returns:
        ``[C, F, H, W]`` eps, dtype of ``x``.
    Raises:
        ValueError: a timestep outside 0..999 or a length that is neither 1 nor F.
    """
    C, F, H, W = x.shape
    dt = x.dtype
    t = timesteps.reshape(-1).to(torch.float64)
    if t.numel() == 1:
        t = t.expand(F)
    if t.numel() != F:
        raise ValueError(f"timesteps has {t.numel()} values for a window of F={F} frames: allowed 1 or F. Fix: pass one per frame.")
    if (t < 0).any() or (t > 999).any():
        raise ValueError(f"timesteps={t.tolist()} outside 0..999. Fix: pass DDPM timesteps.")
    s = (t / 1000.0).to(dt)
    pos = torch.arange(F, dtype=dt)
    d = pos.view(-1, 1) - pos.view(1, -1)  # f - g
    dist = d.abs().clamp(min=1) - 1
    w = torch.where(d > 0, 0.45 * 0.55**dist, torch.where(d < 0, 0.25 * 0.55**dist, torch.zeros_like(d)))
    w = w * (1 - 0.5 * s).view(1, -1)
    mix = (w.view(1, F, F, 1, 1) * x.unsqueeze(1)).sum(dim=2)  # [C, F, H, W]
    txt = text.to(dt)
    gain = (0.5 + 0.25 * txt[torch.arange(C) % TEXT_DIM]).view(C, 1, 1, 1)
    cc = torch.arange(C, dtype=dt).view(C, 1, 1)
    hh = torch.arange(H, dtype=dt).view(1, H, 1)
    ww = torch.arange(W, dtype=dt).view(1, 1, W)
    pattern = 0.4 * torch.sin(1.7 * txt[1] * (hh + 1) + 0.9 * txt[2] * (ww + 1) + (cc + 1) * txt[3] + txt[0])
    sv = s.view(1, F, 1, 1)
    where = 0.15 * torch.sin(1.1 * (pos + 1).view(1, F, 1, 1) + 3 * sv)
    z = gain * (0.6 + 0.4 * sv) * x + 0.35 * mix + where + pattern.unsqueeze(1)
    return sv * x + (1 - sv) * 0.8 * torch.tanh(z)


def cfg_eps(x: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor, text_null: torch.Tensor, guide: float) -> torch.Tensor:
    """Classifier-free guidance as LVDM's DDIM combines its two model calls: ``u + g (c - u)``."""
    e_c = standin_eps(x, timesteps, text)
    e_u = standin_eps(x, timesteps, text_null)
    return e_u + guide * (e_c - e_u)


class EpsStandinDenoiser(LadderStandin):
    """:func:`standin_eps` in the project's contract ``D(x, sigma, prompt) -> denoised`` (miga_core.protocols).

    Each frame's sigma is looked up in the ladder (:func:`miga_core.ladder.ddim_ladder`) and replaced by its DDPM
    timestep; the model sees ``x / sqrt(1 + sigma^2)`` (DDPM space) and ``x0 = x - sigma * eps`` (CFG-combined eps).

    Args:
        sigmas: ``[T + 1]`` the ladder (trailing 0).  timesteps: ``[T]`` its DDPM timesteps.
        prompts: the schedule's prompt strings; the window's text is the prompt-weighted sum of their vectors.
        negative_prompt: the uncond branch's prompt (VC2: the empty prompt).  guide: CFG scale.
    Raises (on call):
        ValueError: a sigma that is not on the ladder (0 included).
    """

    def x0(self, x: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        sig = sigma.to(torch.float64).view(1, -1, 1, 1)
        x_in = (x.to(torch.float64) / torch.sqrt(1 + sig * sig)).to(x.dtype)
        eps = cfg_eps(x_in, self.timestep_of(sigma), text, self.text_null, self.guide)
        return x - sig.to(x.dtype) * eps
