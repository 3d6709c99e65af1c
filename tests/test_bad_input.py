"""Bad input is refused early, loudly and without side effects (docs/style.md, "Errors").

Every refusal must be a :class:`~miga_core.MigaError` subclass that is also the builtin
``ValueError``/``TypeError`` (``FloatingPointError`` for a model that returns NaN/Inf), its
message must name the argument, the value, the allowed range and a ``Fix:``, it must come
before the first model call, and nothing the caller passed in may change.
"""

from __future__ import annotations

import math

import pytest
import torch

from miga_core import (
    DenoiserOutputShapeError,
    GuidanceOptions,
    InvalidConfigError,
    InvalidInitialClipError,
    InvalidLadderError,
    MigaConfig,
    MigaError,
    MigaTypeError,
    NonFiniteDenoiserOutputError,
    PromptSchedule,
    PromptScheduleError,
    ReflectionOptions,
    generate,
)
from tests.helpers import init_queue

T = 12  # steps of the default ladder
F0 = 4  # window_length
LZ = 2  # zigzag_width
N_ZIG = math.ceil(F0 / LZ)  # 2: valid unified_steps are 0..T-N_ZIG-1 = 0..9, or T = 12
SHAPE = (1, 2, 4, 4)  # (B, C, H, W)


class NeverCalled:
    """A denoiser that records every call and fails the test if it is ever called."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        raise AssertionError("the denoiser was called although the input is invalid")


def ladder(steps: int = T) -> torch.Tensor:
    return torch.linspace(1, 0, steps + 1)


def config(**changes: object) -> MigaConfig:
    base = dict(window_length=F0, zigzag_width=LZ, unified_steps=0)
    base.update(changes)
    return MigaConfig(**base)


def clip(frames: int = F0) -> torch.Tensor:
    return torch.randn((SHAPE[0], SHAPE[1], frames, SHAPE[2], SHAPE[3]), generator=torch.Generator().manual_seed(1))


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``torch.equal`` that treats NaN as equal to NaN (a ladder under test may hold NaN)."""
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.isnan(), b.isnan()) and torch.equal(
        a.nan_to_num(), b.nan_to_num())


def assert_house_message(err: BaseException, *parts: str) -> None:
    msg = str(err)
    for part in parts:
        assert part in msg, f"{part!r} missing from the message: {msg}"
    assert "Fix:" in msg, f"no 'Fix:' in the message: {msg}"


def assert_refused(call, denoiser: NeverCalled, error: type[BaseException], builtin: type[BaseException], *parts: str,
                   inputs: tuple[torch.Tensor, ...] = ()) -> BaseException:
    """Run ``call()``, expect ``error`` (a MigaError and ``builtin``) before any model call, inputs unchanged."""
    before = [t.clone() for t in inputs]
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, MigaError)
    assert isinstance(info.value, builtin)
    assert denoiser.calls == 0
    assert_house_message(info.value, *parts)
    for old, new in zip(before, inputs):
        assert same(old, new), "an input tensor was modified"
    return info.value


def run_generate(denoiser, sigmas=None, num_frames=6, cfg=None, **kw):
    return lambda: generate(denoiser, ladder() if sigmas is None else sigmas, num_frames, cfg or config(), **kw)


def run_initialize(denoiser, sigmas=None, num_frames=6, cfg=None, **kw):
    return lambda: init_queue(denoiser, ladder() if sigmas is None else sigmas, num_frames, cfg or config(), **kw)


ENTRY_POINTS = pytest.mark.parametrize("entry", [run_generate, run_initialize], ids=["generate", "initialize_queue"])


# ---------------------------------------------------------------- options ---------------------------------------------


@ENTRY_POINTS
@pytest.mark.parametrize("width", [0, -3])
def test_zigzag_width_below_one_is_refused_before_any_model_call(entry, width):
    d, sigmas = NeverCalled(), ladder()
    assert_refused(entry(d, sigmas, cfg=config(zigzag_width=width), latent_shape=SHAPE), d, InvalidConfigError, ValueError,
                   "zigzag_width", f"={width}", ">= 1", inputs=(sigmas,))


