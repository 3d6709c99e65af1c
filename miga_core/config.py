"""Option objects of the MIGA sampler and their validation.

Names follow docs/algorithm.md: ``window_length`` = f0, ``window_stride`` = s, ``zigzag_width``
= L_zig, ``unified_steps`` = u (the paper's e = u + 1), ``num_guidance`` = m_guid.
Checks that need T, N or several option objects together live in
:func:`miga_core.plan.plan_run`, called once before any model call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch

from .errors import InvalidConfigError, MigaTypeError, bad_value

__all__ = [
    "SamplerName",
    "UpdateRule",
    "Parameterization",
    "Mode",
    "ScoreOn",
    "Borders",
    "BuildLength",
    "FreshContent",
    "BuildReads",
    "Stage2History",
    "GuidanceRule",
    "ReflectionPhase",
    "FinalStep",
    "TailNoise",
    "ScaleArr",
    "MigaConfig",
    "GuidanceOptions",
    "ReflectionOptions",
    "PRESETS",
    "preset",
]

SamplerName = Literal["euler", "euler_ancestral", "dpmpp_2m", "uni_pc"]
UpdateRule = Literal["lookahead", "former", "official"]
Parameterization = Literal["flow", "eps"]
Mode = Literal["miga", "fifo"]
ScoreOn = Literal["latent", "denoised"]
Borders = Literal["fixed", "rotating"]  # window border schedule (REFERENCE A1.5, item 5)
BuildLength = Literal["paper", "official"]  # queue-build length rule (REFERENCE A1.4, A1.8, item 2)
FreshContent = Literal["noise", "clip_last"]  # content of a new tail latent (REFERENCE A1.4, item 11)
BuildReads = Literal["jacobi", "gauss_seidel"]  # how queue-building windows read guidance latents (REFERENCE A1.4, item 16)
Stage2History = Literal["keep", "reset"]  # multistep state at the start of stage 2 (REFERENCE A1.9, item 7)
GuidanceRule = Literal["even", "official"]  # long-range guidance positions (REFERENCE A1.6, item 8)
ReflectionPhase = Literal["stage1", "build"]  # when self-reflection checks (REFERENCE A1.7, item 3)
# --- vc2-official (REFERENCE Part A2) ---
ZigzagReads = Literal["jacobi", "gauss_seidel"]  # how stage-1 windows read guidance latents (REFERENCE A2.3, A2.5)
Stage1Content = Literal["same", "noise"]  # stage-1 tail content: as fresh_content, or pure noise (REFERENCE A2.5)
Stage1Append = Literal["after_popping", "every_pass"]  # official stage-1 append rule: Wan (A1.8) or VC2 (A2.5)
RefineRenoise = Literal["sigma", "vp"]  # refinement re-noise of the output: x + s_r n, or the VP add_noise of A2.6
# --- DDIM conventions of the official VC2 / FIFO-Diffusion code (docs/algorithm.md "DDIM conventions") [D7]
FinalStep = Literal["x0", "identity"]  # the ladder's last step (level 1 -> 0): to x0, or DDIM's alphas_prev[0] = alphacums[0]
TailNoise = Literal["sigma", "ddpm"]  # a pure-noise latent at level T: sigma_T * n, or randn in DDPM space = sqrt(1 + sigma_T^2) * n
ScaleArr = Literal["dropped", "vc2"]  # VC2's per-timestep signal scale s(t): x = s(t) x0 + sigma n (VC2's own DDIMSampler), or s = 1


def _check_int(name: str, value: object, minimum: int | None, fix: str) -> None:
    """Raise unless ``value`` is an int (not a bool) and, if ``minimum`` is given, ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MigaTypeError(f"{name}={value!r} has type {type(value).__name__}: allowed is an int. Fix: {fix}.")
    if minimum is not None and value < minimum:
        raise InvalidConfigError(bad_value(name, value, f"an integer >= {minimum}", fix))


def _check_choice(name: str, value: object, literal: object) -> None:
    choices = get_args(literal)
    if value not in choices:
        raise InvalidConfigError(
            bad_value(name, value, f"one of {', '.join(map(repr, choices))}", f"pick one of {choices}")
        )


