"""Small denoisers and references shared by the tests (no host, CPU only)."""

from __future__ import annotations

import torch

from miga_core import Stream, latent_noise


class ToyDenoiser:
    """A deterministic, batch-invariant, nonlinear denoiser that mixes frames.

    Each window row is computed on its own (a Python loop over the batch), so stacking
    windows cannot change a result bit. It mixes frames so window placement matters, depends
    on each frame's sigma so per-frame levels matter, and on the prompt weights.
    """

    def __init__(self, prompt_gain: float = 0.3) -> None:
        self.calls: list[dict] = []
        self.prompt_gain = prompt_gain

    def one(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        # x [C, F, H, W], sigma [F], prompt [P]
        s = sigma.to(x.dtype).view(1, -1, 1, 1)
        context = x.mean(dim=1, keepdim=True)  # every frame sees the window
        p = (prompt.to(x.dtype) * torch.arange(1, prompt.numel() + 1, dtype=x.dtype)).sum()
        return torch.tanh(0.6 * x / (1 + s) + 0.4 * context + self.prompt_gain * p) * (1 - 0.1 * s)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        self.calls.append({"shape": tuple(x.shape), "sigma": sigma.clone(), "prompt": prompt.clone()})
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
