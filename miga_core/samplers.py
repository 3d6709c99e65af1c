"""Per-latent sampler steps [D2], in k-diffusion sigma space.

Each step moves every latent frame one level down, each frame with its own
``sigma -> sigma_next``. Sources: k-diffusion ``sample_euler``,
``sample_euler_ancestral`` (``get_ancestral_step``) and ``sample_dpmpp_2m``
(Karras et al. 2022; Lu et al. 2022, DPM-Solver++(2M)), rewritten per frame; ``uni_pc`` is
UniPC-bh2 with order 2 and data (x0) prediction (Zhao et al. 2023, UniPC), written from the
paper's equations as the official MIGA code uses it per latent (REFERENCE A1.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .errors import InvalidLadderError, bad_value

__all__ = ["StepInputs", "euler_step", "euler_ancestral_step", "dpmpp_2m_step", "uni_pc_update", "uni_pc_step",
           "SAMPLERS", "PAST_SAMPLERS", "ancestral_split", "alpha_sigma", "check_sampler_ladder", "SignalScale", "scaled_update"]


@dataclass(frozen=True)
class StepInputs:
    """One step for F latent frames.

    Attributes:
        x: latents ``[B, C, F, H, W]`` at ``sigma``.
        denoised: the model's x0 prediction ``[B, C, F, H, W]``.
        sigma, sigma_next: ``[F]`` current and next noise of each frame (``sigma > 0``).
        sigma_prev: ``[F]`` the noise of each frame's previous level (multistep only).
        old_denoised: ``[B, C, F, H, W]`` each frame's previous x0 prediction (multistep only).
        has_old: ``[F]`` bool, whether ``old_denoised`` is valid for the frame.
        eta: ancestral noise scale.
        noise: returns ``[B, C, F, H, W]`` standard noise for the frames (ancestral only).
        sigma_prev2: ``[F]`` the noise two levels above each frame (``uni_pc`` only).
        past: ``[2, B, C, F, H, W]`` older x0 prediction and last step's start latent
            (:attr:`~miga_core.latents.LatentRun.past`; ``uni_pc`` only; None when every depth is 0).
        depth: ``[F]`` int, how many latest steps ``old_denoised``/``past`` cover (0..2; ``uni_pc`` only).
        final: ``[F]`` bool, the step is the ladder's last (level 1 -> 0; ``uni_pc`` takes order 1 there).
        parameterization: ``"flow"`` or ``"eps"``, how ``x`` mixes x0 and noise (``uni_pc`` only).
        split: None, or ``[F]`` ``(sigma_down, sigma_up)`` replacing :func:`ancestral_split`'s (``euler_ancestral`` only;
            :func:`scaled_update` sets it).
    """

    x: torch.Tensor
    denoised: torch.Tensor
    sigma: torch.Tensor
    sigma_next: torch.Tensor
    sigma_prev: torch.Tensor | None = None
    old_denoised: torch.Tensor | None = None
    has_old: torch.Tensor | None = None
    eta: float = 1.0
    noise: Callable[[], torch.Tensor] | None = None
    sigma_prev2: torch.Tensor | None = None
    past: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    final: torch.Tensor | None = None
    parameterization: str = "flow"
    split: tuple[torch.Tensor, torch.Tensor] | None = None


def _frames(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[F]`` -> ``[1, 1, F, 1, 1]`` on ``like``'s device."""
    return v.to(like.device).view(1, 1, -1, 1, 1)


def euler_step(s: StepInputs) -> torch.Tensor:
    """Euler: ``x + (sigma_next - sigma) * (x - denoised) / sigma``.

    For eps models in sigma space this is DDIM with eta 0; for flow models it is the
    flow-matching Euler step [D2].
    """
    sigma, sigma_next = _frames(s.sigma, s.x), _frames(s.sigma_next, s.x)
    d = (s.x - s.denoised) / sigma
    return (s.x + d * (sigma_next - sigma)).to(s.x.dtype)


def ancestral_split(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """k-diffusion ``get_ancestral_step``: ``(sigma_down, sigma_up)`` per frame."""
    up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).clamp_min(0).sqrt())
    down = (sigma_next**2 - up**2).clamp_min(0).sqrt()
    return down, up


def euler_ancestral_step(s: StepInputs) -> torch.Tensor:
    """Euler ancestral for eps models: deterministic step to ``sigma_down``, then noise ``sigma_up``."""
    down, up = s.split if s.split is not None else ancestral_split(s.sigma, s.sigma_next, s.eta)
    sigma = _frames(s.sigma, s.x)
    d = (s.x - s.denoised) / sigma
    x = s.x + d * (_frames(down, s.x) - sigma)
    if s.noise is not None and bool((up > 0).any()):
        x = x + s.noise() * _frames(up, s.x)
    return x.to(s.x.dtype)


