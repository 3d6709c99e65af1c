"""The sigma ladder and noise levels (docs/algorithm.md "Terms").

A ladder is the host's ``SIGMAS``: ``T + 1`` values, strictly descending, from the
noisiest to the final level (0 for flow models). A latent at level ``k`` has noise
``sigmas[T - k]``: level T is pure noise, level 0 is done.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import InvalidLadderError, MigaTypeError, bad_value

__all__ = ["check_ladder", "sigma_of_levels", "num_steps"]


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