@dataclass(frozen=True)
class MigaConfig:
    """Queue and sampler options shared by every stage [D1, D2, D4].

    The number of steps T is not here: it is ``len(sigmas) - 1`` of the host's ladder.
    """

    window_length: int = 16  # f0: latent frames per model call
    window_stride: int | None = None  # s: queue positions updated per window; None = floor(f0 / 2)
    zigzag_width: int = 4  # L_zig: latents per noise level in the stage-1 queue (1 = FIFO-Diffusion)
    unified_steps: int = 9  # u: steps left to the unified stage (paper e = u + 1); u = T: unified only
    sampler: SamplerName = "euler"  # per-latent step [D2]; "uni_pc": UniPC-bh2 with per-latent history (REFERENCE A1.2)
    eta: float = 1.0  # ancestral noise scale, euler_ancestral only
    update: UpdateRule = "lookahead"  # where the updated region sits in the window [D1]
    parameterization: Parameterization = "flow"  # how a clean latent is noised: flow (1-s)x+s*n, eps x+s*n
    window_batch: int = 1  # windows per denoiser call: the same windows and noise for any value [D1] (a batched model may differ in the last bits)
    seed: int = 0  # noise is a pure function of (seed, latent index, level) [D1b]
    mode: Mode = "miga"  # "fifo": FIFO-Diffusion's own queue, init and discard rule [D4] (zigzag_width 1, unified_steps 0)
    compute_device: str | None = None  # where windows go for the model; None = where the latents are
    # (latents stored on "cpu" with compute_device="cuda": GPU memory holds one window, whatever N)
    # --- [D7] options of the authors' released code (REFERENCE.md item numbers); the defaults are the paper's [D1-D5]
    borders: Borders = "fixed"  # "rotating": stage-1/2/refinement regions shift by pass mod s every pass (A1.5, item 5)
    build_length: BuildLength = "paper"  # "official": min(ceil(M/L_zig), T-n_zig-(u+2)) build passes, drain (A1.4, A1.8, item 2)
    fresh_content: FreshContent = "noise"  # "clip_last": new latents are the initial clip's last latent noised to sigma_0 (item 11)
    build_reads: BuildReads = "jacobi"  # "gauss_seidel": build windows read guidance already stepped in the pass (A1.4, item 16)
    stage2_history: Stage2History = "keep"  # "reset": multistep state dropped when stage 2 starts (A1.9, item 7)
    refine_steps: int = 0  # r: re-noise the finished video to level r, then r unified passes (A1.10, item 1); 0 = off
    trim_tail: int = 0  # latents dropped from the end of the video after everything (A1.11, item 10; official = f0)
    official_stage2_mislabel: bool = False  # BUG of the released code, for equality only: stage 2 labels its input u+1 (item 13)
    # --- vc2-official options (REFERENCE Part A2); the defaults change nothing ---
    zigzag_reads: ZigzagReads = "jacobi"  # "gauss_seidel": stage-1 windows read guidance already stepped in the pass (A2.5)
    stage1_content: Stage1Content = "same"  # "noise": stage-1 tail latents are pure noise whatever fresh_content (A2.5)
    stage1_append: Stage1Append = "after_popping"  # "every_pass": build_length="official" appends a group after every pass (A2.5)
    refine_renoise: RefineRenoise = "sigma"  # "vp": x / sqrt(1 + sigma_end^2) + sigma_r n, sigma_end = sigmas[T] (A2.6)
    # --- DDIM conventions of the official VC2 / FIFO-Diffusion code; the defaults are the exact sampler's
    # "identity": the step from level 1 keeps the latent (the model is still called): LVDM's make_ddim_sampling_parameters
    # sets alphas_prev[0] = alphacums[ddim_timesteps[0]] = alphacums[0], so the last DDIM step goes from t=0 to t=0 and the
    # output keeps sigma(t=0) = sigmas[T-1] of noise (FIFO-Diffusion's fifo_ddim_sampling, VC2's DDIMSampler)
    final_step: FinalStep = "x0"
    # "ddpm": pure-noise latents at level T are randn in the model's DDPM input space, sqrt(1 + sigma_T^2) * n in sigma
    # space (FIFO-Diffusion's shift_latents, VC2's DDIMSampler x_T, the released MIGA VC2 tail, A2.5; eps models only);
    # "sigma": sigma_T * n (k-diffusion)
    tail_noise: TailNoise = "sigma"
    # "vc2": VC2's scale_arr (its config's use_scale, scale_b 0.7): a latent at level k is s_k x0 + sigma_k n, s_k the scale of
    # the level's DDPM timestep (miga_core.ladder.signal_scale); noising multiplies x0 by s_k and every step rescales the x0
    # prediction by s_next / s (VC2's p_sample_ddim). "dropped": s = 1, as FIFO-Diffusion's ddim_step and the MIGA release
    # (eps models only)
    scale_arr: ScaleArr = "dropped"

    @property
    def stride(self) -> int:
        """The window stride s, resolving the default ``floor(window_length / 2)``."""
        return self.window_stride if self.window_stride is not None else self.window_length // 2

    def with_(self, **changes: object) -> "MigaConfig":
        """Return a copy with ``changes`` applied (the config is immutable)."""
        return replace(self, **changes)

    def _validate_ddim_conventions(self) -> None:
        """``final_step``, ``tail_noise`` and ``scale_arr`` [D7] (docs/algorithm.md "DDIM conventions")."""
        _check_choice("final_step", self.final_step, FinalStep)
        _check_choice("tail_noise", self.tail_noise, TailNoise)
        _check_choice("scale_arr", self.scale_arr, ScaleArr)
        if self.scale_arr == "vc2" and self.parameterization != "eps":
            raise InvalidConfigError(bad_value("scale_arr", "vc2", "'dropped' with parameterization 'flow' (VC2's signal scale belongs to "
                                               "its eps model)", "use scale_arr='dropped', or parameterization='eps' for VC2"))
        if self.tail_noise == "ddpm" and self.parameterization != "eps":
            raise InvalidConfigError(bad_value("tail_noise", "ddpm", "'sigma' with parameterization 'flow' (DDPM space exists for eps "
                                               "models only)", "use tail_noise='sigma', or parameterization='eps' for an eps model"))
        if self.final_step == "identity" and self.mode == "miga" and self.unified_steps == 0:
            raise InvalidConfigError(bad_value("final_step", "identity", "'x0' with mode 'miga' and unified_steps 0 (its history "
                                               "latents are shown to the model at level 0, sigma 0, but would still hold sigma(t=0) of "
                                               "noise)", "use final_step='x0', or unified_steps >= 1, or mode 'fifo'"))

    def validate(self, num_guidance: int = 0) -> None:
        """Check the options that do not depend on the ladder.

        Raises:
            InvalidConfigError / MigaTypeError: naming the option, its value, the range and the fix.
        """
        _check_int("window_length", self.window_length, 1, "use the model's latent frames per clip (Wan2.1 21, VC2 16)")
        if self.window_stride is not None:
            _check_int("window_stride", self.window_stride, 1, "use None for floor(window_length/2)")
        _check_int("zigzag_width", self.zigzag_width, 1, "use 1 for FIFO-Diffusion's queue or the paper's 4 (VC2) / 7 (Wan2.1)")
        _check_int("unified_steps", self.unified_steps, None,  # its range needs T: plan_run [D4]
                   "use the paper's 9, 0 for no unified stage, or T for the unified stage alone")
        _check_int("window_batch", self.window_batch, 1, "use 1, or more windows per call if memory allows")
        _check_int("seed", self.seed, 0, "use a non-negative seed")
        _check_choice("sampler", self.sampler, SamplerName)
        _check_choice("update", self.update, UpdateRule)
        _check_choice("parameterization", self.parameterization, Parameterization)
        _check_choice("mode", self.mode, Mode)
        _check_choice("borders", self.borders, Borders)
        _check_choice("build_length", self.build_length, BuildLength)
        _check_choice("fresh_content", self.fresh_content, FreshContent)
        _check_choice("build_reads", self.build_reads, BuildReads)
        _check_choice("stage2_history", self.stage2_history, Stage2History)
        for name, lit in (("zigzag_reads", ZigzagReads), ("stage1_content", Stage1Content), ("stage1_append", Stage1Append),
                          ("refine_renoise", RefineRenoise)):
            _check_choice(name, getattr(self, name), lit)
        if self.parameterization != "eps" and self.refine_renoise != "sigma":
            raise InvalidConfigError(bad_value("refine_renoise", self.refine_renoise,
                                               "'sigma' for flow models ('vp' is the VP-space rule of eps models, A2.6)",
                                               "use refine_renoise='sigma'"))
        _check_int("refine_steps", self.refine_steps, 0, "use 0 (no refinement) or the released code's 10")
        _check_int("trim_tail", self.trim_tail, 0, "use 0 (keep every latent) or the released code's window_length")
        self._validate_ddim_conventions()
        if not isinstance(self.official_stage2_mislabel, bool):
            raise MigaTypeError(f"official_stage2_mislabel={self.official_stage2_mislabel!r} has type "
                                f"{type(self.official_stage2_mislabel).__name__}: allowed is a bool. Fix: use False.")
        if self.official_stage2_mislabel and (self.stage2_history != "reset" or self.refine_steps < 1):
            raise InvalidConfigError(bad_value(
                "official_stage2_mislabel", True, "only with stage2_history='reset' and refine_steps >= 1 (the released code's "
                "combination: the mislabelled stage 2 ends one step short, the refinement finishes it) [D7]",
                "set official_stage2_mislabel=False, or stage2_history='reset' and refine_steps=10"))
        if self.mode == "fifo" and (self.update == "official" or self.build_length != "paper" or self.refine_steps
                                    or self.official_stage2_mislabel or self.fresh_content != "noise"):
            raise InvalidConfigError(bad_value("mode", "fifo", "the paper's options (FIFO-Diffusion has no official MIGA profile) [D4]",
                                               "use mode 'miga' for the official options"))
        if self.compute_device is not None:
            try:
                torch.device(self.compute_device)
            except (RuntimeError, TypeError) as exc:
                raise InvalidConfigError(bad_value("compute_device", self.compute_device, "None or a torch device string such as 'cuda' or 'cuda:1'",
                                                   "use None to compute where the latents are")) from exc
        if not (isinstance(self.eta, (int, float)) and math.isfinite(self.eta) and self.eta >= 0):
            raise InvalidConfigError(bad_value("eta", self.eta, "a finite float >= 0", "use 1.0 (ancestral) or 0.0 (deterministic)"))
        if self.sampler == "euler_ancestral" and self.parameterization != "eps":
            raise InvalidConfigError(
                bad_value("sampler", self.sampler, "'euler', 'dpmpp_2m' or 'uni_pc' for flow models (ancestral is eps only) [D2]",
                          "use sampler='euler' for flow models such as Wan2.1")
            )
        # FIFO-Diffusion's non-lookahead mode: stride = f0, windows side by side, each updates all of itself (its
        # fifo_ddim_sampling with lookahead_denoising off); elsewhere every window keeps at least one context latent [D1]
        spare = 0 if self.mode == "fifo" else 1
        need = self.stride + num_guidance + spare
        if self.window_length < need:
            # the smallest window that works: with the default stride floor(f0/2) the need grows with f0
            works = next(f for f in range(self.window_length, 2 * need + 2)
                         if f >= (self.window_stride if self.window_stride is not None else f // 2) + num_guidance + spare)
            raise InvalidConfigError(
                bad_value("window_length", self.window_length,
                          f">= window_stride + num_guidance + {spare} = {self.stride} + {num_guidance} + {spare} = {need} [D1]"
                          + (" (mode 'fifo': stride = window_length is FIFO-Diffusion's non-lookahead mode)" if spare == 0 else ""),
                          f"raise window_length to {works}, or lower window_stride or num_guidance")
            )


@dataclass(frozen=True)
class GuidanceOptions:
    """Long-range frame guidance (paper Sec. 3.3, Eq. 8, Alg. 7; [D3]).

    ``num_guidance`` (m_guid) earlier, cleaner latents are prepended to each stage-1 window.
    """

    num_guidance: int = 4  # m_guid; 0 disables guidance
    positions: GuidanceRule = "even"  # "official": b-(floor(L_zig/2)+j*L_zig), early queue b-j*floor(b/m) (REFERENCE A1.6, item 8)

    def validate(self) -> None:
        _check_int("num_guidance", self.num_guidance, 0, "use 0 to disable, or the paper's 4 (Wan2.1) / 6 (VC2)")
        _check_choice("positions", self.positions, GuidanceRule)


@dataclass(frozen=True)
class ReflectionOptions:
    """Self-reflection (paper Sec. 3.3, Eq. 5-7, Alg. 6; [D5]).

    Positions are queue positions (0 = head). ``None`` picks the docs/algorithm.md default.
    """

    threshold: float = 0.01  # delta: trigger when C_prev - C > threshold
    num_eval: int = 4  # f_eval
    num_ref: int = 8  # f_ref
    num_candidates: int = 4  # n_samp
    num_guide: int | None = None  # f_guid; None = window_length - window_stride
    judge_position: int | None = None  # f_judg; None = first position at the level nearest 0.8*T
    score_on: ScoreOn = "latent"  # score the noisy latents (paper) or their latest x0_hat
    # "build": after each queue-building pass whose head has had more than judge_from_tail + num_ref/L_zig steps, judge
    # the group judge_from_tail groups from the tail; candidates grow one group per round (REFERENCE A1.7, items 3, 4)
    phase: ReflectionPhase = "stage1"
    judge_from_tail: int | None = None  # phase "build": judged group, counted in groups from the tail (official 10)
    candidate_guidance: bool = True  # False: candidate passes run without long-range guidance (official, item 4)

    def validate(self) -> None:
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)):
            raise InvalidConfigError(bad_value("threshold", self.threshold, "a finite float", "use the paper's 0.01"))
        _check_int("num_eval", self.num_eval, 1, "use the paper's 4")
        _check_int("num_ref", self.num_ref, 1, "use the paper's 8")
        _check_int("num_candidates", self.num_candidates, 1, "use 4")
        if self.num_guide is not None:
            _check_int("num_guide", self.num_guide, 0, "use None for window_length - window_stride")
        if self.judge_position is not None:
            _check_int("judge_position", self.judge_position, 0, "use None for the level nearest 0.8*T")
        _check_choice("score_on", self.score_on, ScoreOn)
        _check_choice("phase", self.phase, ReflectionPhase)
        if self.judge_from_tail is not None:
            _check_int("judge_from_tail", self.judge_from_tail, 1, "use the released code's 10, or None with phase 'stage1'")
        if self.phase == "build" and self.judge_from_tail is None:
            raise InvalidConfigError(bad_value("judge_from_tail", None, "an integer >= 1 with phase 'build' (REFERENCE A1.7)",
                                               "use the released code's 10"))
        if not isinstance(self.candidate_guidance, bool):
            raise MigaTypeError(f"candidate_guidance={self.candidate_guidance!r} has type {type(self.candidate_guidance).__name__}: "
                                "allowed is a bool. Fix: use True.")