def dpmpp_2m_step(s: StepInputs) -> torch.Tensor:
    """DPM-Solver++(2M); a frame without a previous prediction (or going to 0) takes the first-order step.

    With ``h = log(sigma / sigma_next)``: ``x' = (sigma_next/sigma) x + (1 - sigma_next/sigma) D``,
    ``D = denoised`` (first order) or ``(1 + 1/2r) denoised - 1/2r old_denoised``,
    ``r = log(sigma_prev/sigma) / h``.
    """
    sigma, sigma_next = s.sigma.to(torch.float64), s.sigma_next.to(torch.float64)
    ratio = sigma_next / sigma
    d = s.denoised
    if s.old_denoised is not None and s.has_old is not None and s.sigma_prev is not None:
        second = s.has_old.to(torch.bool) & (sigma_next > 0)
        if bool(second.any()):
            h = torch.log(sigma / sigma_next.clamp_min(1e-30))
            h_last = torch.log(s.sigma_prev.to(torch.float64) / sigma)
            r = torch.where(second, h_last / h, torch.ones_like(h))
            c = torch.where(second, 1.0 / (2.0 * r), torch.zeros_like(r))
            c = _frames(c.to(torch.float32), s.x)
            d = (1 + c) * s.denoised - c * s.old_denoised
    ratio_f = _frames(ratio.to(torch.float32), s.x)
    return (ratio_f * s.x + (1 - ratio_f) * d).to(s.x.dtype)


