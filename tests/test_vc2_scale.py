"""VC2's ``scale_arr`` as the named option ``MigaConfig.scale_arr`` [D7] (docs/algorithm.md "DDIM conventions").

VC2 was trained on ``x_t = sqrt(a_t) s(t) x0 + sqrt(1 - a_t) eps`` and its own DDIM sampler divides the x0 prediction by
``s(t)`` and multiplies it by ``s(t_prev)``; FIFO-Diffusion's ``ddim_step`` and the MIGA release drop it (the default
``"dropped"``). Here: (a) one window with all frames at one level equals VC2's DDIM loop with the scale, written below
from its equations (eta 0 and 1, the same noise); (b) with the exact denoiser of one clean latent every latent of a
whole run sits on the scaled forward process, and with every scale 1 the scaled step is the plain step bit for bit;
(c) ``"dropped"`` never reaches the scaled code.
"""

from __future__ import annotations

import math

import pytest
import torch

from miga_core import GuidanceOptions, MigaConfig, ddim_ladder, generate
from miga_core.errors import InvalidConfigError
from miga_core.latents import LatentRun, TailSource
from miga_core.ladder import signal_scale, vc2_scale_arr
from miga_core.noise import KeyedNoise, NoiseDraw, Stream, latent_noise
from miga_core.passes import PassContext, queue_pass
from miga_core.prompts import PromptSchedule
from miga_core.protocols import Progress
from tests.fifo_standin import EpsStandinDenoiser, cfg_eps

F64 = torch.float64
_, _, ALPHACUMS = ddim_ladder(2)  # VC2's float32 alphacums (held against FIFO-Diffusion's in test_fifo_official.py)
A = ALPHACUMS.to(F64)


def vc2_s(t: int) -> float:
    """VC2's s(t) from its config (use_scale, scale_b 0.7; LVDM defaults scale_a 1, mid_step 400), float32 like its buffer."""
    v = 1.0 + t * (0.7 - 1.0) / 399 if t < 399 else 0.7
    return float(torch.tensor(v, dtype=torch.float32))


def sigma_t(t: int) -> float:
    return math.sqrt((1 - float(A[t])) / float(A[t]))


