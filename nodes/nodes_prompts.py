"""Prompt schedule nodes: which prompt conditions each part of the video [D6]."""

from __future__ import annotations

import functools

import re

from comfy_api.latest import io

from ..miga_core import PromptSchedule, PromptScheduleError
from ..miga_core.errors import bad_value
from . import graph
from .graph import literal
from .runner import PromptInput
from .widgets import CATEGORY, PROMPTS

__all__ = ["MigaPromptSchedule", "MigaPromptScheduleConditioning", "keyframe_schedule", "conditioning_schedule", "BUILDERS"]

EXAMPLE = '{\n  "0": "a red fox runs through a snowy forest",\n  "240": "the red fox reaches a frozen lake at dusk"\n}'
BLEND_TOOLTIP = "Latents over which neighbouring prompts' embeddings are blended linearly at each switch; 0 = hard switch."
OUTPUT_TOOLTIP = ("The prompt schedule for a MIGA sampler or queue initialization (its prompts input); it replaces their "
                  "positive. Keyframes must lie inside the video (num_pixel_frames).")
CONDITIONINGS = ("conditioning_1", "conditioning_2", "conditioning_3", "conditioning_4")


def _cond_tooltip(i: int) -> str:
    nth = ("first", "second", "third", "fourth")[i - 1]
    starts = "starts at pixel frame 0" if i == 1 else f"starts at the {nth} frame listed in start_frames"
    need = "required" if i <= 2 else "optional"
    return f"Prompt {i} of the schedule ({need}, a CLIPTextEncode output); it {starts}."


def keyframe_schedule(keyframes: str, blend_latents: int, latent_rule: str = "wan21") -> PromptSchedule:
    """MigaPromptSchedule's schedule for its widgets. Raises PromptScheduleError (bad JSON, keys, blend)."""
    return PromptSchedule.from_keyframes(keyframes, latent_rule=latent_rule, blend_latents=blend_latents)


def conditioning_schedule(start_frames: str, blend_latents: int, num_conditionings: int, latent_rule: str = "wan21") -> PromptSchedule:
    """MigaPromptScheduleConditioning's schedule: one start frame per connected conditioning. Raises PromptScheduleError."""
    parts = [p for p in re.split(r"[,\s]+", start_frames.strip()) if p]
    if len(parts) != num_conditionings or not all(p.isdigit() for p in parts):
        raise PromptScheduleError(bad_value("start_frames", start_frames,
                                            f"{num_conditionings} non-negative pixel frames, one per connected conditioning",
                                            "write e.g. '0, 240' for two conditionings"))
    return PromptSchedule.from_keyframes({p: i for i, p in enumerate(parts)}, latent_rule=latent_rule, num_prompts=num_conditionings,
                                         blend_latents=blend_latents)


#: class_type -> the schedule a node of that class outputs, from its prompt inputs (graph.option), for the model family's
#: pixel <-> latent rule (``latent_rule``, default Wan2.1's).
BUILDERS = {
    "MigaPromptSchedule": lambda inputs, latent_rule="wan21": keyframe_schedule(
        literal(inputs, "keyframes"), literal(inputs, "blend_latents"), latent_rule),
    "MigaPromptScheduleConditioning": lambda inputs, latent_rule="wan21": conditioning_schedule(
        literal(inputs, "start_frames"), literal(inputs, "blend_latents"), sum(name in inputs for name in CONDITIONINGS), latent_rule),
}


def _blend_latents() -> int:
    """The node's blend_latents widget from the submitted prompt (ComfyUI checked its range); 0 when unknown."""
    value = (graph.inputs_of() or {}).get("blend_latents", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _refusal(check) -> bool | str:
    try:
        check()
    except PromptScheduleError as exc:
        return str(exc)
    return True


def _encode(clip, text: str) -> list:
    """CLIPTextEncode's conditioning for ``text``."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


class MigaPromptSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaPromptSchedule",
            display_name="MIGA Prompt Schedule",
            category=CATEGORY,
            description="Keyframed prompts: a JSON object of pixel frame -> prompt. Each window is conditioned by the prompt of its "
                        "place in the video (paper App. A.3).",
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder (CLIPLoader, type wan)."),
                io.String.Input("keyframes", multiline=True, default=EXAMPLE,
                                tooltip='JSON: {"pixel frame": "prompt", ...}; the first key must be "0".'),
                io.Int.Input("blend_latents", default=0, min=0, max=1000, tooltip=BLEND_TOOLTIP),
            ],
            outputs=[PROMPTS.Output(display_name="prompts", tooltip=OUTPUT_TOOLTIP)],
        )

    @classmethod
    def validate_inputs(cls, keyframes) -> bool | str:
        """The schedule parses (JSON, keys, blend) before the prompt is queued; keyframes past the video's end are
        refused by the MIGA node it is linked to (it knows num_pixel_frames)."""
        if keyframes is None:
            return True  # linked: known at execution
        blend = _blend_latents()
        return _refusal(lambda: keyframe_schedule(keyframes, blend))

    @classmethod
    def execute(cls, clip, keyframes, blend_latents) -> io.NodeOutput:
        schedule = keyframe_schedule(keyframes, blend_latents)
        return io.NodeOutput(PromptInput(schedule, tuple(_encode(clip, text) for text in schedule.texts),
                                         functools.partial(keyframe_schedule, keyframes, blend_latents)))


class MigaPromptScheduleConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaPromptScheduleConditioning",
            display_name="MIGA Prompt Schedule (Conditioning)",
            category=CATEGORY,
            description="Several CONDITIONING inputs, each starting at a pixel frame (paper App. A.3).",
            inputs=[
                io.Conditioning.Input("conditioning_1", tooltip=_cond_tooltip(1)),
                io.Conditioning.Input("conditioning_2", tooltip=_cond_tooltip(2)),
                io.String.Input("start_frames", default="0, 240",
                                tooltip="Pixel frame where each connected conditioning starts, comma separated; the first is 0."),
                io.Int.Input("blend_latents", default=0, min=0, max=1000, tooltip=BLEND_TOOLTIP),
                io.Conditioning.Input("conditioning_3", optional=True, tooltip=_cond_tooltip(3)),
                io.Conditioning.Input("conditioning_4", optional=True, tooltip=_cond_tooltip(4)),
            ],
            outputs=[PROMPTS.Output(display_name="prompts", tooltip=OUTPUT_TOOLTIP)],
        )

    @classmethod
    def validate_inputs(cls, start_frames) -> bool | str:
        """One start frame per connected conditioning, before the prompt is queued (needs the submitted prompt)."""
        inputs = graph.inputs_of()
        if start_frames is None or inputs is None:
            return True  # linked, or which conditionings are connected is unknown: checked at execution
        blend = _blend_latents()
        return _refusal(lambda: conditioning_schedule(start_frames, blend, sum(name in inputs for name in CONDITIONINGS)))

    @classmethod
    def execute(cls, conditioning_1, conditioning_2, start_frames, blend_latents, conditioning_3=None, conditioning_4=None) -> io.NodeOutput:
        conds = [c for c in (conditioning_1, conditioning_2, conditioning_3, conditioning_4) if c is not None]
        schedule = conditioning_schedule(start_frames, blend_latents, len(conds))
        return io.NodeOutput(PromptInput(schedule, tuple(conds), functools.partial(conditioning_schedule, start_frames, blend_latents, len(conds))))