def alpha_sigma(sigma: torch.Tensor, parameterization: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, sigma)`` of ``x = alpha * x0 + sigma * noise`` in float64, per frame.

    ``"flow"``: ``alpha = 1 - sigma`` (rectified flow, sigma in [0, 1]); ``"eps"``: ``alpha = 1``
    (k-diffusion sigma space, the VP model's latents divided by its alpha: same ``lambda``, same solver).
    """
    s = sigma.to(torch.float64)
    return (1 - s if parameterization == "flow" else torch.ones_like(s)), s


def _lam(sigma: torch.Tensor, parameterization: str) -> torch.Tensor:
    """``lambda = log(alpha / sigma)`` (-inf at alpha = 0, +inf at sigma = 0), float64."""
    a, s = alpha_sigma(sigma, parameterization)
    return torch.log(a) - torch.log(s)


def _bh2_order2_weights(h: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """UniC-2 weights of bh2 for points ``r = (r_1, 1)``, per frame (UniPC paper: the order conditions of UniC).

    They solve ``rho_1 + rho_2 = b_1``, ``r_1 rho_1 + rho_2 = b_2`` with ``b_k = k! z phi_{k+1}(z) / B(h)``,
    ``z = -h`` (data prediction), ``B(h) = expm1(z)`` (bh2), ``phi_1(z) = expm1(z)/z``,
    ``phi_{k+1}(z) = (phi_k(z) - 1/k!) / z`` (float64 ``[F]`` each). Returns ``rho_1 / r_1`` (the weight of the older
    x0 minus ``m_0``) and ``rho_2`` (the weight of the new x0 minus ``m_0``);
    ``r_1 = -inf`` (a point at alpha = 0) gives ``rho_1 / r_1 = 0``, ``rho_2 = b_1``.
    """
    z = -h
    bz = torch.expm1(z)
    phi = bz / z - 1  # z * phi_2(z)
    b1 = phi / bz
    phi = phi / z - 0.5  # z * phi_3(z)
    b2 = 2 * phi / bz
    rho1 = (b1 - b2) / (1 - r)
    return (b1 - b2) / ((1 - r) * r), b1 - rho1


def uni_pc_update(s: StepInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """One UniPC-bh2 step per frame with its own history (REFERENCE A1.2; Zhao et al. 2023).

    Every frame f goes from ``sigma`` to ``sigma_next`` with data prediction ``m = denoised``. With
    ``lambda = log(alpha/sigma)`` (:func:`alpha_sigma`), a step from point a to point b with x0 terms
    ``M`` is ``x_b = (sigma_b/sigma_a) x_a + alpha_b (1 - e^{-h}) M``, ``h = lambda_b - lambda_a``:

    * corrector UniC (``depth >= 1``): the latent is recomputed from ``past[1]`` (at level + 1, x0
      ``m_1 = old_denoised``) with ``M = m_1 + rho_t (m - m_1) + [depth 2] (rho_1/r_1)(past[0] - m_1)``,
      ``r_1 = (lambda(level+2) - lambda(level+1)) / h``; order 1 (``depth == 1``): ``rho_t = 1/2``;
      order 2: the bh2 weights (:func:`_bh2_order2_weights`);
    * predictor UniP: order 1 ``M = m`` (first step of a frame, ``depth == 0``, or the ladder's last
      step, ``final``); order 2 ``M = m + (1/2)(m_1 - m) / r``, ``r = (lambda(level+1) - lambda) / h``.

    Order 1 is exactly Euler / DDIM: ``x' = (s'/s) x + (1 - s'/s) x0`` for flow. Coefficients are
    float64; tensors are combined in float32 (float64 inputs stay float64) and returned in ``x``'s dtype.

    Args:
        s: the step; ``old_denoised``, ``sigma_prev``, ``sigma_prev2``, ``past`` and ``depth`` are
            needed where ``depth > 0`` (``depth`` None means 0 for every frame).
    Returns:
        ``(x_next, x_start)``, both ``[B, C, F, H, W]``: the latents at ``sigma_next`` and the latents
        the predictor started from (after the corrector; the next step's ``past[1]``).
    """
    work = torch.float64 if s.x.dtype == torch.float64 else torch.float32
    F = s.sigma.numel()
    depth = s.depth.to(torch.long).cpu() if s.depth is not None else torch.zeros(F, dtype=torch.long)
    final = s.final.to(torch.bool).cpu() if s.final is not None else torch.zeros(F, dtype=torch.bool)
    param = s.parameterization

    def frames(v: torch.Tensor) -> torch.Tensor:
        return _frames(v.to(work), s.x)

    x, m = s.x.to(work), s.denoised.to(work)
    lam = _lam(s.sigma, param)
    if bool((depth > 0).any()):
        assert s.old_denoised is not None and s.past is not None and s.sigma_prev is not None and s.sigma_prev2 is not None
        m1 = s.old_denoised.to(work)
        sig1 = s.sigma_prev.to(torch.float64)
        lam1 = _lam(sig1, param)
        corr, second = depth >= 1, depth >= 2
        # corrector: from (level+1, past[1], m1) to this level with the new x0 m
        h = torch.where(corr, lam - lam1, torch.ones_like(lam))
        keep = torch.where(corr, s.sigma.to(torch.float64) / sig1, torch.zeros_like(lam))
        a = alpha_sigma(s.sigma, param)[0]
        gain = torch.where(corr, a * -torch.expm1(lam1 - lam), torch.zeros_like(lam))
        w_t = torch.full_like(lam, 0.5)
        w_2 = torch.zeros_like(lam)
        if bool(second.any()):
            assert s.sigma_prev2 is not None
            r = (_lam(s.sigma_prev2, param) - lam1) / h
            c2, rho_t = _bh2_order2_weights(h, r)
            w_2 = torch.where(second, c2, w_2)
            w_t = torch.where(second, rho_t, w_t)
        older, start = s.past[0].to(work), s.past[1].to(work)
        big_m = m1 + frames(w_t) * (m - m1) + frames(w_2) * (older - m1)
        x = torch.where(_frames(corr, s.x), frames(keep) * start + frames(gain) * big_m, x)
    # predictor: from this level (x, m) to sigma_next
    lam_next = _lam(s.sigma_next, param)
    keep = s.sigma_next.to(torch.float64) / s.sigma.to(torch.float64)
    gain = alpha_sigma(s.sigma_next, param)[0] * -torch.expm1(lam - lam_next)
    big_m = m
    order2 = (depth >= 1) & ~final
    if bool(order2.any()):
        assert s.old_denoised is not None and s.sigma_prev is not None
        inv_r = torch.where(order2, (lam_next - lam) / (_lam(s.sigma_prev, param) - lam), torch.zeros_like(lam))
        big_m = m + frames(0.5 * inv_r) * (s.old_denoised.to(work) - m)
    x_next = frames(keep) * x + frames(gain) * big_m
    return x_next.to(s.x.dtype), x.to(s.x.dtype)


def uni_pc_step(s: StepInputs) -> torch.Tensor:
    """:func:`uni_pc_update`'s ``x_next`` (the :data:`SAMPLERS` entry)."""
    return uni_pc_update(s)[0]


def check_sampler_ladder(sampler: str, parameterization: str, sigmas: torch.Tensor) -> None:
    """Refuse a ladder the sampler cannot step: ``uni_pc`` with ``"flow"`` needs every sigma <= 1 (``alpha = 1 - sigma >= 0``).

    Raises:
        InvalidLadderError: naming the largest sigma, the range and the fix.
    """
    if sampler == "uni_pc" and parameterization == "flow" and float(sigmas.max()) > 1:
        raise InvalidLadderError(bad_value("sigmas", f"max {float(sigmas.max()):.6g}", "values <= 1 for uni_pc with parameterization='flow' "
                                           "(alpha = 1 - sigma must stay >= 0)",
                                           "pass the flow model's own ladder (sigmas in [0, 1]), or parameterization='eps' for an eps model"))


@dataclass(frozen=True)
class SignalScale:
    """The signal scales of one step's frames (``MigaConfig.scale_arr="vc2"``; :func:`~miga_core.ladder.signal_scale`) [D7].

    A latent at level k is ``s_k x0 + sigma_k n``. Attributes, each ``[F]`` float64: ``at`` (the frame's level k),
    ``next`` (k - 1), ``prev`` (k + 1), ``prev2`` (k + 2, clamped to T as the sigmas are).
    """

    at: torch.Tensor
    next: torch.Tensor
    prev: torch.Tensor
    prev2: torch.Tensor


def scaled_update(update: Callable[[StepInputs], tuple[torch.Tensor, torch.Tensor]], s: StepInputs,
                  scale: SignalScale) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of latents with a per-level signal scale (VC2's ``scale_arr``), as ``update`` in unit-signal units [D7].

    With ``x = s x0 + sigma n`` the latents ``x / s`` are ``x0 + (sigma / s) n``: the k-diffusion sigma space of the
    ladder ``sigma / s`` (same ``lambda = log(s / sigma)``), where every sampler is the right one. So the step divides
    each latent, x0 prediction and noise by the scale of the level it belongs to (``old_denoised`` and ``past[1]``:
    k + 1, ``past[0]``: k + 2), runs ``update`` and multiplies ``x_next`` by ``s_next`` and the start latent by ``s``.
    Order 1 is VC2's ``p_sample_ddim``: ``x' = s' (D / s) + sigma_down eps + sigma_up z``, ``eps = (x - D) / sigma``;
    ``euler_ancestral`` keeps DDIM's eta split of the unscaled sigmas (``(sigma_down, sigma_up) / s'`` in ``split``), so
    its eta-1 step is VC2's DDIM eta 1. With every scale 1 it is ``update`` itself (up to the float rounding of x/1*1:
    none).

    Args:
        update: ``(x_next, x_start)`` of a step (a :data:`PAST_SAMPLERS` entry, or a step with ``x`` as start).
        s: the step in sigma space (``x``, ``denoised``, state as the model and the queue hold them).
        scale: the frames' scales.
    Returns:
        ``(x_next, x_start)`` ``[B, C, F, H, W]`` in ``x``'s dtype, in sigma space.
    """
    f64 = torch.float64
    k, k_next, k_prev, k_prev2 = (v.to(f64) for v in (scale.at, scale.next, scale.prev, scale.prev2))

    def lat(t: torch.Tensor | None, by: torch.Tensor) -> torch.Tensor | None:
        return None if t is None else (t / _frames(by, t)).to(t.dtype)

    def sig(v: torch.Tensor | None, by: torch.Tensor) -> torch.Tensor | None:
        return None if v is None else (v.to(f64) / by).to(v.dtype)

    down, up = ancestral_split(s.sigma.to(f64), s.sigma_next.to(f64), s.eta)
    past = None if s.past is None else torch.stack([lat(s.past[0], k_prev2), lat(s.past[1], k_prev)])
    unit = replace(s, x=lat(s.x, k), denoised=lat(s.denoised, k), sigma=sig(s.sigma, k), sigma_next=sig(s.sigma_next, k_next),
                   sigma_prev=sig(s.sigma_prev, k_prev), old_denoised=lat(s.old_denoised, k_prev),
                   sigma_prev2=sig(s.sigma_prev2, k_prev2), past=past, split=(down / k_next, up / k_next))
    x_next, x_start = update(unit)
    return (x_next * _frames(k_next, x_next)).to(s.x.dtype), (x_start * _frames(k, x_start)).to(s.x.dtype)


SAMPLERS: dict[str, Callable[[StepInputs], torch.Tensor]] = {
    "euler": euler_step,
    "euler_ancestral": euler_ancestral_step,
    "dpmpp_2m": dpmpp_2m_step,
    "uni_pc": uni_pc_step,
}

PAST_SAMPLERS: dict[str, Callable[[StepInputs], tuple[torch.Tensor, torch.Tensor]]] = {"uni_pc": uni_pc_update}
"""Samplers whose frames carry :attr:`~miga_core.latents.LatentRun.past`: ``(x_next, x_start)`` per step."""