def ladders(T: int) -> dict[str, tuple[torch.Tensor, list[int], str]]:
    """``name -> (our sigmas [T + 1], DDIM timesteps ascending [T], final_step)``.

    ``"fifo"``: FIFO-Diffusion's DDIM timesteps ``round(linspace(0, 999, T))`` (``ddim_ladder``; t_0 = 0, so DDIM's last
    step is the identity); ``"vc2"``: VC2's own ``range(0, 1000, 1000 // T) + 1`` (t_0 = 1: its last step goes to
    ``alphacums[0]``, our level 0 = sigma(t = 0), where s = 1 but s(t_0) != 1).
    """
    sig, ts, _ = ddim_ladder(T)
    vc2_ts = [1 + j * (1000 // T) for j in range(T)]
    vc2_sig = torch.tensor([sigma_t(t) for t in reversed(vc2_ts)] + [sigma_t(0)], dtype=F64)
    return {"fifo": (sig, ts.flip(0).tolist(), "identity"), "vc2": (vc2_sig, vc2_ts, "x0")}


def _ctx(config: MigaConfig, sigmas: torch.Tensor, den) -> PassContext:
    return PassContext(den, sigmas, config, PromptSchedule.single(), Progress({"zigzag": 1000}, None))


def test_vc2_scale_arr_and_the_ladder_scales():
    assert vc2_scale_arr().tolist() == [vc2_s(t) for t in range(1000)]
    for sig, ts, _ in ladders(8).values():
        got = signal_scale(sig, "vc2")
        assert got.tolist() == [vc2_s(t) for t in reversed(ts)] + [1.0]  # the last entry: sigma 0 or t = 0, s = 1
    assert signal_scale(ladders(8)["fifo"][0], "dropped") is None


# --- (a) one window at one level == VC2's DDIM loop with the scale -----------------------------------------------

def vc2_ddim(ts: list[int], x_T: torch.Tensor, eta: float, text, text_null, guide: float, seed: int, idx: list[int]) -> torch.Tensor:
    """VC2's ``DDIMSampler`` with ``use_scale`` in DDPM space, from its equations: per DDIM index i (t = ts[i], descending)
    ``a_prev = alphacums[ts[i - 1]]`` (``alphacums[0]`` at i = 0), ``sigma_eta = eta sqrt((1 - a_prev) / (1 - a_t)
    (1 - a_t / a_prev))``, ``pred = (x - sqrt(1 - a_t) e) / sqrt(a_t) / s(t)``,
    ``x = sqrt(a_prev) s(t_prev) pred + sqrt(1 - a_prev - sigma_eta^2) e + sigma_eta z`` (``s(t_prev) = s(0)`` at i = 0).
    ``z`` is our keyed ancestral noise of the level the step starts from (i + 1)."""
    x, F = x_T, x_T.shape[2]
    C, H, W = x.shape[1], x.shape[3], x.shape[4]
    for i in reversed(range(len(ts))):
        t = ts[i]
        t_prev = ts[i - 1] if i else 0
        a_t, a_prev = float(A[t]), float(A[t_prev])
        s_eta = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        e = cfg_eps(x[0], torch.full((F,), t), text, text_null, guide)[None]
        pred = (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t) / vc2_s(t)
        z = latent_noise(seed, Stream.ANCESTRAL, idx, [i + 1] * F, (1, C, H, W), dtype=F64)
        x = math.sqrt(a_prev) * vc2_s(t_prev) * pred + math.sqrt(1 - a_prev - s_eta**2) * e + s_eta * z
    return x


def _one_window(sigmas, timesteps, final, sampler, eta, scale_arr, F=4, seed=7):
    """Our pass loop as the initial-clip sampler runs it (one window of F frames, all at one level) from DDPM randn."""
    T = len(sigmas) - 1
    den = EpsStandinDenoiser(sigmas, timesteps, ["a cat"], "", 3.0)
    cfg = MigaConfig(window_length=F, window_stride=F, zigzag_width=1, unified_steps=0, mode="fifo", parameterization="eps",
                     sampler=sampler, eta=eta, final_step=final, tail_noise="ddpm", scale_arr=scale_arr, seed=seed)
    cfg.validate()
    idx = list(range(F))
    draw = NoiseDraw("fresh", "zigzag", Stream.FRESH, tuple(idx), (T,) * F)
    run = TailSource(KeyedNoise(seed), sigmas, tail_noise="ddpm")(draw, torch.zeros(1, 2, 0, 3, 3, dtype=F64))
    for _ in range(T):
        run = queue_pass(_ctx(cfg, sigmas, den), run, LatentRun.empty_like(run.x))
    assert run.level == (0,) * F
    x_T = latent_noise(seed, Stream.FRESH, idx, [T] * F, (1, 2, 3, 3), dtype=F64)  # randn in DDPM space
    return run.x * math.sqrt(float(A[0])), den, x_T, idx  # our sigma-space result at t = 0, in DDPM space


@pytest.mark.parametrize("ladder", ["fifo", "vc2"])
@pytest.mark.parametrize(("sampler", "eta"), [("euler", 0.0), ("euler_ancestral", 0.0), ("euler_ancestral", 1.0)])
def test_one_window_equals_vc2_ddim_with_scale(ladder, sampler, eta):
    sigmas, ts, final = ladders(8)[ladder]
    timesteps = torch.tensor(list(reversed(ts)))
    ours, den, x_T, idx = _one_window(sigmas, timesteps, final, sampler, eta, "vc2")
    ref = vc2_ddim(ts, x_T, eta, den.texts[0], den.text_null, 3.0, 7, idx)
    assert (ours - ref).abs().max() <= 1e-9 * ref.abs().max()
    dropped, *_ = _one_window(sigmas, timesteps, final, sampler, eta, "dropped")
    assert (dropped - ref).abs().max() > 1e-2  # the scale matters here: without it the run leaves VC2's sampler


# --- (b) the exact denoiser keeps every latent on the scaled forward process ---------------------------------------

class OneLatentOracle:
    """The exact x0 prediction of a data set holding one clean latent ``c``, for a model trained with VC2's scale:
    ``D(x, sigma) = s(t(sigma)) c`` (a latent at level k is ``s_k c + sigma_k eps``: eps = (x - D) / sigma exactly)."""

    def __init__(self, c: torch.Tensor, sigmas: torch.Tensor, ts_desc: list[int]):
        self.c = c
        self.scale = {float(sg): vc2_s(t) for sg, t in zip(sigmas.tolist(), ts_desc + [0])}

    def __call__(self, x, sigma, prompt):
        s = torch.tensor([[self.scale[float(v)] for v in row] for row in sigma.tolist()], dtype=x.dtype)
        return s.view(s.shape[0], 1, s.shape[1], 1, 1) * self.c.to(x.dtype)


def zero_noise(draw, shape, dtype, device):
    return torch.zeros((*shape[:2], len(draw.indices), *shape[2:]), dtype=dtype, device=device)


def _latents_off_process(config: MigaConfig, N: int, num_guidance: int, fifo_history: bool = False) -> list[float]:
    """Run ``config`` on the "vc2" ladder (T = 12) with the oracle, zero noise and the clip ``c`` (new latents: the clip's
    last latent noised to level T, ``fresh_content="clip_last"``): every latent at level k must be ``s_k c``. Returns the
    largest ``|x - s_k c|`` of every state a pass leaves (queue, history, outputs), and of the result.

    ``fifo_history``: only the history of FIFO's first T passes (its outputs then are the re-noised clip's; FIFO's tails
    are pure noise, not ``s_T c``)."""
    sigmas, ts, _ = ladders(12)["vc2"]
    T = len(ts)
    scale = [vc2_s(t) for t in reversed(ts)] + [1.0]  # by ladder position T - k
    c = torch.randn(1, 2, 1, 3, 3, generator=torch.Generator().manual_seed(4), dtype=F64) * 2
    errors: list[float] = []

    def off(run) -> None:
        if isinstance(run, LatentRun) and len(run):
            s = torch.tensor([scale[T - k] for k in run.level], dtype=F64).view(1, 1, -1, 1, 1)
            errors.append(float((run.x - s * c).abs().max()))

    def hook(make) -> None:
        st = make().state
        if not fifo_history:
            for run in (st.queue, st.history, st.outputs):
                off(run)
        elif st.at.stage == "zigzag" and st.at.passes < T:
            off(st.history)

    f0 = config.window_length
    out = generate(OneLatentOracle(c, sigmas, list(reversed(ts))), sigmas, N, config, guidance=GuidanceOptions(num_guidance=num_guidance),
                   initial_clip=c.expand(-1, -1, f0, -1, -1).clone(), noise=zero_noise, checkpoint=hook)
    if not fifo_history:
        errors.append(float((out.latents - c).abs().max()))  # level 0: s = 1, sigma(0) * 0
    assert len(errors) > 8
    return errors


MIGA = MigaConfig(window_length=6, zigzag_width=2, unified_steps=3, parameterization="eps", fresh_content="clip_last",
                  refine_steps=2, scale_arr="vc2")
FIFO = MigaConfig(window_length=4, window_stride=2, zigzag_width=1, unified_steps=0, mode="fifo", parameterization="eps",
                  scale_arr="vc2")


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m", "uni_pc"])
def test_the_exact_denoiser_keeps_every_latent_on_the_scaled_forward_process(sampler):
    """Init re-noise, clip_last tails, zigzag windows with guidance, unified stage, refinement re-noise, multistep
    history: every latent at level k is ``s_k c`` (to rounding: dpmpp_2m's coefficients are float32); with the scale
    dropped it is not."""
    cfg = MIGA.with_(sampler=sampler)
    assert max(_latents_off_process(cfg, 14, 1)) <= 1e-6
    assert max(_latents_off_process(cfg.with_(scale_arr="dropped"), 14, 1)) > 1e-2


@pytest.mark.parametrize("sampler", ["euler", "uni_pc"])
def test_fifo_history_shown_at_level_1_carries_its_scale(sampler):
    """FIFO shows its level-0 outputs (c) as history at level 1 (s(t_0) = s(1) != 1 on VC2's own ladder): ``s_1 c``."""
    assert max(_latents_off_process(FIFO.with_(sampler=sampler), 8, 0, fifo_history=True)) <= 1e-6


def _ones_scale(monkeypatch):
    """Every signal scale 1 through the scaled code paths (the scale module's one function, where each module holds it)."""
    import miga_core.latents
    import miga_core.passes
    import miga_core.stages

    def ones(sigmas, scale_arr):
        return None if scale_arr == "dropped" else torch.ones(len(sigmas), dtype=F64)

    for mod in (miga_core.passes, miga_core.stages, miga_core.latents):
        monkeypatch.setattr(mod, "signal_scale", ones)


PLANS = {
    "miga_ancestral_clip_last_refine": MIGA.with_(sampler="euler_ancestral", eta=1.0, tail_noise="ddpm"),
    "miga_uni_pc": MIGA.with_(sampler="uni_pc", fresh_content="noise", refine_steps=0),
    "miga_dpmpp_2m_gauss_seidel": MIGA.with_(sampler="dpmpp_2m", zigzag_reads="gauss_seidel", build_reads="gauss_seidel"),
    "fifo_identity_ddpm": FIFO.with_(sampler="euler_ancestral", eta=1.0, final_step="identity", tail_noise="ddpm"),
}


def _stand_in_run(config: MigaConfig, dtype=F64) -> torch.Tensor:
    sigmas, ts, _ = ddim_ladder(12)
    den = EpsStandinDenoiser(sigmas, ts, ["a cat", "a dog"], "", 3.0)
    f0 = config.window_length
    clip = torch.randn(1, 2, f0, 3, 4, generator=torch.Generator().manual_seed(2), dtype=dtype)
    return generate(den, sigmas, 10, config, guidance=GuidanceOptions(num_guidance=0 if config.mode == "fifo" else 1),
                    initial_clip=clip).latents


@pytest.mark.parametrize("name", sorted(PLANS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_scale_1_is_the_plain_run_bit_for_bit(name, dtype, monkeypatch):
    """The reduction: the scaled code with s = 1 everywhere equals the unscaled run exactly (stand-in eps model)."""
    dropped = _stand_in_run(PLANS[name].with_(scale_arr="dropped"), dtype)
    scaled = _stand_in_run(PLANS[name], dtype)
    assert (scaled - dropped).abs().max() > 1e-2  # the real scales change the run
    _ones_scale(monkeypatch)
    assert torch.equal(_stand_in_run(PLANS[name], dtype), dropped)


# --- (c) option off: the plain code -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PLANS))
def test_dropped_never_reaches_the_scaled_code(name, monkeypatch):
    """``"dropped"`` (the default) runs the code as it was before the option: the scaled step is never called and
    every noising takes no scale (the pre-option outputs of these plans were compared with torch.equal when the option
    was added; the official-equivalence records hold the defaults too)."""
    import miga_core.noise
    import miga_core.passes

    def refuse(*a, **k):
        raise AssertionError("the scaled step ran with scale_arr='dropped'")

    plain_add = miga_core.noise.add_noise

    def add_noise(x0, noise, sigma, parameterization, scale=None):
        assert scale is None, "a noising took a signal scale with scale_arr='dropped'"
        return plain_add(x0, noise, sigma, parameterization)

    monkeypatch.setattr(miga_core.passes, "scaled_update", refuse)
    for mod in ("miga_core.stages", "miga_core.latents"):
        monkeypatch.setattr(f"{mod}.add_noise", add_noise)
    assert MigaConfig().scale_arr == "dropped"
    _stand_in_run(PLANS[name].with_(scale_arr="dropped"))


def test_scale_arr_is_refused_where_it_cannot_mean_anything():
    with pytest.raises(InvalidConfigError, match="scale_arr"):
        MigaConfig(scale_arr="vc2").validate()  # flow model
    with pytest.raises(InvalidConfigError, match="scale_arr"):
        MigaConfig(parameterization="eps", scale_arr="on").validate()
    MigaConfig(parameterization="eps", scale_arr="vc2").validate()
