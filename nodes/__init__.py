"""The ComfyUI nodes of comfyui-miga (V3 schema). Only :mod:`.host` imports ``comfy``."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import graph, host, preview
from .nodes_options import MigaGuidanceOptions, MigaReflectionOptions
from .nodes_prompts import MigaPromptSchedule, MigaPromptScheduleConditioning
from .nodes_queue import MigaQueueInit, MigaUnifiedStage, MigaZigzagStage
from .nodes_sampler import MigaSampler
from .nodes_toy import MigaToyLoader, MigaToyPrompt
from .nodes_vc2 import MigaVC2Loader
from .nodes_video import MigaSaveVideo

__all__ = ["NODES", "MigaExtension"]

# Registration order only; IDs are the node_id of each schema and are frozen once released.
NODES: list[type[io.ComfyNode]] = [
    MigaSampler, MigaQueueInit, MigaZigzagStage, MigaUnifiedStage, MigaGuidanceOptions, MigaReflectionOptions,
    MigaPromptSchedule, MigaPromptScheduleConditioning, MigaSaveVideo, MigaVC2Loader,
    MigaToyLoader, MigaToyPrompt,
]


# Lets validate_inputs see the option nodes linked into a MIGA node (ComfyUI passes None for links).
graph.install()
# The sampler's cost preview in the editor (web/miga_cost.js): planned calls from the run plan.
host.add_get_route(preview.PLAN_ROUTE, preview.plan_preview)


class MigaExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
