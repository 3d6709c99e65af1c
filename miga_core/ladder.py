"""The sigma ladder and noise levels (docs/algorithm.md "Terms").

A ladder is the host's ``SIGMAS``: ``T + 1`` values, strictly descending, from the
noisiest to the final level (0 for flow models). A latent at level ``k`` has noise
``sigmas[T - k]``: level T is pure noise, level 0 is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

from .errors import InvalidLadderError, MigaTypeError, bad_value

__all__ = ["check_ladder", "sigma_of_levels", "num_steps", "official_flow_ladder", "ddim_ladder", "official_ddim_ladder",
           "vc2_scale_arr", "signal_scale"]


def check_ladder(sigmas: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Validate a ladder and return it as a 1-D floating CPU tensor (a copy, dtype kept; ints become float32).

    Raises:
        InvalidLadderError: fewer than 2 values, not 1-D, non-finite, negative, or not strictly descending.
        MigaTypeError: not a tensor or sequence of numbers.
    """
    try:
        s = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise MigaTypeError(f"sigmas={sigmas!r} is not a sequence of numbers: allowed is a 1-D tensor or list of floats. "
                            "Fix: pass the host's SIGMAS (e.g. from BasicScheduler).") from exc
    fix = "pass the host's SIGMAS, e.g. BasicScheduler's output: T+1 strictly descending values ending at the final level"
    if s.ndim != 1 or s.numel() < 2:
        raise InvalidLadderError(bad_value("sigmas", tuple(s.shape), "a 1-D ladder of at least 2 values", fix))
    if not torch.isfinite(s).all() or (s < 0).any():
        raise InvalidLadderError(bad_value("sigmas", s.tolist(), "finite values >= 0", fix))
    diffs = s[1:] - s[:-1]
    if not (diffs < 0).all():
        bad = int(torch.nonzero(diffs >= 0)[0])
        raise InvalidLadderError(
            bad_value("sigmas", s.tolist(), f"strictly descending values (sigmas[{bad}]={s[bad]:.6g} <= sigmas[{bad + 1}]={s[bad + 1]:.6g})", fix)
        )
    out = torch.as_tensor(sigmas).detach().to("cpu").clone()
    return out if out.is_floating_point() else out.to(torch.float32)


def num_steps(sigmas: torch.Tensor) -> int:
    """T, the number of steps of a ladder."""
    return int(sigmas.numel()) - 1


