"""Window planning for one queue pass Phi [D1] with long-range guidance [D3].

Pure functions of lengths and options: ``(num_history, queue_length, opts) -> windows``,
positions counted in ``X = C + Q`` (history first). No tensors here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Borders, GuidanceRule, UpdateRule

__all__ = ["Window", "plan_windows", "guidance_positions", "official_guidance_positions", "official_regions", "regions",
           "history_needed"]


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


def official_guidance_positions(local_start: int, num_guidance: int, zigzag_width: int) -> tuple[int, ...] | None:
    """The released code's guidance positions (REFERENCE A1.6, item 8), ascending, or None (no guidance).

    With ``b`` = ``local_start``, ``m`` = ``num_guidance``, ``c = floor(L_zig / 2)``: none for ``b < m``;
    ``b - j*floor(b/m)`` for ``j = m..1`` when ``b < m*L_zig`` (the early-queue spacing); else
    ``b - (c + j*L_zig)`` for ``j = m-1..0``: one latent ``c`` positions into each of the ``m`` groups before ``b``.
    """
    b, m = local_start, num_guidance
    if m <= 0:
        return ()
    if b < m:
        return None
    if b < m * zigzag_width:
        return tuple(b - j * (b // m) for j in range(m, 0, -1))
    c = zigzag_width // 2
    return tuple(b - (c + j * zigzag_width) for j in range(m - 1, -1, -1))


GUIDANCE_RULES = {"even": guidance_positions, "official": official_guidance_positions}


def official_regions(length: int, n_local: int, stride: int, pass_index: int | None = None) -> list[tuple[int, int]]:
    """The released code's partition of ``length`` positions (REFERENCE A1.5, items 5, 17).

    Fixed (``pass_index`` None: queue building, candidates): ``[0, rem)`` if ``rem > 0``, then blocks of ``stride``
    from ``rem``, then the whole last local part ``[L - n, L)``, where ``rem = (L - n) mod stride``. Rotating (stage 1,
    stage 2, refinement): offset ``r = pass_index mod stride`` (0 if ``L - r < n``): ``[0, r)``, blocks of ``stride``
    from ``r``, the remainder ``[L - n - rem, L - n)``, then ``[L - n, L)`` (the remainder sits before the last
    window, also at ``r = 0``). ``L <= n``: one region ``[0, L)``.
    """
    L, n, s = length, n_local, stride
    if L <= n:
        return [(0, L)] if L else []
    r = pass_index % s if pass_index is not None else 0
    if L - r < n:
        r = 0
    q, rem = divmod(L - r - n, s)
    out = [(0, r)] if r > 0 else []
    if pass_index is None and rem > 0:  # fixed: the remainder goes first
        out.append((0, rem))
        r, rem = rem, 0
    out += [(r + j * s, r + (j + 1) * s) for j in range(q)]
    if rem > 0:
        out.append((L - n - rem, L - n))
    return out + [(L - n, L)]


def regions(length: int, stride: int, *, update: UpdateRule = "lookahead", borders: Borders = "fixed", pass_index: int = 0,
            n_local: int = 0) -> list[tuple[int, int]]:
    """Regions ``[(start, end)]`` of one pass over ``length`` positions; they tile ``[0, length)`` once [D1, D7].

    ``update`` lookahead/former: ``[j*s, (j+1)*s)``, with ``borders="rotating"`` shifted by ``r = pass_index mod s``
    (a first region ``[0, r)``) (REFERENCE A1.5). ``update="official"``: :func:`official_regions` with local length
    ``n_local`` and the same offset.
    """
    if update == "official":
        return official_regions(length, n_local, stride, pass_index if borders == "rotating" else None)
    offset = pass_index % stride if borders == "rotating" else 0
    if offset >= length:
        offset = 0
    out = [(0, offset)] if offset else []
    return out + [(b, min(b + stride, length)) for b in range(offset, length, stride)]


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
    borders: Borders = "fixed",
    pass_index: int = 0,
    guidance_rule: GuidanceRule = "even",
) -> list[Window]:
    """The windows of one pass over ``X = C + Q`` [D1, D3, D7].

    ``update`` lookahead/former [D1]: region j is queue positions ``[j*s, min((j+1)*s, L))`` (``borders="rotating"``:
    shifted by ``pass_index mod s``, :func:`regions`). A window is ``m`` guidance latents plus a local part of
    ``f0 - m`` consecutive X latents containing the region; if the guidance rule finds no positions, it has no
    guidance and a local part of ``f0``. A window is shorter than ``f0`` only when X is.

    ``update="official"`` (REFERENCE A1.5): the partition :func:`official_regions` covers all of X (history
    included: a self-reflection candidate's guide), each window's local part starts at its region start ``b``
    (``[b, b+f0-m)``, or ``[b, b+f0)`` without guidance) and the last window updates its whole local part
    ``[|X|-n, |X|)``; regions are clipped to the queue and windows with nothing to update are left out.

    Args:
        num_history: |C|, latents before the queue in X.
        queue_length: L = |Q|.
        window_length: f0.  window_stride: s.  num_guidance: m.  zigzag_width: L_zig.
        update: ``"lookahead"``, ``"former"`` [D1] or ``"official"`` [D7].
        borders: ``"fixed"`` or ``"rotating"`` (offset ``pass_index mod s``).  pass_index: the pass's number in its stage.
        guidance_rule: ``"even"`` [D3] or ``"official"`` (:func:`official_guidance_positions`).
    Returns:
        Windows in region order; their regions tile ``[num_history, num_history + L)`` exactly once.
    """
    h, L, f0, s, m = num_history, queue_length, window_length, window_stride, num_guidance
    x_len = h + L
    rule = GUIDANCE_RULES[guidance_rule]
    windows = []
    if update == "official":
        n = f0 - m if m > 0 else f0
        for b, e in regions(x_len, s, update=update, borders=borders, pass_index=pass_index, n_local=n):
            if e <= h:
                continue
            guide = rule(b, m, zigzag_width) if m > 0 else None
            local_end = min(x_len, b + (n if guide else f0)) if e < x_len else x_len
            windows.append(Window((guide or ()) + tuple(range(b, local_end)), len(guide or ()), (max(b, h), e)))
        return windows
    for r0, r1 in regions(L, s, borders=borders, pass_index=pass_index):
        region = (h + r0, h + r1)
        guide: tuple[int, ...] | None = None
        if m > 0:
            b, e = _local_part(update, region, f0 - m, x_len)
            guide = rule(b, m, zigzag_width)
        if not guide:
            guide = ()
            b, e = _local_part(update, region, f0, x_len)
        windows.append(Window(guide + tuple(range(b, e)), len(guide), region))
    return windows


def history_needed(window_length: int, window_stride: int, num_guidance: int, zigzag_width: int) -> int:
    """Most history any window reads: ``f0 - m - s + m*L_zig`` [D1] (``f0 - s`` without guidance)."""
    return max(0, window_length - num_guidance - window_stride) + num_guidance * zigzag_width
