"""Our stand-in DiT, text encoder and keyed noise for the official-equivalence records.

The records in ``tests/fixtures/official_wan/`` were made by running the authors' released Wan
MIGA loop (outside this project, see ``docs/official_equivalence.md``) with the three functions of
this module in place of Wan's DiT, its T5 encoder and its global-RNG noise. Our ``wan21-official``
run must call the very same functions to be held against those records, so they live here, in the
project, and contain nothing of the released code. REFERENCE.md Part C describes the technique.

* :func:`standin_text` -- a prompt string to a small float64 vector (the "T5" stand-in).
* :func:`standin_velocity` -- the "DiT": one flow velocity per latent frame from the window's latents,
  one integer model timestep per frame (official ``t = trunc(1000 sigma)``) and the text vector.
* :func:`keyed_noise` -- one standard-normal latent per key ``(seed, site, extra ids, absolute index)``.
* :class:`StandinDenoiser` -- the project's ``D(x, sigma, prompt) -> denoised`` contract around them
  (CFG inside, sigma mapped to the official integer timestep through the recorded ladder).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

__all__ = ["TEXT_DIM", "SITES", "standin_text", "standin_velocity", "cfg_velocity", "noise_seed",
           "keyed_noise", "noise_key_name", "StandinDenoiser"]

TEXT_DIM = 8

# Call sites of the official loop's noise draws (REFERENCE.md A1.12) and the ids that key them.
# "index" is always the absolute latent index in the video (queue position + latents already output),
# except "clip"/"clip_spare" (frame of the initial-clip noise) and "refine" (index in the stage-2 output).
SITES: dict[str, int] = {
    "clip": 1,  # initial-clip noise, frame j of the 21 (official: seeded generator; A1.3)
    "clip_spare": 2,  # the unused second draw right after the initial clip, frame j of T*L_zig (A1.3)
    "build_renoise": 3,  # process_0: initial latent i noised to its level (A1.4)
    "build_fresh": 4,  # process_1: a new tail latent while the queue is built (A1.4)
    "candidate": 5,  # a self-reflection candidate's new latent; extra = (init pass, candidate) (A1.7)
    "stage1_fresh": 6,  # a new tail latent appended during stage 1 (A1.8)
    "stage1_fill": 7,  # stage-1 refill of a latent that has no sample yet (never seen to fire)
    "refine": 8,  # the re-noise of stage-2 output latent i before the re-denoise (A1.10)
    # VC2 (A2.3): the per-frame DDIM eta=1 step noise; extra = (phase 1 build / 2 stage 1 / 3 stage 2 / 4 refine, step index)
    "ancestral": 9,
    "discarded": 10,  # VC2: step noise drawn for a window frame whose output is discarded; index = window, extra = (frame,)
}

_MASK64 = (1 << 64) - 1


def standin_text(prompt: str) -> torch.Tensor:
    """A deterministic "text embedding": ``[TEXT_DIM]`` float64 in [-1, 1] from the prompt's SHA-256."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return torch.tensor([b / 127.5 - 1.0 for b in digest[:TEXT_DIM]], dtype=torch.float64)


