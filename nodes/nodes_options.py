"""Option nodes: long-range frame guidance [D3] and self-reflection [D5]."""

from __future__ import annotations

from comfy_api.latest import io

from ..miga_core import GuidanceOptions, ReflectionOptions, preset
from .graph import literal
from .widgets import CATEGORY, GUIDANCE, REFLECTION

__all__ = ["MigaGuidanceOptions", "MigaReflectionOptions", "guidance_options", "reflection_options", "BUILDERS"]

_, WAN_GUIDANCE, WAN_REFLECTION = preset("wan21")
assert WAN_REFLECTION is not None and WAN_REFLECTION.judge_from_tail is not None  # the widgets' defaults
#: Self-reflection widgets appended later (optional inputs, in order) -> the value a prompt without them runs with.
APPENDED_REFLECTION = {"phase": WAN_REFLECTION.phase, "judge_from_tail": WAN_REFLECTION.judge_from_tail,
                       "candidate_guidance": WAN_REFLECTION.candidate_guidance}


def _widget(position: int | None) -> int:
    """An optional position as its widget value: -1 for None (the automatic choice)."""
    return -1 if position is None else position


class MigaGuidanceOptions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaGuidanceOptions",
            display_name="MIGA Long-Range Guidance",
            category=CATEGORY,
            description="Prepends sparse, cleaner earlier frames to every stage-1 window so distant frames stay consistent "
                        "(paper Sec. 3.3, Eq. 8).",
            inputs=[io.Int.Input("num_guidance", default=WAN_GUIDANCE.num_guidance, min=0, max=64,
                                 tooltip="m_guid, guidance latents per window (paper: 4 for Wan2.1); 0 = off."),
                    # appended (optional: a workflow saved before it runs with the default)
                    io.Combo.Input("positions", options=["even", "official"], default=WAN_GUIDANCE.positions, optional=True,
                                   tooltip="Which earlier frames guide a window: official (the authors' released code: one "
                                           "frame from the middle of each earlier noise level; the default, it measured "
                                           "smoother) or even (evenly spread back from the window, as in the paper).")],
            outputs=[GUIDANCE.Output(display_name="guidance", tooltip="Long-range guidance options for a MIGA sampler or queue "
                                                                   "initialization (miga mode; refused in fifo mode).")],
        )

    @classmethod
    def execute(cls, num_guidance, positions=WAN_GUIDANCE.positions) -> io.NodeOutput:
        return io.NodeOutput(guidance_options(num_guidance, positions))