# T comes from the host's ladder (VC2 64, Wan2.1 54). "wan21-paper" and "vc2": the paper defaults (docs/algorithm.md
# "Paper defaults"). "wan21" (the nodes' defaults): the paper profile plus the four choices of the authors' released
# loop that each measured better alone on the toy benchmark (issue 9; BENCHMARKS.md "The authors' released loop",
# benchmarks/results/toy_quality_cuda.json, against `full MIGA`): rotating borders (smoothness +0.0011, jumps -1.5),
# the official update rule (smoothness +0.0024, jumps -2.8, fewer windows), the official guidance positions (smoothness
# +0.0006) and the official self-reflection geometry (identity +0.0099, presence +0.0098, smoothness -0.0008, a third
# of the windows). Not adopted: the official build length, tail content, Gauss-Seidel reads, stage-2 history reset,
# refinement (within 0.003 on every metric, for its cost), trim, uni_pc and the stage-2 mislabel [D7].
PRESETS: dict[str, tuple[MigaConfig, GuidanceOptions, ReflectionOptions | None]] = {
    "wan21": (
        MigaConfig(window_length=21, zigzag_width=7, unified_steps=9, sampler="euler", parameterization="flow",
                   update="official", borders="rotating"),
        GuidanceOptions(num_guidance=4, positions="official"),
        ReflectionOptions(threshold=0.01, num_eval=7, num_ref=14, num_candidates=3, num_guide=14, phase="build",
                          judge_from_tail=10, candidate_guidance=False),
    ),
    "wan21-paper": (
        MigaConfig(window_length=21, zigzag_width=7, unified_steps=9, sampler="euler", parameterization="flow"),
        GuidanceOptions(num_guidance=4),
        ReflectionOptions(threshold=0.01),
    ),
    "vc2": (
        MigaConfig(window_length=16, zigzag_width=4, unified_steps=9, sampler="euler", parameterization="eps"),
        GuidanceOptions(num_guidance=6),
        ReflectionOptions(threshold=0.01),
    ),
    # The authors' released Wan2.1 loop (REFERENCE.md Part A1; docs/official_equivalence.md): use it with the official
    # ladder (miga_core.ladder.official_flow_ladder(54)), CFG 5 and an initial clip; its last 21 latents are trimmed.
    "wan21-official": (
        MigaConfig(window_length=21, window_stride=10, zigzag_width=7, unified_steps=10, sampler="uni_pc", parameterization="flow",
                   update="official", borders="rotating", build_length="official", fresh_content="clip_last",
                   build_reads="gauss_seidel", stage2_history="reset", refine_steps=10, trim_tail=21,
                   official_stage2_mislabel=True),
        GuidanceOptions(num_guidance=4, positions="official"),
        ReflectionOptions(threshold=0.01, num_eval=7, num_ref=14, num_candidates=3, num_guide=14, phase="build",
                          judge_from_tail=10, candidate_guidance=False),
    ),
    # The authors' released VideoCrafter2 loop (REFERENCE.md Part A2; docs/official_equivalence.md): use it with
    # miga_core.ladder.official_ddim_ladder(64) (63 steps: the release never takes DDIM's identity last step), CFG 12,
    # the empty prompt as uncond and an initial clip; self-reflection off as released; no trim.
    "vc2-official": (
        MigaConfig(window_length=16, window_stride=8, zigzag_width=4, unified_steps=9, sampler="euler_ancestral", eta=1.0,
                   parameterization="eps", update="official", borders="rotating", build_length="official",
                   fresh_content="clip_last", build_reads="gauss_seidel", stage2_history="reset", refine_steps=10, trim_tail=0,
                   zigzag_reads="gauss_seidel", stage1_content="noise", tail_noise="ddpm", stage1_append="every_pass",
                   refine_renoise="vp"),
        GuidanceOptions(num_guidance=4, positions="official"),
        None,
    ),
    # FIFO-Diffusion's released VC2 loop (fifo_ddim_sampling, lookahead on, DDIM eta 1; docs/official_equivalence.md
    # "FIFO-Diffusion"): use it with miga_core.ladder.ddim_ladder(64) (T = f0 * 4 partitions), CFG 12, fps 8. No
    # guidance, no self-reflection (FIFO has neither). "vc2-fifo" keeps the official conventions (identity last step,
    # DDPM-space tail noise); "vc2-fifo-x0" is the same loop with the exact sampler's (last step to x0, sigma_T tail noise).
    "vc2-fifo": (
        MigaConfig(window_length=16, window_stride=8, zigzag_width=1, unified_steps=0, mode="fifo", sampler="euler_ancestral",
                   eta=1.0, parameterization="eps", final_step="identity", tail_noise="ddpm"),
        GuidanceOptions(num_guidance=0),
        None,
    ),
    "vc2-fifo-x0": (
        MigaConfig(window_length=16, window_stride=8, zigzag_width=1, unified_steps=0, mode="fifo", sampler="euler_ancestral",
                   eta=1.0, parameterization="eps"),
        GuidanceOptions(num_guidance=0),
        None,
    ),
}


