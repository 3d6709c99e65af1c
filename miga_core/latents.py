"""A run of latent frames with their per-frame bookkeeping.

The queue Q, the history C, stage-1 outputs and reflection candidates are all
:class:`LatentRun` values: the latents plus, per frame, its level, its absolute
latent index (video position: 0 = first latent of the output video) and the
sampler state that travels with it [D2]: its latest ``denoised`` and, for multistep samplers that
need more (``uni_pc``, REFERENCE A1.2), an older x0 prediction and the latent its last step
started from (``past``, ``depth``).
Runs are immutable: every operation returns a new run and never writes into the
tensors it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .ladder import signal_scale
from .noise import KeyedNoise, NoiseDraw, NoiseSource, add_noise, latent_noise

__all__ = ["LatentRun", "fresh_latents", "TailSource"]


@dataclass(frozen=True)
class LatentRun:
    """Latent frames ``x`` ``[B, C, F, H, W]`` with per-frame ``level``, ``index`` and state.

    Attributes:
        x: the latents, ``[B, C, F, H, W]``.
        level: noise level of each frame (``sigmas[T - level]``), length F.
        index: absolute latent index of each frame (noise key [D1b], prompt position [D6]).
        denoised: latest x0 prediction of each frame ``[B, C, F, H, W]`` (zeros where none).
        has_denoised: whether frame f has a prediction yet (multistep samplers and
            ``score_on="denoised"`` use it).
        past: ``[2, B, C, F, H, W]`` or None, the extra state of ``uni_pc`` (REFERENCE A1.2):
            ``past[0]`` is each frame's x0 prediction from the step before the one that made
            ``denoised`` (made at level + 2), ``past[1]`` the latent its latest step started from
            (at level + 1, after that step's corrector: UniPC's ``last_sample``). None when no
            frame carries such state (every other sampler: no extra memory).
        depth: per frame, how many of its latest steps the state covers (0..2): 0 none; 1
            ``denoised`` and ``past[1]`` are valid; 2 ``past[0]`` too. Those steps were taken at
            consecutive levels (level + 2 -> level + 1 -> level), as :func:`~miga_core.passes.queue_pass`
            makes them. ``()`` (the default) means 0 for every frame. Only ``uni_pc`` sets it above 0.
    """

    x: torch.Tensor
    level: tuple[int, ...]
    index: tuple[int, ...]
    denoised: torch.Tensor
    has_denoised: tuple[bool, ...]
    past: torch.Tensor | None = None
    depth: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.depth and self.level:  # () is shorthand for "no multistep state"
            object.__setattr__(self, "depth", (0,) * len(self.level))

    @classmethod
    def fresh(cls, x: torch.Tensor, levels: Sequence[int], indices: Sequence[int]) -> "LatentRun":
        """A run with no sampler state yet."""
        n = x.shape[2]
        return cls(x, tuple(int(k) for k in levels), tuple(int(i) for i in indices), torch.zeros_like(x), (False,) * n)

    @classmethod
    def empty_like(cls, x: torch.Tensor) -> "LatentRun":
        """A run of 0 frames with ``x``'s batch, channels, size, dtype and device."""
        e = x[:, :, :0]
        return cls(e, (), (), e, ())

    def __len__(self) -> int:
        return len(self.level)

    def frames(self, positions: Sequence[int] | slice) -> "LatentRun":
        """The frames at ``positions`` (a slice or a list of positions), in that order."""
        past = self.past
        if isinstance(positions, slice):
            pos = list(range(len(self)))[positions]
            x, d = self.x[:, :, positions], self.denoised[:, :, positions]
            past = past[:, :, :, positions] if past is not None else None
        else:
            pos = list(positions)
            t = torch.as_tensor(pos, dtype=torch.long, device=self.x.device)
            x, d = self.x.index_select(2, t), self.denoised.index_select(2, t)
            past = past.index_select(3, t) if past is not None else None
        return LatentRun(x, tuple(self.level[p] for p in pos), tuple(self.index[p] for p in pos), d,
                         tuple(self.has_denoised[p] for p in pos), past, tuple(self.depth[p] for p in pos))

    def __add__(self, other: "LatentRun") -> "LatentRun":
        """Concatenate along time: ``self`` first."""
        return LatentRun.cat([self, other])

    @classmethod
    def cat(cls, runs: Sequence["LatentRun"]) -> "LatentRun":
        """Concatenate many runs along time in one copy (``runs`` must not be empty)."""
        runs = [r for r in runs if len(r)] or list(runs[:1])
        if len(runs) == 1:
            return runs[0]
        past = None
        if any(r.past is not None for r in runs):  # runs without multistep state (fresh latents) get zeros, depth 0
            past = torch.cat([r.past_or_zeros() for r in runs], dim=3)
        return cls(
            torch.cat([r.x for r in runs], dim=2),
            sum((r.level for r in runs), ()),
            sum((r.index for r in runs), ()),
            torch.cat([r.denoised for r in runs], dim=2),
            sum((r.has_denoised for r in runs), ()),
            past,
            sum((r.depth for r in runs), ()),
        )

    def past_or_zeros(self) -> torch.Tensor:
        """``past``, or zeros ``[2, B, C, F, H, W]`` like ``x`` when the run has none."""
        return self.past if self.past is not None else self.x.new_zeros((2, *self.x.shape))

    def copy(self) -> "LatentRun":
        """A run that owns its memory (a slice from :meth:`frames` is a view that keeps its whole source alive)."""
        past = self.past.clone() if self.past is not None else None
        return LatentRun(self.x.clone(), self.level, self.index, self.denoised.clone(), self.has_denoised, past, self.depth)

    def with_levels(self, levels: Sequence[int]) -> "LatentRun":
        """The same latents reported at other levels (used for FIFO's history, [D4]).

        The sampler state is kept as it is: history frames are context and never take a step.
        """
        return LatentRun(self.x, tuple(levels), self.index, self.denoised, self.has_denoised, self.past, self.depth)

    def without_history(self) -> "LatentRun":
        """The same latents with no sampler state: no x0 prediction, ``past`` None, depth 0.

        The next multistep step of every frame is then first order, as after the official
        code's scheduler resets (REFERENCE A1.2: at stage 2 and at refinement). ``score_on="denoised"``
        falls back to the latents for these frames until the next pass.
        """
        return LatentRun.fresh(self.x, self.level, self.index)

    def groups(self) -> list[tuple[int, int]]:
        """``(level, count)`` of each run of equal levels, head first."""
        out: list[tuple[int, int]] = []
        for k in self.level:
            if out and out[-1][0] == k:
                out[-1] = (k, out[-1][1] + 1)
            else:
                out.append((k, 1))
        return out