@ENTRY_POINTS
@pytest.mark.parametrize("u", [
    T - N_ZIG,  # 10: one past the two-stage range
    T - 1,  # 11
    T + 1,  # 13
    -1,
])
def test_unified_steps_outside_both_d4_ranges_is_refused_naming_both_ranges(entry, u):
    d, sigmas, initial = NeverCalled(), ladder(), clip()
    err = assert_refused(entry(d, sigmas, cfg=config(unified_steps=u), initial_clip=initial), d, InvalidConfigError, ValueError,
                         "unified_steps", f"={u}", inputs=(sigmas, initial))
    msg = str(err)
    assert f"0..{T - N_ZIG - 1}" in msg, msg  # the two-stage range
    assert f"T={T}" in msg, msg  # the unified-only value


@ENTRY_POINTS
def test_negative_unified_steps_is_refused_before_any_model_call(entry):
    d, sigmas = NeverCalled(), ladder()
    assert_refused(entry(d, sigmas, cfg=config(unified_steps=-1), latent_shape=SHAPE), d, InvalidConfigError, ValueError,
                   "unified_steps", "=-1", f"0..{T - N_ZIG - 1}", inputs=(sigmas,))


@pytest.mark.parametrize("u", [0, T - N_ZIG - 1, T])
def test_unified_steps_at_the_edges_of_the_d4_ranges_is_accepted(u):
    result = generate(lambda x, sigma, prompt: x * 0.5, ladder(), 6, config(unified_steps=u), latent_shape=SHAPE)
    assert result.latents.shape == (1, 2, 6, 4, 4)
    assert bool(torch.isfinite(result.latents).all())


