"""Window planning for one queue pass Phi [D1] with long-range guidance [D3].

Pure functions of lengths and options: ``(num_history, queue_length, opts) -> windows``,
positions counted in ``X = C + Q`` (history first). No tensors here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import UpdateRule

__all__ = ["Window", "plan_windows", "guidance_positions", "history_needed"]


@dataclass(frozen=True)
class Window:
    """One model call of a pass.

    Attributes:
        positions: X positions fed to the model, guidance first then the local part (ascending).
        num_guidance: how many of ``positions`` are guidance latents [D3].
        region: ``(start, end)`` X positions this window updates (a slice of its local part).
    """

    positions: tuple[int, ...]
    num_guidance: int
    region: tuple[int, int]

    @property
    def region_offset(self) -> int:
        """Where the region starts inside ``positions``."""
        return self.positions.index(self.region[0])

    @property
    def local(self) -> tuple[int, int]:
        """``(start, end)`` X positions of the local part."""
        return self.positions[self.num_guidance], self.positions[-1] + 1


def guidance_positions(local_start: int, num_guidance: int, zigzag_width: int) -> tuple[int, ...] | None:
    """Evenly spaced guidance positions before a local part [D3], or None if too few exist.

    Candidates are ``X[max(0, b - m*L_zig) : b]`` (``b`` = ``local_start``, r of them);
    position ``b - 1 - floor(i * r / m)`` for ``i = 0..m-1`` (the nearest, ``b - 1``, always
    included; with ``r = m * L_zig`` one latent per zigzag group). Returned ascending.
    """
    m = num_guidance
    if m <= 0:
        return ()
    lo = max(0, local_start - m * zigzag_width)
    r = local_start - lo
    if r < m:
        return None
    return tuple(sorted(local_start - 1 - (i * r) // m for i in range(m)))


def _local_part(update: UpdateRule, region: tuple[int, int], n_local: int, x_len: int) -> tuple[int, int]:
    r0, r1 = region
    if update == "lookahead":  # region at the end; clamp at X[0] (start of a run)
        b = max(0, r1 - n_local)
        return b, min(x_len, b + n_local)
    b = r0  # "former": region at the start; clamp to end at the tail
    e = b + n_local
    if e > x_len:
        e, b = x_len, max(0, x_len - n_local)
    return b, e


def plan_windows(
    num_history: int,
    queue_length: int,
    window_length: int,
    window_stride: int,
    *,
    num_guidance: int = 0,
    zigzag_width: int = 1,
    update: UpdateRule = "lookahead",
) -> list[Window]:
    """The ``ceil(L / s)`` windows of one pass over ``X = C + Q`` [D1, D3].

    Region j is queue positions ``[j*s, min((j+1)*s, L))``. A window is ``m`` guidance latents
    plus a local part of ``f0 - m`` consecutive X latents containing the region; if fewer than
    ``m`` candidates precede the local part, it has no guidance and a local part of ``f0``.
    A window is shorter than ``f0`` only when X is.

    Args:
        num_history: |C|, latents before the queue in X.
        queue_length: L = |Q|.
        window_length: f0.  window_stride: s.  num_guidance: m.  zigzag_width: L_zig.
        update: ``"lookahead"`` or ``"former"`` [D1].
    Returns:
        Windows in region order; their regions tile ``[num_history, num_history + L)`` exactly once.
    """
    h, L, f0, s, m = num_history, queue_length, window_length, window_stride, num_guidance
    x_len = h + L
    windows = []
    for j in range(math.ceil(L / s)):
        region = (h + j * s, h + min((j + 1) * s, L))
        guide: tuple[int, ...] | None = None
        if m > 0:
            b, e = _local_part(update, region, f0 - m, x_len)
            guide = guidance_positions(b, m, zigzag_width)
        if not guide:
            guide = ()
            b, e = _local_part(update, region, f0, x_len)
        windows.append(Window(guide + tuple(range(b, e)), len(guide), region))
    return windows


def history_needed(window_length: int, window_stride: int, num_guidance: int, zigzag_width: int) -> int:
    """Most history any window reads: ``f0 - m - s + m*L_zig`` [D1] (``f0 - s`` without guidance)."""
    return max(0, window_length - num_guidance - window_stride) + num_guidance * zigzag_width
