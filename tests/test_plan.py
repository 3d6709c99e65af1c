"""The run plan: one validation, exact planned calls per stage, progress that never goes back [D1-D6]."""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter

import pytest
import torch

from miga_core import (
    GuidanceOptions,
    InvalidConfigError,
    MigaConfig,
    PromptSchedule,
    PromptScheduleError,
    ReflectionOptions,
    generate,
    plan_run,
    preset,
)
from miga_core.reflection import SCORE_HISTORY
from tests.helpers import ToyDenoiser

SHAPE = (1, 2, 3, 3)

OFFICIAL = MigaConfig(window_length=8, window_stride=3, zigzag_width=2, unified_steps=3, sampler="uni_pc", update="official",
                      borders="rotating", build_length="official", fresh_content="clip_last", build_reads="gauss_seidel",
                      stage2_history="reset", refine_steps=3, trim_tail=8, official_stage2_mislabel=True)
OFFICIAL_REFLECTION = ReflectionOptions(threshold=-1.0, num_eval=2, num_ref=4, num_candidates=2, num_guide=4, phase="build",
                                        judge_from_tail=2, candidate_guidance=False)

RUNS = {
    # name: (config, T, N, guidance, reflection, initial clip)
    "miga": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=3), 16, 23, None, None, False),
    "miga short group": (MigaConfig(window_length=7, zigzag_width=3, unified_steps=1), 12, 11, None, None, False),
    "miga guided": (MigaConfig(window_length=8, zigzag_width=4, unified_steps=2), 14, 17, 2, None, False),
    "miga from a clip": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=3), 16, 9, None, None, True),
    "miga window_batch 3": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=3, window_batch=3), 16, 23, None, None, False),
    "miga former": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=0, update="former"), 12, 10, None, None, False),
    "fifo": (MigaConfig(window_length=8, zigzag_width=1, unified_steps=0, mode="fifo"), 16, 12, None, None, False),
    "fifo former from a clip": (MigaConfig(window_length=6, zigzag_width=1, unified_steps=0, mode="fifo", update="former"),
                                9, 7, None, None, True),
    "unified only": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=10), 10, 13, None, None, False),
    "miga reflecting": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=3), 20, 24, None,
                        ReflectionOptions(threshold=-1.0, num_candidates=2), False),
    # [D7] the released code's options (REFERENCE.md): rotating borders alone; the whole official profile, steady and draining
    "miga rotating borders": (MigaConfig(window_length=8, zigzag_width=2, unified_steps=3, borders="rotating"), 16, 23, 2, None, False),
    "official steady": (OFFICIAL, 20, 15, GuidanceOptions(2, positions="official"), OFFICIAL_REFLECTION, False),
    "official draining": (OFFICIAL, 20, 9, GuidanceOptions(2, positions="official"), OFFICIAL_REFLECTION, True),
}


def _run(name, callback):
    cfg, T, N, m, reflection, has_clip = RUNS[name]
    sigmas = torch.linspace(1, 0, T + 1)
    clip = torch.randn(1, 2, cfg.window_length, 3, 3, generator=torch.Generator().manual_seed(5)) if has_clip else None
    guidance = m if isinstance(m, GuidanceOptions) else (GuidanceOptions(m) if m else None)
    plan = plan_run(cfg, T, N, guidance=guidance, reflection=reflection, has_initial_clip=has_clip)
    result = generate(ToyDenoiser(), sigmas, N, cfg, latent_shape=SHAPE, initial_clip=clip, guidance=guidance,
                      reflection=reflection, callback=callback)
    return plan, result


@pytest.mark.parametrize("name", list(RUNS))
def test_the_plan_counts_every_stage_windows_exactly(name):
    infos = []
    plan, result = _run(name, infos.append)
    planned = [i for i in infos if i.stage != "reflection"]
    assert Counter(i.stage for i in planned) == Counter({k: v for k, v in plan.calls.items() if v})
    assert [i.window for i in planned] == list(range(1, plan.total_calls + 1))
    assert {i.total_windows for i in infos} == {plan.total_calls}
    assert result.num_windows == len(infos) and result.latents.shape[2] == plan.num_frames


def test_the_variant_comes_from_the_options():
    assert [_run(n, None)[0].variant for n in ("miga", "fifo", "unified only")] == ["miga", "fifo", "unified_only"]


@pytest.mark.parametrize("name", ["miga window_batch 3", "miga"])
def test_model_calls_count_denoiser_invocations_not_windows(name):
    _, result = _run(name, None)
    batch = RUNS[name][0].window_batch
    if batch == 1:
        assert result.model_calls == result.num_windows
    else:
        assert result.num_windows / batch <= result.model_calls < result.num_windows


