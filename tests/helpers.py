"""Small denoisers and references shared by the tests (no host, CPU only)."""

from __future__ import annotations

import torch

from miga_core import Stream, latent_noise


class ToyDenoiser:
    """A deterministic, batch-invariant, nonlinear denoiser that sees levels, positions and order.

    For frame ``f`` of a window of F frames (sigma ``s``), with ``c(s) = 1 / sqrt(1 + s^2)``::

        mix_f = sum_{g != f} w(f - g) * c(s_g) * x_g        w(d) = 0.5 * 0.6^(d-1) (d > 0), 0.2 * 0.6^(-d-1) (d < 0)
        out_f = tanh(0.6 * x_f / (1 + s_f) + 0.4 * mix_f + 0.1 * sin(1.3 * (f + 1)) + prompt_gain * p) * (1 - 0.1 * s_f)

    so each output depends on its own sigma, on every neighbour's sigma (a context frame shown
    at the wrong level changes the updated frames), on its position in the window (``sin`` term)
    and on the order of frames (earlier frames weigh more than later ones), and on the prompt
    weights through ``p = sum_i (i + 1) * prompt_i``. Each batch row is computed on its own, so
    stacking windows cannot change a result bit.
    """

    def __init__(self, prompt_gain: float = 0.3) -> None:
        self.calls: list[dict] = []
        self.prompt_gain = prompt_gain

    def one(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        # x [C, F, H, W], sigma [F], prompt [P]
        F, dt = x.shape[1], x.dtype
        s = sigma.to(dt)
        pos = torch.arange(F, dtype=dt, device=x.device)
        d = pos.view(-1, 1) - pos.view(1, -1)  # f - g
        w = torch.where(d > 0, 0.5 * 0.6 ** (d - 1), torch.where(d < 0, 0.2 * 0.6 ** (-d - 1), torch.zeros_like(d)))
        w = w * (1 / torch.sqrt(1 + s**2)).view(1, -1)  # each neighbour scaled by its own sigma
        mix = (w.view(1, F, F, 1, 1) * x.unsqueeze(1)).sum(dim=2)  # [C, F, H, W]; a plain sum, no BLAS path
        p = (prompt.to(dt) * torch.arange(1, prompt.numel() + 1, dtype=dt, device=x.device)).sum()
        sv = s.view(1, -1, 1, 1)
        where = 0.1 * torch.sin(1.3 * (pos + 1)).view(1, -1, 1, 1)
        return torch.tanh(0.6 * x / (1 + sv) + 0.4 * mix + where + self.prompt_gain * p) * (1 - 0.1 * sv)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        self.calls.append({"shape": tuple(x.shape), "sigma": sigma.clone(), "prompt": prompt.clone(), "device": x.device})
        return torch.stack([self.one(x[b], sigma[b], prompt[b]) for b in range(x.shape[0])])


def fresh_noise(seed: int, n: int, shape: tuple[int, int, int, int], T: int) -> torch.Tensor:
    """The noise ``generate`` puts in latents 0..n-1 at level T (stream FRESH) [D1b]."""
    return latent_noise(seed, Stream.FRESH, range(n), [T] * n, shape)


def init_queue(denoiser, sigmas, num_frames, config, *, guidance=None, reflection=None, prompts=None, initial_clip=None, **kw):
    """``initialize_queue`` with its plan made from the old-style arguments (one line per test)."""
    from miga_core import check_ladder, initialize_queue, plan_run

    sigmas = check_ladder(sigmas)
    plan = plan_run(config, len(sigmas) - 1, num_frames, guidance=guidance, reflection=reflection, prompts=prompts,
                    has_initial_clip=initial_clip is not None)
    return initialize_queue(denoiser, sigmas, plan, initial_clip=initial_clip, **kw)