def standin_velocity(x: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The stand-in DiT: a flow velocity per frame of one window.

    For frame ``f`` of F (``s_f = t_f / 1000``, earlier frames ``g < f``, later ``g > f``)::

        mix_f  = sum_{g != f} w(f, g) * (1 - 0.6 * s_g) * x_g,   w = 0.45 * 0.55^(|f-g|-1) (g < f), 0.25 * 0.55^(|f-g|-1) (g > f)
        z_f    = a(text)_c * x_f / (1 + s_f) + 0.35 * mix_f + 0.15 * sin(1.1 * (f + 1) + 3 * s_f) + P(text)_{c,h,w}
        x0_f   = 1.5 * tanh(z_f)
        v_f    = (x_f - x0_f) / s_f                      (so x_f - s_f * v_f = x0_f: a rectified-flow velocity)

    so every output depends on its own timestep, on each neighbour's timestep, on its position in the
    window and on the order of the frames (earlier neighbours weigh more), and on the text through a
    per-channel gain ``a`` and a spatial pattern ``P``. A window is computed on its own (no batching), in
    the dtype of ``x``, with plain broadcast sums (no BLAS), so results do not depend on what else is run.

    Args:
        x: ``[C, F, H, W]`` latents of one window (float64 for the records).
        timesteps: ``[F]`` or ``[1]`` integer model timesteps in 1..1000 (official ``trunc(1000 sigma)``).
        text: ``[TEXT_DIM]`` from :func:`standin_text`.
    Returns:
        ``[C, F, H, W]`` velocity, dtype of ``x``.
    Raises:
        ValueError: a timestep of 0 (the stand-in divides by it) or a length that is neither 1 nor F.
    """
    C, F, H, W = x.shape
    dt = x.dtype
    t = timesteps.reshape(-1).to(torch.float64)
    if t.numel() == 1:
        t = t.expand(F)
    if t.numel() != F:
        raise ValueError(f"timesteps has {t.numel()} values for a window of F={F} frames: allowed 1 or F. Fix: pass one per frame.")
    if (t <= 0).any():
        raise ValueError(f"timesteps={t.tolist()} contains 0: allowed 1..1000. Fix: never call the model at sigma 0.")
    s = (t / 1000.0).to(dt)
    pos = torch.arange(F, dtype=dt)
    d = pos.view(-1, 1) - pos.view(1, -1)  # f - g
    dist = d.abs().clamp(min=1) - 1
    w = torch.where(d > 0, 0.45 * 0.55**dist, torch.where(d < 0, 0.25 * 0.55**dist, torch.zeros_like(d)))
    w = w * (1 - 0.6 * s).view(1, -1)  # cleaner neighbours weigh more
    mix = (w.view(1, F, F, 1, 1) * x.unsqueeze(1)).sum(dim=2)  # [C, F, H, W]
    txt = text.to(dt)
    gain = (0.5 + 0.25 * txt[torch.arange(C) % TEXT_DIM]).view(C, 1, 1, 1)
    cc = torch.arange(C, dtype=dt).view(C, 1, 1)
    hh = torch.arange(H, dtype=dt).view(1, H, 1)
    ww = torch.arange(W, dtype=dt).view(1, 1, W)
    pattern = 0.4 * torch.sin(1.7 * txt[1] * (hh + 1) + 0.9 * txt[2] * (ww + 1) + (cc + 1) * txt[3] + txt[0])
    sv = s.view(1, F, 1, 1)
    where = 0.15 * torch.sin(1.1 * (pos + 1).view(1, F, 1, 1) + 3 * sv)
    z = gain * x / (1 + sv) + 0.35 * mix + where + pattern.unsqueeze(1)
    x0 = 1.5 * torch.tanh(z)
    return (x - x0) / sv


def cfg_velocity(x: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor, text_null: torch.Tensor, guide: float) -> torch.Tensor:
    """Classifier-free guidance as the official loop combines its two model calls: ``u + g (c - u)``."""
    v_c = standin_velocity(x, timesteps, text)
    v_u = standin_velocity(x, timesteps, text_null)
    return v_u + guide * (v_c - v_u)


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def noise_seed(seed: int, site: str, index: int, extra: Sequence[int] = ()) -> int:
    """The 63-bit generator seed of one draw: a hash of ``(seed, SITES[site], *extra, index)``."""
    if site not in SITES:
        raise ValueError(f"site={site!r} is not a noise site: allowed {sorted(SITES)}. Fix: use one of them.")
    h = 0x0FF1C1A1
    for p in (seed, SITES[site], *extra, index):
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1


def keyed_noise(seed: int, site: str, index: int, shape: Sequence[int], *, extra: Sequence[int] = (),
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """One standard-normal latent for a key, independent of call order (REFERENCE.md A1.12, Part C).

    Args:
        seed: the record's noise seed.
        site: a key of :data:`SITES`.
        index: absolute latent index (see :data:`SITES` for the exceptions).
        shape: ``[C, H, W]`` of one latent.
        extra: further ids; ``"candidate"`` uses ``(init pass index, candidate index)``.
    Returns:
        ``shape`` drawn in float64 on the CPU by ``torch.randn`` from a generator seeded with
        :func:`noise_seed`, cast to ``dtype``.
    """
    g = torch.Generator().manual_seed(noise_seed(seed, site, index, extra))
    return torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(dtype)


def noise_key_name(site: str, index: int, extra: Sequence[int] = ()) -> str:
    """The tensor name a draw has in ``noise.safetensors``: ``site[:e1:e2]:index``."""
    return ":".join([site, *(str(int(e)) for e in extra), str(int(index))])


class LadderStandin:
    """A stand-in model in the project's contract ``D(x, sigma, prompt) -> denoised`` (miga_core.protocols), on a fixed
    ladder: each frame's sigma is looked up on the ladder and replaced by its model timestep; subclasses turn the
    CFG-combined output into the x0 prediction of one row (:meth:`x0`).

    Args:
        sigmas: the ladder.  timesteps: the model timestep of each ladder entry that is on the model's ladder (all but a
            trailing 0, or all of them when ``ON_LADDER_LAST`` is set).
        prompts: the schedule's prompt strings (P of them); the window's text is the prompt-weighted sum of their
            :func:`standin_text` vectors.  negative_prompt: the uncond branch's prompt.  guide: CFG scale.
    Raises (on call):
        ValueError: a sigma that is not on the model's ladder.
    """

    ON_LADDER_LAST = False  # whether the ladder's last entry is a model timestep (it is not when it is the final 0)

    def __init__(self, sigmas: torch.Tensor, timesteps: torch.Tensor, prompts: Sequence[str], negative_prompt: str = "",
                 guide: float = 1.0) -> None:
        self.sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
        self.timesteps = torch.as_tensor(timesteps, dtype=torch.int64)
        self.texts = torch.stack([standin_text(p) for p in prompts])
        self.text_null = standin_text(negative_prompt)
        self.guide = float(guide)
        self.calls = 0

    def timestep_of(self, sigma: torch.Tensor) -> torch.Tensor:
        """``[F]`` model timesteps of ``[F]`` ladder sigmas (exact match required)."""
        ladder = self.sigmas if self.ON_LADDER_LAST else self.sigmas[:-1]
        s = sigma.to(torch.float64).view(-1, 1)
        hit = s == ladder.view(1, -1)
        if not bool(hit.any(dim=1).all()):
            raise ValueError(f"sigma={sigma.tolist()} has values off the ladder: allowed {ladder.tolist()}. "
                             "Fix: run on the recorded ladder.")
        return self.timesteps[hit.to(torch.int64).argmax(dim=1)]

    def x0(self, x: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The x0 prediction ``[C, F, H, W]`` of one row ``x`` at its frames' ``sigma [F]`` for the prompt vector ``text``."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        out = []
        for b in range(x.shape[0]):
            self.calls += 1
            text = (prompt[b].to(torch.float64).view(-1, 1) * self.texts).sum(dim=0)
            out.append(self.x0(x[b], sigma[b], text))
        return torch.stack(out)


class StandinDenoiser(LadderStandin):
    """The stand-in in the project's contract ``D(x, sigma, prompt) -> denoised`` (miga_core.protocols).

    Each frame's sigma is looked up in the official ladder and replaced by its integer timestep
    (REFERENCE.md item 20); the velocity is CFG-combined (:func:`cfg_velocity`) and turned into the x0
    prediction ``x - sigma * v`` with sigma the ladder's value, which is what the official UniPC step does
    with a model output (``convert_model_output``, flow prediction).

    Args:
        sigmas: ``[T + 1]`` the official ladder (float32 values, trailing 0).
        timesteps: ``[T]`` the official integer timesteps of ``sigmas[:-1]``.
        prompts: the schedule's prompt strings (P of them); the window's text is the prompt-weighted sum
            of their :func:`standin_text` vectors.
        negative_prompt: the uncond branch's prompt.
        guide: CFG scale.
    Raises (on call):
        ValueError: a sigma that is not on the ladder (0 included).
    """

    def x0(self, x: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        v = cfg_velocity(x, self.timestep_of(sigma), text, self.text_null, self.guide)
        return x - sigma.to(x.dtype).view(1, -1, 1, 1) * v