def test_progress_with_a_searching_reflection_never_goes_back_and_keeps_its_total():
    infos = []
    plan, result = _run("miga reflecting", infos.append)
    assert result.reflection.n_eval > 0 and any(i.stage == "reflection" for i in infos)  # the search ran
    windows = [i.window for i in infos]
    assert all(b - a in (0, 1) for a, b in zip(windows, windows[1:]))  # search windows hold the bar, never move it back
    assert windows[-1] == plan.total_calls and {i.total_windows for i in infos} == {plan.total_calls}
    search = [i.search_windows for i in infos]
    assert search[-1] == sum(1 for i in infos if i.stage == "reflection") > 0
    assert infos[0].eta_seconds is None and all(i.eta_seconds is not None and i.eta_seconds >= 0 for i in infos[1:])
    assert infos[-1].eta_seconds == 0  # nothing planned is left
    # every search costs the plan's search_windows; one check per stage-1 pass
    assert search[-1] == plan.search_windows * result.reflection.n_eval and plan.num_checks == result.reflection.n_all
    # the live counters the node shows end at the report's
    assert (infos[-1].reflection_checks, infos[-1].reflection_corrections) == (result.reflection.n_all, result.reflection.n_corr)
    assert result.reflection.n_corr > 0 and infos[0].reflection_corrections == 0


def test_reflection_keeps_a_bounded_score_history():
    cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=0)
    result = generate(ToyDenoiser(), torch.linspace(1, 0, 13), 2 * SCORE_HISTORY + 10, cfg, latent_shape=(1, 1, 2, 2),
                      reflection=ReflectionOptions(threshold=1e9))
    assert result.reflection.n_all == (2 * SCORE_HISTORY + 10) // 2  # one check per stage-1 pass (2 latents leave per pass)
    assert len(result.reflection.scores) == SCORE_HISTORY


@pytest.mark.parametrize("window_length", [4, 7, 8])
def test_the_window_length_message_names_the_value_that_works(window_length):
    config, guidance, _ = preset("wan21")
    with pytest.raises(InvalidConfigError, match="raise window_length to 9") as info:
        plan_run(config.with_(window_length=window_length), 54, 30, guidance=guidance)
    assert f"window_length={window_length}" in str(info.value)
    plan_run(config.with_(window_length=9, zigzag_width=3), 54, 30, guidance=guidance)  # 9 works as the message says


def test_a_keyframe_past_the_end_of_the_video_is_refused_naming_it_and_the_length():
    prompts = PromptSchedule.from_keyframes('{"0": "a fox", "240": "a lake", "480": "a night"}', latent_rule="wan21")
    config, _, _ = preset("wan21")
    with pytest.raises(PromptScheduleError) as info:
        plan_run(config, 54, 22, prompts=prompts)  # 85 pixel frames
    message = str(info.value)
    assert "keyframe=240" in message and "85 pixel frames (22 latents)" in message and "at least 241 frames" in message
    with pytest.raises(PromptScheduleError, match="keyframe=480"):
        plan_run(config, 54, 120, prompts=prompts)  # 477 frames: latent 120 holds frame 480, one past the end
    plan_run(config, 54, 121, prompts=prompts)  # 481 frames: 480 is the last frame


def test_unified_steps_that_do_not_fit_name_a_value_that_does():
    config, _, _ = preset("wan21")
    with pytest.raises(InvalidConfigError) as info:
        plan_run(config, 1, 30)  # n_zig = ceil(21/7) = 3: two stages need T >= 4
    assert "unified_steps=9" in str(info.value) and "use at least 4 steps, or unified_steps=1" in str(info.value)
    with pytest.raises(InvalidConfigError, match="Fix: use 6 "):
        plan_run(config, 10, 30)  # 0..T-n_zig-1 = 0..6


@pytest.mark.parametrize("T, width", [(4, 1), (4, 3), (8, 1), (2, 7)])
def test_a_queue_too_deep_for_few_steps_names_a_zigzag_width_that_fits(T, width):
    """Few-step runs (T=4/8, distilled LoRAs): the refusal names the smallest zigzag_width whose two stages fit, and it does."""
    config = MigaConfig(window_length=21, zigzag_width=width, unified_steps=0)
    with pytest.raises(InvalidConfigError) as info:
        plan_run(config, T, 41)
    fit = math.ceil(21 / (T - 1))
    assert f"zigzag_width >= {fit} " in str(info.value)
    plan_run(config.with_(zigzag_width=fit), T, 41)  # the named width is accepted
    with pytest.raises(InvalidConfigError):
        plan_run(config.with_(zigzag_width=fit - 1), T, 41)  # and it is the smallest


def test_reflection_added_to_a_plan_is_validated_and_changes_no_planned_call():
    config, guidance, reflection = preset("wan21-paper")
    plan = plan_run(config, 54, 121, guidance=guidance)
    with_reflection = plan.with_reflection(reflection)
    assert with_reflection.reflection == reflection and with_reflection.calls == plan.calls
    assert with_reflection.judge_level is not None and plan.judge_level is None


# --- the presets of issue 9: wan21 = the paper + the official choices that measured better alone; wan21-paper = the paper