@ENTRY_POINTS
@pytest.mark.parametrize("num_guidance, window_stride", [(2, None), (0, 4), (1, 3)])
def test_window_too_short_for_stride_and_guidance_is_refused_before_any_model_call(entry, num_guidance, window_stride):
    d, sigmas = NeverCalled(), ladder()
    need = (window_stride or F0 // 2) + num_guidance + 1
    assert need > F0
    assert_refused(entry(d, sigmas, cfg=config(window_stride=window_stride), latent_shape=SHAPE,
                         guidance=GuidanceOptions(num_guidance=num_guidance)),
                   d, InvalidConfigError, ValueError, "window_length", f"={F0}", "window_stride + num_guidance + 1", str(need),
                   inputs=(sigmas,))


def test_fifo_mode_with_long_range_guidance_is_refused_before_any_model_call():
    d, sigmas = NeverCalled(), ladder()
    fifo = config(mode="fifo", zigzag_width=1, unified_steps=0)
    assert_refused(run_generate(d, sigmas, cfg=fifo, latent_shape=SHAPE, guidance=GuidanceOptions(num_guidance=1)),
                   d, InvalidConfigError, ValueError, "mode", "'fifo'", "guidance", inputs=(sigmas,))
    assert_refused(run_initialize(d, sigmas, cfg=fifo, latent_shape=SHAPE, guidance=GuidanceOptions(num_guidance=1)),
                   d, InvalidConfigError, ValueError, "mode", "'fifo'", "guidance", inputs=(sigmas,))


def test_fifo_mode_with_self_reflection_is_refused_before_any_model_call():
    d, sigmas = NeverCalled(), ladder()
    fifo = config(mode="fifo", zigzag_width=1, unified_steps=0)
    assert_refused(run_generate(d, sigmas, cfg=fifo, latent_shape=SHAPE, reflection=ReflectionOptions()),
                   d, InvalidConfigError, ValueError, "mode", "'fifo'", "reflection", inputs=(sigmas,))


@ENTRY_POINTS
@pytest.mark.parametrize("changes, argument, value", [
    (dict(zigzag_width=2), "zigzag_width", "=2"),
    (dict(zigzag_width=1, unified_steps=3), "unified_steps", "=3"),
])
def test_fifo_mode_needs_zigzag_width_one_and_no_unified_stage(entry, changes, argument, value):
    d, sigmas = NeverCalled(), ladder()
    assert_refused(entry(d, sigmas, cfg=config(mode="fifo", **changes), latent_shape=SHAPE), d, InvalidConfigError, ValueError,
                   argument, value, "mode 'fifo'", inputs=(sigmas,))


@ENTRY_POINTS
def test_fifo_mode_with_fewer_steps_than_window_length_is_refused(entry):
    d, sigmas = NeverCalled(), ladder(F0 - 1)
    assert_refused(entry(d, sigmas, cfg=config(mode="fifo", zigzag_width=1), latent_shape=SHAPE), d, InvalidConfigError,
                   ValueError, "steps", f"={F0 - 1}", "window_length", inputs=(sigmas,))


@ENTRY_POINTS
def test_euler_ancestral_with_a_flow_model_is_refused_before_any_model_call(entry):
    d, sigmas = NeverCalled(), ladder()
    assert_refused(entry(d, sigmas, cfg=config(sampler="euler_ancestral", parameterization="flow"), latent_shape=SHAPE),
                   d, InvalidConfigError, ValueError, "sampler", "'euler_ancestral'", "flow", inputs=(sigmas,))


@pytest.mark.parametrize("options, names", [
    (ReflectionOptions(num_ref=30), "num_ref=30"),  # more reference latents than precede the judge
    (ReflectionOptions(judge_position=4, num_ref=8), "num_ref=8"),  # the judge sits before 8 latents exist
    (ReflectionOptions(num_eval=7), "num_eval"),  # the evaluated latents run past the tail
    (ReflectionOptions(judge_position=3), "judge_position=3"),  # not a multiple of zigzag_width
    (ReflectionOptions(judge_position=24), "judge_position=24"),  # beyond the queue (L = T * L_zig = 24)
])
def test_reflection_that_does_not_fit_the_queue_is_refused_before_any_model_call(options, names):
    d, sigmas, initial = NeverCalled(), ladder(), clip()
    assert_refused(run_generate(d, sigmas, cfg=config(unified_steps=0), initial_clip=initial, reflection=options),
                   d, InvalidConfigError, ValueError, "judge_position", names, inputs=(sigmas, initial))


def test_reflection_added_after_initialization_that_does_not_fit_is_refused_before_any_model_call():
    """With an initial clip and u = T - n_zig - 1 the init makes no model call; the queue is then
    levels 10..12 only (6 latents), too short for the default judge, 8 references and 4 evaluated."""
    d, sigmas, initial = NeverCalled(), ladder(), clip()
    state = init_queue(d, sigmas, 6, config(unified_steps=T - N_ZIG - 1), initial_clip=initial)
    assert d.calls == 0
    queue_before = state.queue.x.clone()
    assert_refused(lambda: state.plan.with_reflection(ReflectionOptions()), d, InvalidConfigError, ValueError,
                   "judge_position", "num_ref=8", inputs=(sigmas, initial))
    assert torch.equal(state.queue.x, queue_before)


# ---------------------------------------------------------------- ladder ----------------------------------------------


BAD_LADDERS = {
    "ascending": (torch.linspace(0, 1, T + 1), "strictly descending"),
    "a repeated value": (torch.tensor([1.0, 0.5, 0.5, 0.0]), "strictly descending"),
    "one value": (torch.tensor([1.0]), "at least 2 values"),
    "no value": (torch.tensor([]), "at least 2 values"),
    "NaN": (torch.tensor([1.0, float("nan"), 0.0]), "finite"),
    "Inf": (torch.tensor([float("inf"), 0.5, 0.0]), "finite"),
    "2-D": (torch.linspace(1, 0, T + 1).view(1, -1), "1-D"),
}


@ENTRY_POINTS
@pytest.mark.parametrize("name", list(BAD_LADDERS))
def test_a_bad_ladder_is_refused_before_any_model_call(entry, name):
    sigmas, allowed = BAD_LADDERS[name]
    d = NeverCalled()
    assert_refused(entry(d, sigmas, latent_shape=SHAPE), d, InvalidLadderError, ValueError, "sigmas", allowed, inputs=(sigmas,))


def test_a_bad_ladder_message_shows_the_offending_values():
    d = NeverCalled()
    with pytest.raises(InvalidLadderError) as info:
        generate(d, torch.tensor([1.0, 0.25, 0.5, 0.0]), 6, config(), latent_shape=SHAPE)
    assert "sigmas[1]=0.25 <= sigmas[2]=0.5" in str(info.value)
    assert d.calls == 0


def test_a_nan_ladder_given_as_a_list_is_refused_and_left_alone():
    d, sigmas = NeverCalled(), [1.0, 0.5, float("nan"), 0.0]
    with pytest.raises(InvalidLadderError) as info:
        generate(d, sigmas, 6, config(), latent_shape=SHAPE)
    assert_house_message(info.value, "sigmas", "nan", "finite")
    assert d.calls == 0 and sigmas[:2] == [1.0, 0.5] and math.isnan(sigmas[2]) and len(sigmas) == 4


# ---------------------------------------------------------------- num_frames and the initial clip -----------------


@ENTRY_POINTS
@pytest.mark.parametrize("num_frames", [0, -1])
def test_num_frames_below_one_is_refused_before_any_model_call(entry, num_frames):
    d, sigmas = NeverCalled(), ladder()
    assert_refused(entry(d, sigmas, num_frames, latent_shape=SHAPE), d, InvalidConfigError, ValueError,
                   "num_frames", f"={num_frames}", ">= 1", inputs=(sigmas,))


@ENTRY_POINTS
@pytest.mark.parametrize("num_frames", [2.5, "8", True])
def test_num_frames_that_is_not_an_int_is_refused_before_any_model_call(entry, num_frames):
    d, sigmas = NeverCalled(), ladder()
    assert_refused(entry(d, sigmas, num_frames, latent_shape=SHAPE), d, MigaTypeError, TypeError,
                   "num_frames", repr(num_frames), "int", inputs=(sigmas,))


@ENTRY_POINTS
@pytest.mark.parametrize("frames", [F0 - 1, F0 + 1])
def test_an_initial_clip_of_the_wrong_length_is_refused_before_any_model_call(entry, frames):
    d, sigmas, initial = NeverCalled(), ladder(), clip(frames)
    assert_refused(entry(d, sigmas, initial_clip=initial), d, InvalidInitialClipError, ValueError,
                   "initial_clip", f"={frames}", f"window_length={F0}", inputs=(sigmas, initial))


@ENTRY_POINTS
def test_a_four_dimensional_initial_clip_is_refused_before_any_model_call(entry):
    d, sigmas, initial = NeverCalled(), ladder(), clip()[0]
    assert_refused(entry(d, sigmas, initial_clip=initial), d, InvalidInitialClipError, ValueError,
                   "initial_clip", str(tuple(initial.shape)), "5 dims", inputs=(sigmas, initial))


@ENTRY_POINTS
def test_an_initial_clip_with_nan_is_refused_before_any_model_call(entry):
    d, sigmas, initial = NeverCalled(), ladder(), clip()
    initial[0, 0, 1, 2, 3] = float("nan")
    assert_refused(entry(d, sigmas, initial_clip=initial), d, InvalidInitialClipError, ValueError,
                   "initial_clip", "finite", inputs=(sigmas, initial))


@ENTRY_POINTS
def test_an_initial_clip_with_unified_stage_only_is_refused_before_any_model_call(entry):
    d, sigmas, initial = NeverCalled(), ladder(), clip()
    assert_refused(entry(d, sigmas, cfg=config(unified_steps=T), initial_clip=initial), d, InvalidInitialClipError,
                   ValueError, "initial_clip", "unified_steps", inputs=(sigmas, initial))


@ENTRY_POINTS
@pytest.mark.parametrize("latent_shape", [None, (1, 2, 4), (1, 0, 4, 4)])
def test_a_missing_or_bad_latent_shape_without_a_clip_is_refused_before_any_model_call(entry, latent_shape):
    d, sigmas = NeverCalled(), ladder()
    assert_refused(entry(d, sigmas, latent_shape=latent_shape), d, MigaTypeError, TypeError,
                   "latent_shape", repr(latent_shape), "(B, C, H, W)", inputs=(sigmas,))


# ---------------------------------------------------------------- prompt schedules [D6] ---------------------------


BAD_KEYFRAMES = {
    "malformed JSON": ('{"0": "a", ', "wan21", None, ["keyframes", '{"0": "a", ', "valid JSON"]),
    "a JSON array": ('["a"]', "wan21", None, ["keyframes", '["a"]', "a JSON object"]),
    "a JSON number": ("3", "wan21", None, ["keyframes", "3", "a JSON object"]),
    "an empty object": ("{}", "wan21", None, ["keyframes", "{}", "at least one keyframe"]),
    "a non-integer key": ('{"0": "a", "1.5": "b"}', "wan21", None, ["keyframe", "'1.5'", "integer"]),
    "a negative key": ('{"0": "a", "-4": "b"}', "wan21", None, ["keyframe", "'-4'", "non-negative integer"]),
    "non-increasing keys": ('{"0": "a", "40": "b", "20": "c"}', "wan21", None, ["keyframe", "=20", "strictly increasing", "40"]),
    "a repeated key": ('{"0": "a", "8": "b", "8": "c"}', "wan21", None, ["keyframe", "=8", "strictly increasing"]),
    "no keyframe 0": ('{"4": "a", "8": "b"}', "wan21", None, ["first keyframe", "=4", "0"]),
    "two keyframes in one Wan latent": ('{"0": "a", "1": "b", "2": "c"}', "wan21", None, ["keyframe", "=2", "latent 1"]),
    "an empty prompt": ('{"0": "a", "8": "  "}', "vc2", None, ["keyframes[8]", "'  '", "non-empty"]),
    "an unknown prompt index": ('{"0": 0, "8": 5}', "vc2", 2, ["prompt index", "=5", "0..1"]),
    "indices without num_prompts": ('{"0": 0, "8": 1}', "vc2", None, ["num_prompts", "None", "number of prompts"]),
    "mixed texts and indices": ('{"0": "a", "8": 1}', "vc2", 2, ["keyframes", "all prompt texts or all prompt indices"]),
}


@pytest.mark.parametrize("name", list(BAD_KEYFRAMES))
def test_a_bad_keyframe_schedule_is_refused(name):
    keyframes, rule, num_prompts, parts = BAD_KEYFRAMES[name]
    with pytest.raises(PromptScheduleError) as info:
        PromptSchedule.from_keyframes(keyframes, latent_rule=rule, num_prompts=num_prompts)
    assert isinstance(info.value, MigaError) and isinstance(info.value, ValueError)
    assert_house_message(info.value, *parts)


def test_an_unknown_latent_rule_is_refused_by_the_one_frame_rule():
    with pytest.raises(InvalidConfigError) as info:
        PromptSchedule.from_keyframes('{"0": "a", "8": "b"}', latent_rule="wan")
    assert all(part in str(info.value) for part in ["latent_rule", "'wan'", "('wan21', 'vc2')"])


def test_a_keyframe_mapping_is_refused_without_being_modified():
    keyframes = {"0": "a", "40": "b", "20": "c"}
    snapshot = dict(keyframes)
    with pytest.raises(PromptScheduleError) as info:
        PromptSchedule.from_keyframes(keyframes, latent_rule="wan21")
    assert_house_message(info.value, "keyframe", "=20", "strictly increasing")
    assert keyframes == snapshot and list(keyframes) == list(snapshot)


def test_a_json_array_of_pairs_is_refused_as_not_an_object():
    with pytest.raises(PromptScheduleError, match="a JSON object"):
        PromptSchedule.from_keyframes('[["0", "a cat"], ["40", "a dog"]]', latent_rule="wan21")


def test_a_superscript_digit_key_is_refused_with_a_prompt_schedule_error():
    with pytest.raises(PromptScheduleError, match="keyframe"):
        PromptSchedule.from_keyframes('{"0": "a", "²": "b"}', latent_rule="vc2")


@pytest.mark.parametrize("kwargs, parts", [
    (dict(starts=(0, 5), prompt_indices=(0, 3), num_prompts=2), ["prompt index", "=3", "0..1", "num_prompts=2"]),
    (dict(starts=(0, 5), prompt_indices=(0, -1), num_prompts=2), ["prompt index", "=-1", "0..1"]),
    (dict(starts=(1, 5), prompt_indices=(0, 1), num_prompts=2), ["starts", "(1, 5)", "starting at 0"]),
    (dict(starts=(0, 5, 5), prompt_indices=(0, 1, 0), num_prompts=2), ["starts", "(0, 5, 5)", "strictly increasing"]),
    (dict(starts=(0, 5), prompt_indices=(0,), num_prompts=2), ["prompt_indices", "(0,)", "one per segment"]),
    (dict(starts=(0,), prompt_indices=(0,), num_prompts=0), ["num_prompts", "=0", ">= 1"]),
    (dict(starts=(0, 4, 6), prompt_indices=(0, 1, 0), num_prompts=2, blend_latents=3), ["blend_latents", "=3", "0..2"]),
])
def test_an_inconsistent_prompt_schedule_is_refused(kwargs, parts):
    with pytest.raises(PromptScheduleError) as info:
        PromptSchedule(**kwargs)
    assert isinstance(info.value, ValueError)
    assert_house_message(info.value, *parts)


@pytest.mark.parametrize("num_prompts, per_prompt, parts", [
    (2, 0, ["latents_per_prompt", "=0", ">= 1"]),
    (0, 4, ["num_prompts", "=0", ">= 1"]),
    (2, 2.5, ["latents_per_prompt", "=2.5", "integer"]),
])
def test_bad_equal_segments_are_refused(num_prompts, per_prompt, parts):
    with pytest.raises(PromptScheduleError) as info:
        PromptSchedule.equal_segments(num_prompts, per_prompt)
    assert_house_message(info.value, *parts)


# ---------------------------------------------------------------- a misbehaving denoiser ------------------------


class PoisonAt:
    """``x * 0.5``, except that one frame of one call is set to ``value`` (NaN or Inf)."""

    def __init__(self, value: float, *, call: int | None = None, when_last_sigma: float | None = None) -> None:
        self.value, self.call, self.when_last_sigma, self.calls = value, call, when_last_sigma, 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = x * 0.5
        hit = self.calls == self.call if self.call is not None else bool(sigma[0, -1] == self.when_last_sigma)
        if hit:
            out[:, :, -1, 1, 2] = self.value
        return out


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_denoiser_output_names_the_unified_window_and_the_latent(value):
    """Unified stage only (u = T), N = 8, f0 = 4, s = 2, no history: pass 1 has regions [0,2), [2,4),
    [4,6), [6,8) with lookahead local parts 0..3, 0..3, 2..5, 4..7. The 3rd call's last frame is latent 5."""
    d, sigmas = PoisonAt(value, call=3), ladder()
    with pytest.raises(NonFiniteDenoiserOutputError) as info:
        generate(d, sigmas, 8, config(unified_steps=T), latent_shape=SHAPE)
    assert isinstance(info.value, MigaError) and isinstance(info.value, FloatingPointError)
    assert_house_message(info.value, "'unified'", "queue positions 4..5", "absolute indices [5]")
    assert torch.equal(sigmas, ladder())


def test_non_finite_denoiser_output_names_the_zigzag_window_and_the_latent():
    """Initial clip given and u = T - n_zig - 1 = 9: no init pass, the queue is latents 0..5 at levels
    10, 10, 11, 11, 12, 12 (history empty). The first window whose last frame is at level T (sigma 1.0) is
    the 3rd of the first zigzag pass: region [4, 6), local part 2..5, last frame = latent 5."""
    d, sigmas, initial = PoisonAt(float("nan"), when_last_sigma=1.0), ladder(), clip()
    before = initial.clone()
    with pytest.raises(NonFiniteDenoiserOutputError) as info:
        generate(d, sigmas, 8, config(unified_steps=T - N_ZIG - 1), initial_clip=initial)
    assert d.calls == 3
    assert_house_message(info.value, "'zigzag'", "queue positions 4..5", "absolute indices [5]")
    assert torch.equal(initial, before) and torch.equal(sigmas, ladder())


def test_non_finite_output_in_several_frames_names_every_bad_latent():
    """Same unified-only geometry; NaN in frames 1 and 3 of the 4th call (local part 4..7) -> latents 5 and 7."""

    def d(x, sigma, prompt, calls=[0]):
        calls[0] += 1
        out = x * 0.5
        if calls[0] == 4:
            out[:, 1, 1] = float("nan")
            out[:, 0, 3, 0, 0] = float("nan")
        return out

    with pytest.raises(NonFiniteDenoiserOutputError) as info:
        generate(d, ladder(), 8, config(unified_steps=T), latent_shape=SHAPE)
    assert "absolute indices [5, 7]" in str(info.value)


@pytest.mark.parametrize("bad", [
    lambda x: x[:, :, :-1],  # one frame short
    lambda x: x[:, :1],  # one channel short
    lambda x: x.unsqueeze(0),  # an extra dim
    lambda x: x.sum(1),  # channels dropped
    lambda x: x.tolist(),  # not a tensor
    lambda x: None,
])
def test_a_denoiser_returning_the_wrong_shape_is_refused(bad):
    sigmas, initial = ladder(), clip()
    before = initial.clone()
    with pytest.raises(DenoiserOutputShapeError) as info:
        generate(lambda x, sigma, prompt: bad(x), sigmas, 6, config(), initial_clip=initial)
    assert isinstance(info.value, MigaError) and isinstance(info.value, ValueError)
    assert_house_message(info.value, "denoiser output", "[B, C, F, H, W]")
    assert torch.equal(initial, before) and torch.equal(sigmas, ladder())


@pytest.mark.parametrize("options", [dict(guidance=GuidanceOptions(num_guidance=1)), dict(reflection=ReflectionOptions())])
def test_stage1_options_in_a_unified_only_run_are_refused_not_silently_ignored(options):
    d, sigmas = NeverCalled(), ladder()
    with pytest.raises(InvalidConfigError) as info:
        generate(d, sigmas, 8, config(unified_steps=T), latent_shape=SHAPE, **options)
    assert_house_message(info.value, "unified_steps", f"={T}", "stage 1")
    assert d.calls == 0


def test_an_unknown_compute_device_is_refused_before_any_model_call():
    d, sigmas = NeverCalled(), ladder()
    with pytest.raises(InvalidConfigError) as info:
        generate(d, sigmas, 8, config(compute_device="quantum:0"), latent_shape=SHAPE)
    assert_house_message(info.value, "compute_device", "quantum:0", "torch device")
    assert d.calls == 0
