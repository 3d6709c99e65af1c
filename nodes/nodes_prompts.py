"""Prompt schedule nodes: which prompt conditions each part of the video [D6]."""

from __future__ import annotations

import re

from comfy_api.latest import io

from ..miga_core import PromptSchedule, PromptScheduleError
from ..miga_core.errors import bad_value
from .runner import PromptInput
from .widgets import CATEGORY, PROMPTS

__all__ = ["MigaPromptSchedule", "MigaPromptScheduleConditioning"]

EXAMPLE = '{\n  "0": "a red fox runs through a snowy forest",\n  "240": "the red fox reaches a frozen lake at dusk"\n}'
BLEND_TOOLTIP = "Latents over which neighbouring prompts' embeddings are blended linearly at each switch; 0 = hard switch."


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
            outputs=[PROMPTS.Output(display_name="prompts")],
        )

    @classmethod
    def execute(cls, clip, keyframes, blend_latents) -> io.NodeOutput:
        schedule = PromptSchedule.from_keyframes(keyframes, latent_rule="wan21", blend_latents=blend_latents)
        return io.NodeOutput(PromptInput(schedule, tuple(_encode(clip, text) for text in schedule.texts)))


class MigaPromptScheduleConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaPromptScheduleConditioning",
            display_name="MIGA Prompt Schedule (Conditioning)",
            category=CATEGORY,
            description="Several CONDITIONING inputs, each starting at a pixel frame (paper App. A.3).",
            inputs=[
                io.Conditioning.Input("conditioning_1"),
                io.Conditioning.Input("conditioning_2"),
                io.String.Input("start_frames", default="0, 240",
                                tooltip="Pixel frame where each connected conditioning starts, comma separated; the first is 0."),
                io.Int.Input("blend_latents", default=0, min=0, max=1000, tooltip=BLEND_TOOLTIP),
                io.Conditioning.Input("conditioning_3", optional=True),
                io.Conditioning.Input("conditioning_4", optional=True),
            ],
            outputs=[PROMPTS.Output(display_name="prompts")],
        )

    @classmethod
    def execute(cls, conditioning_1, conditioning_2, start_frames, blend_latents, conditioning_3=None, conditioning_4=None) -> io.NodeOutput:
        conds = [c for c in (conditioning_1, conditioning_2, conditioning_3, conditioning_4) if c is not None]
        parts = [p for p in re.split(r"[,\s]+", start_frames.strip()) if p]
        if len(parts) != len(conds) or not all(p.isdigit() for p in parts):
            raise PromptScheduleError(bad_value("start_frames", start_frames,
                                                f"{len(conds)} non-negative pixel frames, one per connected conditioning",
                                                "write e.g. '0, 240' for two conditionings"))
        schedule = PromptSchedule.from_keyframes({p: i for i, p in enumerate(parts)}, latent_rule="wan21", num_prompts=len(conds),
                                                 blend_latents=blend_latents)
        return io.NodeOutput(PromptInput(schedule, tuple(conds)))