def test_wan21_is_the_paper_profile_with_the_four_measured_official_choices_and_nothing_else():
    config, guidance, reflection = preset("wan21")
    paper_config, paper_guidance, paper_reflection = preset("wan21-paper")
    official_config, official_guidance, official_reflection = preset("wan21-official")
    assert (paper_config.update, paper_config.borders, paper_guidance.positions, paper_reflection.phase) == \
        ("lookahead", "fixed", "even", "stage1")
    # the paper's numbers (docs/algorithm.md "Paper defaults") stay one keyword away
    assert (paper_config.window_length, paper_config.zigzag_width, paper_config.unified_steps, paper_guidance.num_guidance,
            paper_reflection) == (21, 7, 9, 4, ReflectionOptions(threshold=0.01))
    assert paper_config == MigaConfig(window_length=21, zigzag_width=7, unified_steps=9)
    # adopted: borders, update rule, guidance positions, the self-reflection geometry (threshold stays 0.01)
    assert config == paper_config.with_(update=official_config.update, borders=official_config.borders)
    assert (config.update, config.borders) == ("official", "rotating")
    assert guidance == GuidanceOptions(num_guidance=4, positions=official_guidance.positions) and guidance.positions == "official"
    assert reflection == official_reflection == ReflectionOptions(
        threshold=0.01, num_eval=7, num_ref=14, num_candidates=3, num_guide=14, phase="build", judge_from_tail=10,
        candidate_guidance=False)
    # not adopted: build length, tail content, Gauss-Seidel reads, history reset, refinement, trim, uni_pc, the mislabel
    assert (config.build_length, config.fresh_content, config.build_reads, config.stage2_history, config.refine_steps,
            config.trim_tail, config.sampler, config.official_stage2_mislabel, config.unified_steps) == \
        ("paper", "noise", "jacobi", "keep", 0, 0, "euler", False, 9)


def test_the_vc2_and_official_presets_are_unchanged():
    assert preset("vc2") == (MigaConfig(window_length=16, zigzag_width=4, unified_steps=9, parameterization="eps"),
                             GuidanceOptions(num_guidance=6), ReflectionOptions(threshold=0.01))
    config, guidance, _ = preset("wan21-official")
    assert (config.build_length, config.sampler, config.refine_steps, config.trim_tail, config.unified_steps) == \
        ("official", "uni_pc", 10, 21, 10)


@pytest.mark.parametrize("pixel_frames", [81, 85, 161, 481, 1001, 2001, 4801, 9997, 10_001])
@pytest.mark.parametrize("clip", [False, True])
def test_the_wan21_preset_plans_typical_videos_at_54_steps_with_and_without_a_clip(pixel_frames, clip):
    """The node's defaults must be accepted for every typical length (issue 9), and do what they say: build-phase checks,
    rotating borders (a pass's windows depend on its index) and fewer windows than the paper's lookahead."""
    from miga_core.frames import num_latent_frames

    config, guidance, reflection = preset("wan21")
    N = num_latent_frames(pixel_frames, "wan21")
    plan = plan_run(config, 54, N, guidance=guidance, reflection=reflection, has_initial_clip=clip)
    assert plan.num_frames == N and plan.judge_level is None and plan.num_guide == 14
    assert plan.check_passes == tuple(range(9, 41))  # after every build pass whose head had > 10 + ceil(14/7) = 12 steps
    assert plan.calls["initial_clip"] == (0 if clip else 54) and plan.calls["refine"] == 0
    paper_config, paper_guidance, _ = preset("wan21-paper")
    paper = plan_run(paper_config, 54, N, guidance=paper_guidance, has_initial_clip=clip)
    assert plan.calls["init"] < paper.calls["init"]  # the official update rule: fewer windows


def test_build_phase_reflection_that_could_never_check_is_refused_naming_the_largest_judge_from_tail():
    config = MigaConfig(window_length=16, zigzag_width=4, unified_steps=6)
    base = ReflectionOptions(threshold=0.01, num_eval=4, num_ref=8, num_guide=8, num_candidates=3, phase="build",
                             candidate_guidance=False)
    with pytest.raises(InvalidConfigError, match=r"judge_from_tail=16.*at most (\d+)") as refused:
        plan_run(config, 24, 256, reflection=dataclasses.replace(base, judge_from_tail=16))
    most = int(re.search(r"at most (\d+)", str(refused.value)).group(1))
    plan = plan_run(config, 24, 256, reflection=dataclasses.replace(base, judge_from_tail=most))
    assert len(plan.check_passes) >= 1  # the largest value the message names still checks
    with pytest.raises(InvalidConfigError):
        plan_run(config, 24, 256, reflection=dataclasses.replace(base, judge_from_tail=most + 1))


def test_with_reflection_refuses_phase_build_for_a_queue_already_built():
    plan = plan_run(MigaConfig(window_length=16, zigzag_width=4, unified_steps=6), 24, 64)
    build = ReflectionOptions(threshold=0.01, num_eval=4, num_ref=8, num_guide=8, num_candidates=3, phase="build",
                              judge_from_tail=4, candidate_guidance=False)
    plan_run(plan.config, 24, 64, reflection=build)  # before the queue is built, phase build is fine
    with pytest.raises(InvalidConfigError, match=r"phase='build'.*stage1"):
        plan.with_reflection(build)
    assert plan.with_reflection(dataclasses.replace(build, phase="stage1", judge_from_tail=None)).reflection.phase == "stage1"