def fresh_latents(seed: int, stream: int, indices: Sequence[int], sigmas: torch.Tensor, like: torch.Tensor) -> LatentRun:
    """Pure-noise latents at level T: ``sigmas[0] * noise`` [D1b] (the queue tail's new latents).

    Args:
        indices: absolute latent index of each new frame (the noise key).
        sigmas: the ladder; the new frames get level ``T = len(sigmas) - 1``.
        like: any ``[B, C, *, H, W]`` tensor giving batch, channels, size, dtype and device.
    """
    B, C, _, H, W = like.shape
    T = len(sigmas) - 1
    noise = latent_noise(seed, stream, indices, [T] * len(indices), (B, C, H, W), dtype=like.dtype, device=like.device)
    return LatentRun.fresh(noise * sigmas[0].to(device=like.device, dtype=like.dtype), [T] * len(indices), indices)


@dataclass(frozen=True)
class TailSource:
    """Makes the new latents that enter a queue tail (and self-reflection candidates) at level T [D1b, D7].

    Attributes:
        noise: where the noise comes from (:class:`~miga_core.noise.KeyedNoise` by default).
        sigmas: the ladder ``[T + 1]``.
        content: ``"noise"`` (the paper: ``sigma_T * eps``) or ``"clip_last"`` (the released code, REFERENCE A1.4 /
            item 11: the initial clip's last latent noised to ``sigma_T``, e.g. ``(1 - sigma_T) x_last + sigma_T eps``).
        clip_last: ``[B, C, 1, H, W]`` the initial clip's last latent (``"clip_last"`` only).
        parameterization: how ``"clip_last"`` mixes latent and noise (:func:`~miga_core.noise.add_noise`).
        tail_noise: ``"sigma"`` (``sigma_T * eps``) or ``"ddpm"`` (``sqrt(1 + sigma_T^2) * eps``: ``randn`` in an eps model's
            DDPM input space, as FIFO-Diffusion's ``shift_latents`` and VC2's DDIM ``x_T``) for ``"noise"`` content
            (``MigaConfig.tail_noise``) [D7].
        scale_arr: ``MigaConfig.scale_arr``: ``"vc2"`` multiplies ``"clip_last"``'s latent by the signal scale of level T
            (:func:`~miga_core.ladder.signal_scale`) [D7].
    """

    noise: NoiseSource
    sigmas: torch.Tensor
    content: str = "noise"
    clip_last: torch.Tensor | None = None
    parameterization: str = "flow"
    tail_noise: str = "sigma"
    scale_arr: str = "dropped"

    @classmethod
    def keyed(cls, seed: int, sigmas: torch.Tensor) -> "TailSource":
        """The paper's pure-noise tail with the keyed noise of ``seed`` (= :func:`fresh_latents`)."""
        return cls(KeyedNoise(seed), sigmas)

    def __call__(self, draw: NoiseDraw, like: torch.Tensor) -> LatentRun:
        """New latents at the levels and indices of ``draw``, with ``like``'s batch, channels, size, dtype and device."""
        B, C, _, H, W = like.shape
        eps = self.noise(draw, (B, C, H, W), like.dtype, like.device)
        top = self.sigmas[0].to(device=like.device, dtype=like.dtype)
        if self.content == "noise":
            x = eps * (torch.sqrt(1 + top * top) if self.tail_noise == "ddpm" else top)
        else:
            assert self.clip_last is not None, "clip_last content needs the initial clip's last latent"
            F = len(draw.indices)
            scale = signal_scale(self.sigmas, self.scale_arr)
            x = add_noise(self.clip_last.to(device=like.device, dtype=like.dtype).expand(-1, -1, F, -1, -1), eps, top.expand(F),
                          self.parameterization, None if scale is None else scale[:1].expand(F))
        return LatentRun.fresh(x, draw.levels, draw.indices)
