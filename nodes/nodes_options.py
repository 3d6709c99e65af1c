"""Option nodes: long-range frame guidance [D3] and self-reflection [D5]."""

from __future__ import annotations

from comfy_api.latest import io

from ..miga_core import GuidanceOptions, ReflectionOptions, preset
from .graph import literal
from .widgets import CATEGORY, GUIDANCE, REFLECTION

__all__ = ["MigaGuidanceOptions", "MigaReflectionOptions", "guidance_options", "reflection_options", "BUILDERS"]

_, WAN_GUIDANCE, WAN_REFLECTION = preset("wan21")


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
                                 tooltip="m_guid, guidance latents per window (paper: 4 for Wan2.1); 0 = off.")],
            outputs=[GUIDANCE.Output(display_name="guidance", tooltip="Long-range guidance options for a MIGA sampler or queue "
                                                                   "initialization (miga mode; refused in fifo mode).")],
        )

    @classmethod
    def execute(cls, num_guidance) -> io.NodeOutput:
        return io.NodeOutput(guidance_options(num_guidance))


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
                io.Int.Input("num_guide", default=-1, min=-1, max=256, tooltip="f_guid; -1 = window_length - window_stride."),
                io.Int.Input("judge_position", default=-1, min=-1, max=10_000,
                             tooltip="f_judg, queue position judged; -1 = first position at the level nearest 0.8*steps."),
            ],
            outputs=[REFLECTION.Output(display_name="reflection", tooltip="Self-reflection options for a MIGA sampler or zigzag "
                                                                       "stage (miga mode; refused in fifo mode).")],
        )

    @classmethod
    def execute(cls, threshold, num_eval, num_ref, num_candidates, score_on, num_guide, judge_position) -> io.NodeOutput:
        return io.NodeOutput(reflection_options(threshold, num_eval, num_ref, num_candidates, score_on, num_guide, judge_position))


def guidance_options(num_guidance: int) -> GuidanceOptions:
    """MigaGuidanceOptions' output for its widget value. Raises InvalidConfigError / MigaTypeError."""
    options = GuidanceOptions(num_guidance=num_guidance)
    options.validate()
    return options


def reflection_options(threshold: float, num_eval: int, num_ref: int, num_candidates: int, score_on: str, num_guide: int,
                       judge_position: int) -> ReflectionOptions:
    """MigaReflectionOptions' output for its widget values (-1 = the default position). Raises InvalidConfigError."""
    options = ReflectionOptions(threshold=threshold, num_eval=num_eval, num_ref=num_ref, num_candidates=num_candidates,
                                num_guide=None if num_guide < 0 else num_guide,
                                judge_position=None if judge_position < 0 else judge_position, score_on=score_on)
    options.validate()
    return options


_REFLECTION_WIDGETS = ("threshold", "num_eval", "num_ref", "num_candidates", "score_on", "num_guide", "judge_position")

#: class_type -> the option value a node of that class outputs, from its prompt inputs (graph.option).
BUILDERS = {
    "MigaGuidanceOptions": lambda inputs: guidance_options(literal(inputs, "num_guidance")),
    "MigaReflectionOptions": lambda inputs: reflection_options(*(literal(inputs, name) for name in _REFLECTION_WIDGETS)),
}
