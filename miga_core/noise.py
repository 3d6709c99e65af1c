"""Deterministic per-latent noise [D1b].

Noise is a pure function of ``(seed, stream, absolute latent index, level)``, so a
result never depends on window batching, window order, GPU count or a resume.
``stream`` separates independent uses of the same latent and level: the fresh tail
noise, ancestral steps, noising the initial clip, and each self-reflection candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

__all__ = ["Stream", "mix_key", "latent_noise", "add_noise", "NoiseDraw", "NoiseSource", "KeyedNoise"]

_MASK64 = (1 << 64) - 1


class Stream:
    """Stream ids of :func:`latent_noise`; candidates derive theirs with :func:`mix_key`."""

    FRESH = 1  # new latent entering the queue tail at level T
    ANCESTRAL = 2  # noise added by an ancestral step from a level
    RENOISE = 3  # noising a clean initial latent to a level (Alg. 1 / Alg. 4)
    INITIAL_CLIP = 4  # the default initial clip's own sampling
    CANDIDATE = 5  # self-reflection candidates (mixed with the check and candidate ids)
    REFINE = 6  # re-noising the finished video before the refinement passes [D7]


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mix_key(*parts: int) -> int:
    """Hash integers (negative allowed) to one 63-bit seed; order matters."""
    h = 0x5EED
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1


def latent_noise(
    seed: int,
    stream: int,
    indices: Sequence[int],
    levels: Sequence[int],
    shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Standard normal noise for latent frames, one independent draw per (index, level).

    Args:
        seed: the run's seed.
        stream: a :class:`Stream` id (or a :func:`mix_key` of one with more ids).
        indices: absolute latent index of each frame, length F.
        levels: level of each frame (the level the noise is drawn for), length F.
        shape: ``[B, C, H, W]`` of one latent frame.
    Returns:
        ``[B, C, F, H, W]`` noise, drawn on the CPU in float32 (identical on every device)
        and moved to ``device``/``dtype``.
    """
    frames = [
        torch.randn(tuple(shape), generator=torch.Generator().manual_seed(mix_key(seed, stream, i, k)), dtype=torch.float32)
        for i, k in zip(indices, levels, strict=True)
    ]
    if not frames:
        return torch.empty((*shape[:2], 0, *shape[2:]), dtype=dtype, device=device)
    return torch.stack(frames, dim=2).to(device=device, dtype=dtype)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, parameterization: str,
              scale: torch.Tensor | None = None) -> torch.Tensor:
    """Noise clean latents to per-frame ``sigma`` (paper Eq. A1, ``add_noise``).

    Args:
        x0: ``[B, C, F, H, W]`` clean latents.
        noise: ``[B, C, F, H, W]`` standard noise.
        sigma: ``[F]`` target noise per frame, host units.
        parameterization: ``"eps"``: ``x0 + sigma * noise`` (k-diffusion sigma space);
            ``"flow"``: ``(1 - sigma) * x0 + sigma * noise`` (rectified flow, sigma in [0, 1]).
        scale: None, or ``[F]`` signal scale of each target level (eps only: ``scale * x0 + sigma * noise``, VC2's
            ``q_sample`` with ``use_scale``; ``MigaConfig.scale_arr``, :func:`~miga_core.ladder.signal_scale`) [D7].
    Returns:
        ``[B, C, F, H, W]`` in ``x0``'s dtype. With ``x0 = 0`` both give ``sigma * noise``.
    """
    s = sigma.to(device=x0.device).view(1, 1, -1, 1, 1)
    if scale is not None:
        assert parameterization == "eps", "a signal scale belongs to eps models (MigaConfig.validate refuses it otherwise)"
        return (scale.to(device=x0.device).view(1, 1, -1, 1, 1) * x0 + s * noise).to(x0.dtype)
    out = x0 + s * noise if parameterization == "eps" else (1 - s) * x0 + s * noise
    return out.to(x0.dtype)


@dataclass(frozen=True)
class NoiseDraw:
    """One request for noise: what it is for, and the keys of :func:`latent_noise`.

    Attributes:
        use: ``"renoise"`` (an initial latent noised to its queue level), ``"fresh"`` (a new tail latent),
            ``"candidate"`` (a self-reflection candidate's new latent), ``"ancestral"`` (an ancestral step),
            ``"refine"`` (the re-noise before the refinement passes) [D7].
        phase: the stage drawing it: ``"initial_clip"``, ``"init"``, ``"zigzag"``, ``"unified"``, ``"refine"``.
        stream: our :class:`Stream` id for it (:func:`mix_key` of one with more ids where a use has several).
        indices: absolute latent index of each frame.  levels: the level each frame is drawn for.
        extra: further ids: ``(check, candidate)`` for candidates (the check is the judged queue position's index
            in stage 1, the queue-building pass with ``phase="build"`` reflection).
    """

    use: str
    phase: str
    stream: int
    indices: tuple[int, ...]
    levels: tuple[int, ...]
    extra: tuple[int, ...] = ()


class NoiseSource(Protocol):
    """Where a run's noise comes from: ``source(draw, shape [B, C, H, W], dtype, device) -> [B, C, F, H, W]``.

    The default is :class:`KeyedNoise` [D1b]. Another source (e.g. a recorded run's draws, to hold a run against
    other code) is passed as ``noise=`` to :func:`~miga_core.stages.initialize_queue` / ``run`` / ``generate``.
    It must return standard-normal noise, one latent per entry of ``draw.indices``.
    """

    def __call__(self, draw: NoiseDraw, shape: Sequence[int], dtype: torch.dtype, device: torch.device | str) -> torch.Tensor: ...


@dataclass(frozen=True)
class KeyedNoise:
    """The default :class:`NoiseSource`: :func:`latent_noise` of ``(seed, draw.stream, index, level)`` [D1b]."""

    seed: int

    def __call__(self, draw: NoiseDraw, shape: Sequence[int], dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        return latent_noise(self.seed, draw.stream, draw.indices, draw.levels, shape, dtype=dtype, device=device)