def sigma_of_levels(sigmas: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """``sigmas[T - k]`` for each level k: ``[F]`` in the ladder's dtype, on the CPU."""
    T = num_steps(sigmas)
    return sigmas[torch.as_tensor([T - k for k in levels], dtype=torch.long)]


def official_flow_ladder(num_steps: int, shift: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The ladder of the authors' released Wan2.1 code and its integer model timesteps (REFERENCE A1.2, item 20) [D7].

    ``base_j = j * (0 - top) / T + top`` for ``j = 0..T-1`` with ``top = float32(0.999)`` (numpy ``linspace``
    arithmetic, float64), ``sigma_j = shift * base_j / (1 + (shift - 1) * base_j)``, then ``sigma_T = 0``; the
    model's timestep of level ``T - j`` is ``trunc(1000 * sigma_j)``. For T = 54 the top is 0.9998 (t = 999), not 1.
    A host must feed the model these integer timesteps (ComfyUI's Wan sampling maps sigma to ``1000 * sigma``).

    Args:
        num_steps: T >= 1.  shift: the flow shift (Wan2.1 t2v: 5).
    Returns:
        ``(sigmas [T + 1] float32, timesteps [T] int64)``.
    Raises:
        InvalidLadderError: T < 1 or shift <= 0.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise InvalidLadderError(bad_value("num_steps", num_steps, "an integer >= 1", "use the released code's 54"))
    if not shift > 0:
        raise InvalidLadderError(bad_value("shift", shift, "a float > 0", "use Wan2.1's 5.0"))
    T, top = num_steps, float(torch.tensor(0.999, dtype=torch.float32))
    step = (0.0 - top) / T
    base = torch.tensor([j * step + top for j in range(T)], dtype=torch.float64)
    sig = shift * base / (1 + (shift - 1) * base)
    sigmas = torch.cat([sig, torch.zeros(1, dtype=torch.float64)]).to(torch.float32)
    return sigmas, (sig * 1000).to(torch.int64)


def ddim_ladder(num_steps: int, linear_start: float = 0.00085, linear_end: float = 0.012,
                train_steps: int = 1000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DDIM ladder of VC2's LVDM code (FIFO-Diffusion's ``DDIMSampler``, ``ddim_discretize="uniform"``) in sigma space [D7].

    LVDM's schedule: ``betas = linspace(sqrt(linear_start), sqrt(linear_end), train_steps)^2`` (float64),
    ``alphacums = cumprod(1 - betas)`` stored as float32; DDIM timesteps ``t_j = round(linspace(0, train_steps - 1, T))``
    (numpy arithmetic, ascending, ``t_0 = 0``). Level ``k`` (1..T) is DDIM index ``k - 1``: ``sigmas[T - k] = sqrt((1 - a) / a)`` with
    ``a = alphacums[t_{k-1}]`` (float64 from the float32 values), and ``sigmas[T] = 0``. The model's timestep at level k
    is ``t_{k-1}``; an eps model's DDPM input is ``x * sqrt(a) = x / sqrt(1 + sigma^2)``. With
    ``MigaConfig.final_step="identity"`` the step from level 1 keeps the latent at ``sigmas[T - 1]`` (DDIM's
    ``alphas_prev[0] = alphacums[0]``); with the default ``"x0"`` it goes on to 0.

    Args:
        num_steps: T >= 2.  linear_start, linear_end, train_steps: the model's beta schedule (VC2: 0.00085, 0.012, 1000).
    Returns:
        ``(sigmas [T + 1] float64, timesteps [T] int64, alphacums [train_steps] float32)``; ``timesteps[j]`` belongs to
        ``sigmas[j]`` (descending, ``timesteps[T - 1] = 0``).
    Raises:
        InvalidLadderError: T < 2, T > train_steps (repeated timesteps), or a beta schedule outside (0, 1).
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 2 <= num_steps <= train_steps:
        raise InvalidLadderError(bad_value("num_steps", num_steps, f"an integer in 2..{train_steps}", "use VC2's 64 (FIFO: f0 * partitions)"))
    if not 0 < linear_start < linear_end < 1:
        raise InvalidLadderError(bad_value("linear_start, linear_end", (linear_start, linear_end), "0 < start < end < 1",
                                           "use VC2's 0.00085 and 0.012"))
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, train_steps, dtype=torch.float64) ** 2
    alphacums = torch.cumprod(1 - betas, dim=0).to(torch.float32)
    step = (train_steps - 1) / (num_steps - 1)  # numpy linspace arithmetic (j * step, last = end), rounded half to even
    ts = torch.tensor([round(j * step) for j in range(num_steps - 1)] + [train_steps - 1], dtype=torch.int64)
    a = alphacums[ts].to(torch.float64)
    sig = ((1 - a) / a).sqrt().flip(0)
    return torch.cat([sig, torch.zeros(1, dtype=torch.float64)]), ts.flip(0), alphacums


def official_ddim_ladder(num_steps: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The sigma ladder of the authors' released VideoCrafter2 MIGA loop and its model timesteps (REFERENCE A2) [D7].

    :func:`ddim_ladder` without its last step: the release never takes DDIM's last (identity) step, its outputs stay at
    ``t_0``, so the ladder is ``[sigma_{n-1}, ..., sigma_0]`` (``T = num_steps - 1`` steps, ending at ``sigma_0 = 0.0292``,
    not 0) and level ``k`` is the release's step index ``k``. A VP latent of the release is ``x / sqrt(1 + sigma^2)`` of ours.

    Returns:
        ``(sigmas [num_steps] float64, timesteps [num_steps] int64)``: ``timesteps[p]`` is the model timestep of ``sigmas[p]``.
    Raises:
        InvalidLadderError: ``num_steps < 2``.
    """
    sigmas, timesteps, _ = ddim_ladder(num_steps)
    return sigmas[:-1], timesteps


def vc2_scale_arr(train_steps: int = 1000, scale_a: float = 1.0, scale_b: float = 0.7, mid_step: int = 400) -> torch.Tensor:
    """VideoCrafter2's signal scale per DDPM timestep (LVDM's ``use_scale``; docs/algorithm.md "DDIM conventions") [D7].

    VC2 was trained on ``x_t = sqrt(a_t) * s(t) * x0 + sqrt(1 - a_t) * eps`` with ``s = linspace(scale_a, scale_b, mid_step)``
    (numpy arithmetic) followed by ``scale_b``, stored as float32. VC2's config sets ``use_scale: true, scale_b: 0.7`` and
    leaves ``scale_a = 1``, ``mid_step = 400``, ``fix_scale_bug = False`` at LVDM's defaults; the "bug" only makes the
    array ``mid_step`` entries longer than ``train_steps``, the values at ``t < train_steps`` are the same either way.

    Returns:
        ``[train_steps]`` float32: ``s(0) = scale_a``, falling linearly to ``s(mid_step - 1) = scale_b``, then constant.
    """
    step = (scale_b - scale_a) / (mid_step - 1)
    head = [j * step + scale_a for j in range(mid_step - 1)] + [scale_b]
    return torch.tensor((head + [scale_b] * train_steps)[:train_steps], dtype=torch.float32)


@lru_cache(maxsize=32)
def _vc2_signal_scale(sigmas: tuple[float, ...]) -> torch.Tensor:
    _, _, alphacums = ddim_ladder(2)  # VC2's schedule (linear betas 0.00085..0.012, 1000 steps, float32 alphacums)
    a = alphacums.to(torch.float64)
    log_train = ((1 - a) / a).sqrt().log()
    s = torch.tensor(sigmas, dtype=torch.float64)
    out = torch.ones_like(s)
    on = s > 0
    t = (s[on].log().view(-1, 1) - log_train.view(1, -1)).abs().argmin(dim=1)  # ComfyUI's ModelSamplingDiscrete.timestep
    out[on] = vc2_scale_arr()[t].to(torch.float64)
    return out


def signal_scale(sigmas: torch.Tensor, scale_arr: str) -> torch.Tensor | None:
    """The signal scale of every ladder entry, for ``MigaConfig.scale_arr`` (docs/algorithm.md "DDIM conventions") [D7].

    A latent at level k is ``x = s_k * x0 + sigmas[T - k] * n`` in sigma space; ``s_k = signal_scale(...)[T - k]``
    (index it with :func:`sigma_of_levels`). ``"dropped"`` (FIFO-Diffusion's and the MIGA release's loops): ``s = 1``,
    returned as None so callers keep the plain formulas. ``"vc2"`` (VC2's own ``DDIMSampler``): ``s = vc2_scale_arr()[t]``
    with t the DDPM timestep the model sees for the sigma, the nearest in log sigma on VC2's schedule (as ComfyUI maps a
    sigma to a timestep; exact on :func:`ddim_ladder` and :func:`official_ddim_ladder`), and ``s = 1`` at sigma 0.
    Derived once per ladder (cached).

    Args:
        sigmas: the ladder ``[T + 1]``.  scale_arr: ``"dropped"`` or ``"vc2"``.
    Returns:
        None, or ``[T + 1]`` float64 on the CPU.
    """
    if scale_arr == "dropped":
        return None
    return _vc2_signal_scale(tuple(float(v) for v in sigmas.detach().cpu().to(torch.float64))).clone()