class MigaReflectionOptions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaReflectionOptions",
            display_name="MIGA Self-Reflection",
            category=CATEGORY,
            description="Scores consistency near the noisy tail and, when it drops by more than the threshold, regenerates the "
                        "tail from a few candidates and keeps the most consistent (paper Sec. 3.3, Eq. 5-7, Alg. 6).",
            inputs=[
                io.Float.Input("threshold", default=WAN_REFLECTION.threshold, min=-1.0, max=10.0, step=0.001, round=0.0001,
                               tooltip="delta: search when the score drops by more than this (paper: 0.01)."),
                io.Int.Input("num_eval", default=WAN_REFLECTION.num_eval, min=1, max=64, tooltip="f_eval, latents scored."),
                io.Int.Input("num_ref", default=WAN_REFLECTION.num_ref, min=1, max=64, tooltip="f_ref, reference latents before them."),
                io.Int.Input("num_candidates", default=WAN_REFLECTION.num_candidates, min=1, max=32,
                             tooltip="n_samp, tails tried per search (each costs a few model calls)."),
                io.Combo.Input("score_on", options=["latent", "denoised"], default=WAN_REFLECTION.score_on,
                               tooltip="Score the noisy latents (the paper) or their latest x0 predictions."),
                io.Int.Input("num_guide", default=_widget(WAN_REFLECTION.num_guide), min=-1, max=256,
                             tooltip="f_guid, latents before the judged ones that guide each candidate; -1 = window_length - "
                                     "window_stride (phase stage1) or num_ref (phase build)."),
                io.Int.Input("judge_position", default=_widget(WAN_REFLECTION.judge_position), min=-1, max=10_000,
                             tooltip="f_judg, queue position judged (phase stage1); -1 = first position at the level nearest "
                                     "0.8*steps."),
                # appended (optional: a workflow saved before them runs with the defaults)
                io.Combo.Input("phase", options=["stage1", "build"], default=WAN_REFLECTION.phase, optional=True,
                               tooltip="When to check: build (the authors' released code: after each queue-building pass, "
                                       "judging the frames judge_from_tail groups from the tail, far cheaper; the default, it "
                                       "measured better identity) or stage1 (before every stage-1 pass, at judge_position, as "
                                       "in the paper; the one MIGA Zigzag Stage takes, its queue being built already)."),
                io.Int.Input("judge_from_tail", default=APPENDED_REFLECTION["judge_from_tail"], min=1, max=1000, optional=True,
                             tooltip="Phase build only: the judged group, counted in noise levels from the tail (the released "
                                     "code's 10); unused with phase stage1."),
                io.Boolean.Input("candidate_guidance", default=WAN_REFLECTION.candidate_guidance, optional=True,
                                 tooltip="Whether the candidate tails are generated with long-range guidance: off (the released "
                                         "code; the default) or on (the paper)."),
            ],
            outputs=[REFLECTION.Output(display_name="reflection", tooltip="Self-reflection options for a MIGA sampler or zigzag "
                                                                       "stage (miga mode; refused in fifo mode).")],
        )

    @classmethod
    def execute(cls, threshold, num_eval, num_ref, num_candidates, score_on, num_guide, judge_position,
                phase=WAN_REFLECTION.phase, judge_from_tail=APPENDED_REFLECTION["judge_from_tail"],
                candidate_guidance=WAN_REFLECTION.candidate_guidance) -> io.NodeOutput:
        return io.NodeOutput(reflection_options(threshold, num_eval, num_ref, num_candidates, score_on, num_guide, judge_position,
                                                phase, judge_from_tail, candidate_guidance))


def guidance_options(num_guidance: int, positions: str = WAN_GUIDANCE.positions) -> GuidanceOptions:
    """MigaGuidanceOptions' output for its widget values (``positions`` defaults to the ``wan21`` preset's: a workflow saved
    before the widget existed). Raises InvalidConfigError / MigaTypeError."""
    options = GuidanceOptions(num_guidance=num_guidance, positions=positions)
    options.validate()
    return options


def reflection_options(threshold: float, num_eval: int, num_ref: int, num_candidates: int, score_on: str, num_guide: int,
                       judge_position: int, phase: str = WAN_REFLECTION.phase,
                       judge_from_tail: int = APPENDED_REFLECTION["judge_from_tail"],
                       candidate_guidance: bool = WAN_REFLECTION.candidate_guidance) -> ReflectionOptions:
    """MigaReflectionOptions' output for its widget values (-1 = the default position / guide; ``judge_from_tail`` is
    passed with phase ``"build"`` only, the one that reads it; the appended widgets default to the ``wan21`` preset's).
    Raises InvalidConfigError / MigaTypeError."""
    options = ReflectionOptions(threshold=threshold, num_eval=num_eval, num_ref=num_ref, num_candidates=num_candidates,
                                num_guide=None if num_guide < 0 else num_guide,
                                judge_position=None if judge_position < 0 else judge_position, score_on=score_on, phase=phase,
                                judge_from_tail=judge_from_tail if phase == "build" else None, candidate_guidance=candidate_guidance)
    options.validate()
    return options


_REFLECTION_WIDGETS = ("threshold", "num_eval", "num_ref", "num_candidates", "score_on", "num_guide", "judge_position")

#: class_type -> the option value a node of that class outputs, from its prompt inputs (graph.option); widgets appended
#: later are read with the defaults a prompt without them runs with.
BUILDERS = {
    "MigaGuidanceOptions": lambda inputs: guidance_options(literal(inputs, "num_guidance"),
                                                           literal(inputs, "positions", WAN_GUIDANCE.positions)),
    "MigaReflectionOptions": lambda inputs: reflection_options(*(literal(inputs, name) for name in _REFLECTION_WIDGETS),
                                                               *(literal(inputs, name, default)
                                                                 for name, default in APPENDED_REFLECTION.items())),
}