def preset(name: str) -> tuple[MigaConfig, GuidanceOptions, ReflectionOptions | None]:
    """Options for a model: ``"wan21"`` (the nodes' default, T=54: the paper profile with the four official choices that
    measured better on the toy benchmark, see :data:`PRESETS`), ``"wan21-paper"`` (the paper's, T=54), ``"vc2"`` (paper,
    T=64, CFG 12) or ``"wan21-official"``
    (the authors' released Wan2.1 loop [D7]: T=54 on :func:`~miga_core.ladder.official_flow_ladder`, CFG 5),
    ``"vc2-official"`` (the released VC2 loop, REFERENCE Part A2: :func:`~miga_core.ladder.official_ddim_ladder`, CFG 12;
    self-reflection None, as released), ``"vc2-fifo"`` (FIFO-Diffusion's released VC2 loop, its DDIM conventions) or
    ``"vc2-fifo-x0"`` (the same loop ending at x0): T=64 on :func:`~miga_core.ladder.ddim_ladder`, CFG 12; their
    self-reflection options are None.

    Raises:
        InvalidConfigError: for an unknown name.
    """
    if name not in PRESETS:
        raise InvalidConfigError(bad_value("preset", name, f"one of {sorted(PRESETS)}", "pick a listed preset"))
    return PRESETS[name]

