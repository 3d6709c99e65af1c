"""The per-latent ``uni_pc`` sampler (UniPC-bh2, order 2, data prediction; REFERENCE A1.2).

The references here are written from the UniPC paper (Zhao et al. 2023) in their plainest form:
a whole-clip loop with a generic order-p coefficient solve (``_plain_unipc``). The fixture
``fixtures/unipc_official.safetensors`` holds inputs and outputs of the official MIGA
per-latent UniPC step recorded outside this repository (see the fixture's test).
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from miga_core import (
    InvalidLadderError,
    LatentRun,
    MigaConfig,
    PassContext,
    Progress,
    PromptSchedule,
    ReflectionOptions,
    GuidanceOptions,
    generate,
    queue_pass,
)
from miga_core.reflection import _pick
from miga_core.samplers import StepInputs, euler_step, uni_pc_update
from tests.helpers import ToyDenoiser, fresh_noise, init_queue

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "unipc_official.safetensors"
SHAPE = (1, 2, 3, 3)
EPS_LADDER = [14.6, 9, 6, 4, 2.8, 2, 1.4, 1, .7, .45, .25, .1, 0]


def _flow_ladder(T: int, shift: float = 3.0) -> torch.Tensor:
    """A shifted flow ladder from 0.999 (not 1: lambda = -inf there) down to 0, float64."""
    base = torch.linspace(0.999, 0, T + 1, dtype=torch.float64)[:-1]
    return torch.cat([shift * base / (1 + (shift - 1) * base), torch.zeros(1, dtype=torch.float64)])


# --- the plain reference: UniPC-bh2 written from the paper, generic order, scalar sigmas ------------

def _lam(s: float, param: str) -> float:
    alpha = 1 - s if param == "flow" else 1.0
    return math.inf if s == 0 else math.log(alpha) - math.log(s)


def _b(h: float, p: int) -> list[float]:
    """``b_k = k! * z * phi_{k+1}(z) / B(h)`` for k = 1..p, ``z = -h``, ``B = expm1(z)`` (bh2),
    with ``phi_{k+1}(z) = (e^z - sum_{j<=k} z^j/j!) / z^{k+1}``."""
    z = -h
    out = []
    for k in range(1, p + 1):
        tail = math.expm1(z) - sum(z**j / math.factorial(j) for j in range(1, k + 1))  # e^z - sum_{j=0..k}
        out.append(math.factorial(k) * z * (tail / z ** (k + 1)) / math.expm1(z))
    return out


def _update(x_a, s_a, s_b, points, param, m_b=None, p=1):
    """One UniP (``m_b`` None) or UniC step of order p from point a to b.

    ``points``: ``[(lambda, m), ...]`` newest first; ``points[0]`` is point a.
    """
    lam_a, m_a = points[0]
    lam_b = _lam(s_b, param)
    h = lam_b - lam_a
    alpha_b = 1 - s_b if param == "flow" else 1.0
    big_b = math.expm1(-h)
    rks = [(points[k][0] - lam_a) / h for k in range(1, p)]
    ds = [(points[k][1] - m_a) / r for k, r in zip(range(1, p), rks)]
    if m_b is not None:  # corrector: the new point has r = 1
        rks.append(1.0)
        ds.append(m_b - m_a)
    n = len(rks)
    if n == 0:
        rho = []
    elif n == 1 and (m_b is not None or p == 2):  # bh2's simplified UniC-1 / UniP-2 weight
        rho = [0.5]
    else:
        R = torch.tensor([[r**i for r in rks] for i in range(n)], dtype=torch.float64)
        rho = torch.linalg.solve(R, torch.tensor(_b(h, n), dtype=torch.float64)).tolist()
    x = (s_b / s_a) * x_a - alpha_b * big_b * m_a
    for w, d in zip(rho, ds):
        x = x - alpha_b * big_b * w * d
    return x


def _plain_unipc(model, sigmas, x, param, order=2, stop=None):
    """Plain multistep UniPC-bh2 over a ladder (one trajectory; ``model(x, i)`` is x0 at sigmas[i]);
    ``stop``: return after that many steps (default: all)."""
    sig = [float(s) for s in sigmas]
    T = len(sig) - 1
    points, last, last_order = [], None, 0  # points: (lambda, x0), newest first
    for i in range(T if stop is None else stop):
        m = model(x, i)
        if last is not None:
            x = _update(last, sig[i - 1], sig[i], points, param, m_b=m, p=last_order)
        points = [(_lam(sig[i], param), m)] + points[:order - 1]
        p = min(order, len(points), T - i)  # lower order while warming up and at the last step
        last, x = x, _update(x, sig[i], sig[i + 1], points, param, p=p)
        last_order = p
    return x


# --- (1) reduction: all latents at one level over a whole ladder = plain whole-clip UniPC ----------

@pytest.mark.parametrize("param", ["flow", "eps"])
@pytest.mark.parametrize("f0,stride", [(8, None), (7, 3), (8, 7)])
def test_unified_only_uni_pc_run_of_one_window_equals_plain_whole_clip_unipc(param, f0, stride):
    """Paper Alg. 8 with N == f0: every window sees the whole clip at one level, so Phi with per-latent
    UniPC is one plain UniPC step with one shared history."""
    seed = 5
    sigmas = _flow_ladder(12) if param == "flow" else torch.tensor(EPS_LADDER, dtype=torch.float64)
    T = len(sigmas) - 1
    cfg = MigaConfig(window_length=f0, window_stride=stride, zigzag_width=1, unified_steps=T, sampler="uni_pc",
                     parameterization=param, seed=seed)
    got = generate(ToyDenoiser(), sigmas, f0, cfg, latent_shape=SHAPE, dtype=torch.float64).latents
    x = fresh_noise(seed, f0, SHAPE, T).double() * sigmas[0]
    den = ToyDenoiser()
    want = _plain_unipc(lambda z, i: den(z, sigmas[i].expand(1, f0).clone(), torch.ones(1, 1, dtype=z.dtype)), sigmas, x, param)
    assert (got - want).abs().max() <= 1e-10
    # and it is not the Euler run: the multistep terms matter here
    euler = generate(ToyDenoiser(), sigmas, f0, cfg.with_(sampler="euler"), latent_shape=SHAPE, dtype=torch.float64).latents
    assert (got - euler).abs().max() > 1e-3


def test_flow_ladder_from_sigma_one_stays_finite():
    """At sigma = 1 (flow) alpha = 0 and lambda = -inf: the first step is Euler's, later terms that
    reach back to that point vanish (their r is -inf) instead of turning into NaN."""
    T, f0 = 10, 6
    cfg = MigaConfig(window_length=f0, zigzag_width=1, unified_steps=T, sampler="uni_pc")
    x = generate(ToyDenoiser(), torch.linspace(1, 0, T + 1), f0, cfg, latent_shape=SHAPE).latents
    assert torch.isfinite(x).all()


# --- (2) order 1 is Euler / DDIM -------------------------------------------------------------------

@pytest.mark.parametrize("param,sig,sig_next", [("flow", [0.9, 0.5, 0.3], [0.8, 0.4, 0.0]), ("eps", [9.0, 2.0, 0.4], [6.0, 1.4, 0.0])])
def test_first_step_of_a_latent_is_order_one_and_equals_euler(param, sig, sig_next):
    g = torch.Generator().manual_seed(0)
    x, d = torch.randn(2, 3, 3, 4, 4, generator=g, dtype=torch.float64), torch.randn(2, 3, 3, 4, 4, generator=g, dtype=torch.float64)
    s = StepInputs(x=x, denoised=d, sigma=torch.tensor(sig, dtype=torch.float64), sigma_next=torch.tensor(sig_next, dtype=torch.float64),
                   depth=torch.zeros(3, dtype=torch.long), parameterization=param)
    x_next, start = uni_pc_update(s)
    assert torch.equal(start, x)  # no corrector without history
    assert (x_next - euler_step(s)).abs().max() <= 1e-12
    ratio = (torch.tensor(sig_next, dtype=torch.float64) / torch.tensor(sig, dtype=torch.float64)).view(1, 1, -1, 1, 1)
    assert (x_next - (ratio * x + (1 - ratio) * d)).abs().max() <= 1e-12  # x' = (s'/s) x + (1 - s'/s) x0


# --- (3) the state travels with each latent ---------------------------------------------------------

def _per_frame_model(x, sigma):
    """x0 of each frame from that frame alone (so a latent's trajectory is its own business)."""
    return torch.tanh(0.7 * x + 0.2) * (1 - 0.1 * sigma)


class _FrameDenoiser:
    def __call__(self, x, sigma, prompt):
        return _per_frame_model(x, sigma.view(sigma.shape[0], 1, -1, 1, 1).to(x.dtype))


def test_each_latent_uses_its_own_history_through_passes_enqueue_and_dequeue():
    """Latents at different levels share windows; the tail grows and the head leaves each pass.
    Every latent must follow the plain single-latent UniPC over its own levels, whatever its
    neighbours are (a neighbour's x0 or last sample used by mistake changes the result)."""
    sigmas = _flow_ladder(9)
    T = len(sigmas) - 1
    cfg = MigaConfig(window_length=4, window_stride=2, sampler="uni_pc")  # windows split the queue
    ctx = PassContext(_FrameDenoiser(), sigmas, cfg, PromptSchedule.single(), Progress({"zigzag": 10**6}))
    g = torch.Generator().manual_seed(3)
    start_levels = [2, 4, 5, 7, 9]
    starts = {i: torch.randn(1, 2, 1, 3, 3, generator=g, dtype=torch.float64) for i in range(len(start_levels) + 10)}
    queue = LatentRun.fresh(torch.cat([starts[i] for i in range(len(start_levels))], dim=2), start_levels, range(len(start_levels)))
    level_of = dict(enumerate(start_levels))
    done, nxt = {}, len(start_levels)
    for _ in range(10):
        queue = queue_pass(ctx, queue, LatentRun.empty_like(queue.x))
        head = [p for p, k in enumerate(queue.level) if k == 0]
        for p in head:
            done[queue.index[p]] = queue.x[:, :, p:p + 1]
        queue = queue.frames([p for p in range(len(queue)) if p not in head])
        new = LatentRun.fresh(starts[nxt], [T], [nxt])  # enters at level T, with no state
        level_of[nxt] = T
        queue, nxt = queue + new, nxt + 1
    assert len(done) == 6 and max(queue.depth) == 2 and min(queue.depth) == 0
    for i, x in done.items():
        path = sigmas[T - level_of[i]:]
        want = _plain_unipc(lambda z, j, path=path: _per_frame_model(z, path[j]), path, starts[i], "flow")
        assert (x - want).abs().max() <= 1e-12, f"latent {i}"
    for p, i in enumerate(queue.index):  # and those still queued are where their own UniPC run is
        path = sigmas[T - level_of[i]:]
        want = _plain_unipc(lambda z, j, path=path: _per_frame_model(z, path[j]), path, starts[i], "flow",
                            stop=level_of[i] - queue.level[p])
        assert (queue.x[:, :, p:p + 1] - want).abs().max() <= 1e-12, f"queued latent {i}"


def test_state_follows_a_latent_through_reordering_and_concatenation():
    """Permuting frames (frames()/cat) before a step and after it gives the same latents."""
    sigmas = _flow_ladder(9)
    cfg = MigaConfig(window_length=6, window_stride=5, sampler="uni_pc")
    ctx = PassContext(_FrameDenoiser(), sigmas, cfg, PromptSchedule.single(), Progress({"zigzag": 10**6}))
    x = torch.randn(1, 2, 5, 3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    q = LatentRun.fresh(x, [3, 5, 6, 8, 9], range(5))
    empty = LatentRun.empty_like(x)
    for _ in range(2):
        q = queue_pass(ctx, q, empty)
    assert q.depth == (2,) * 5
    perm = [4, 1, 3, 0, 2]
    shuffled = q.frames(perm[:2]) + q.frames(perm[2:]).copy()
    a = queue_pass(ctx, q, empty).frames(perm)
    b = queue_pass(ctx, shuffled, empty)
    assert torch.equal(a.x, b.x) and torch.equal(a.past, b.past) and a.depth == b.depth


def test_without_history_makes_the_next_step_first_order():
    sigmas = _flow_ladder(9)
    cfg = MigaConfig(window_length=6, window_stride=5, sampler="uni_pc")
    ctx = PassContext(_FrameDenoiser(), sigmas, cfg, PromptSchedule.single(), Progress({"zigzag": 10**6}))
    x = torch.randn(1, 2, 3, 3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    empty = LatentRun.empty_like(x)
    q = queue_pass(ctx, queue_pass(ctx, LatentRun.fresh(x, [7, 8, 9], range(3)), empty), empty)
    reset = q.without_history()
    assert reset.past is None and reset.depth == (0,) * 3 and reset.has_denoised == (False,) * 3
    stepped = queue_pass(ctx, reset, empty)
    euler = queue_pass(replace(ctx, config=cfg.with_(sampler="euler")), reset, empty)
    assert (stepped.x - euler.x).abs().max() <= 1e-12
    assert (queue_pass(ctx, q, empty).x - euler.x).abs().max() > 1e-4  # with its history it is not Euler


def test_reflection_pick_keeps_each_videos_state_and_the_shallower_depth():
    x = torch.randn(2, 2, 3, 2, 2, generator=torch.Generator().manual_seed(6))
    a = LatentRun(x, (3, 4, 5), (0, 1, 2), x + 1, (True,) * 3, torch.stack([x + 2, x + 3]), (2, 1, 2))
    b = LatentRun(-x, (3, 4, 5), (0, 1, 2), -x, (True,) * 3, torch.stack([-x - 2, -x - 3]), (1, 2, 2))
    out = _pick(torch.tensor([True, False]), a, b)
    assert out.depth == (1, 1, 2)
    assert torch.equal(out.past[:, 0], a.past[:, 0]) and torch.equal(out.past[:, 1], b.past[:, 1])
    fresh = LatentRun.fresh(-x, (3, 4, 5), (0, 1, 2))  # a run with no state: zeros, depth 0
    out = _pick(torch.tensor([True, True]), a, fresh)
    assert out.depth == (0, 0, 0) and torch.equal(out.past, a.past)


@pytest.mark.parametrize("batch", [1, 3])
def test_miga_run_with_uni_pc_reflection_and_guidance_is_finite_and_batch_invariant(batch):
    cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=3, sampler="uni_pc", window_batch=batch)
    refl = ReflectionOptions(threshold=-1.0, num_candidates=2)  # every check searches and replaces
    r = generate(ToyDenoiser(), _flow_ladder(16).float(), 19, cfg, latent_shape=SHAPE, guidance=GuidanceOptions(2), reflection=refl)
    ref = generate(ToyDenoiser(), _flow_ladder(16).float(), 19, cfg.with_(window_batch=1), latent_shape=SHAPE,
                   guidance=GuidanceOptions(2), reflection=refl)
    assert torch.isfinite(r.latents).all() and torch.equal(r.latents, ref.latents)
    assert r.reflection.n_corr > 0


def test_stage1_outputs_carry_their_state_into_the_unified_stage():
    from miga_core import zigzag_stage

    cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=4, sampler="uni_pc")
    state = zigzag_stage(ToyDenoiser(), init_queue(ToyDenoiser(), _flow_ladder(12).float(), 12, cfg, latent_shape=SHAPE))
    assert state.outputs.depth == (2,) * 12 and state.outputs.past is not None


def test_flow_ladder_above_one_is_refused_before_any_model_call():
    den = ToyDenoiser()
    cfg = MigaConfig(window_length=6, zigzag_width=1, unified_steps=6, sampler="uni_pc")
    with pytest.raises(InvalidLadderError, match="uni_pc"):
        generate(den, torch.linspace(2, 0, 7), 6, cfg, latent_shape=SHAPE)
    assert den.calls == []
    generate(den, torch.linspace(2, 0, 7), 6, cfg.with_(parameterization="eps"), latent_shape=SHAPE)  # eps: any sigma


# --- (4) equality with the official per-latent UniPC step ----------------------------------------------

@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_matches_the_official_per_latent_unipc_step(dtype, tol):
    """Fixture recorded from the official MIGA release's per-latent UniPC step (its flow UniPC scheduler)
    (diffusers 0.31.0) by a script kept outside this repository: three latents with their own
    state start at ladder indices 0, 20 and 48 of the T=54 shift-5 ladder (sigma_0 = 0.9998) and
    take 6 steps each on fixed random velocities v; the last latent's last step goes to sigma = 0.
    Official orders: [1, 2, 2, 2, 2, 2] (the last [.., 1]). Here the three latents share one window
    at levels 54-48, 54-20, 54-0 and the denoiser returns ``x0 = x - sigma * v``."""
    f = load_file(str(FIXTURE))
    sigmas = f["sigmas"].to(dtype)
    T = len(sigmas) - 1
    starts, v = f["starts"].tolist(), f["v"].to(dtype)  # v [3, 6, 1, C, 1, H, W]
    want = f["x_out_f64" if dtype == torch.float64 else "x_out_f32"]
    assert f["orders_f64"].tolist() == [[1, 2, 2, 2, 2, 2], [1, 2, 2, 2, 2, 2], [1, 2, 2, 2, 2, 1]]
    assert abs(float(sigmas[0]) - 0.9998) < 1e-4 and float(sigmas[-1]) == 0 and T == 54

    def denoiser(x, sig, prompt):
        out = torch.empty_like(x)
        for f_ in range(x.shape[2]):
            k = int((sigmas == sig[0, f_]).nonzero()[0])  # ladder index -> which latent, which step
            i = max(n for n, k0 in enumerate(starts) if k0 <= k)
            out[:, :, f_] = x[:, :, f_] - sig[0, f_] * v[i, k - starts[i], :, :, 0]
        return out

    cfg = MigaConfig(window_length=4, window_stride=3, sampler="uni_pc")
    ctx = PassContext(denoiser, sigmas, cfg, PromptSchedule.single(), Progress({"zigzag": 10**6}))
    x = torch.cat([f["x_init"][i].to(dtype) for i in range(3)], dim=2)  # [1, C, 3, H, W]
    order = sorted(range(3), key=lambda i: -starts[i])  # queue head = cleanest
    q = LatentRun.fresh(x[:, :, order], [T - starts[i] for i in order], order)
    worst = 0.0
    for step in range(6):
        q = queue_pass(ctx, q, LatentRun.empty_like(x))
        for p, i in enumerate(q.index):
            worst = max(worst, float((q.x[:, :, p] - want[i, step, :, :, 0].to(dtype)).abs().max()))
    assert q.level == (0, 28, 48)
    assert worst <= tol, worst
