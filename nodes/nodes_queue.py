"""The composable MIGA nodes: queue initialization -> zigzag stage -> unified stage [D4]."""

from __future__ import annotations

from comfy_api.latest import io

from . import checks, graph, runner
from .families import FAMILIES
from .nodes_sampler import LATENT_TOOLTIP, REPORT_TOOLTIP
from .widgets import (CATEGORY, QUEUE, REFLECTION, appended_start_inputs, check_pixel_frames, check_size, config_from,
                      start_inputs)

__all__ = ["MigaQueueInit", "MigaZigzagStage", "MigaUnifiedStage"]

QUEUE_IN = "The queue from {}: latents, model, conditioning and options of the run so far."


class MigaQueueInit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaQueueInit",
            display_name="MIGA Queue Initialization",
            category=CATEGORY,
            description="Builds the stage-1 queue (paper Alg. 4; FIFO's queue in fifo mode) from an initial clip: the one you "
                        "connect (e.g. a KSampler result, for a continuation) or one sampled here.",
            inputs=start_inputs("Long-range frame guidance (also used by the zigzag stage).") + appended_start_inputs(),
            outputs=[QUEUE.Output(display_name="queue", tooltip="The initialized queue, for MIGA Zigzag Stage.")],
        )

    @classmethod
    def validate_inputs(cls, num_pixel_frames) -> bool | str:
        """Every cross-input check before the prompt is queued (HTTP 400 with node_errors); see :mod:`.checks`."""
        frames = check_pixel_frames(num_pixel_frames, FAMILIES[graph.model_family()].latent_rule)
        return frames if frames is not True else checks.validate_start(cls)

    @classmethod
    def execute(cls, model, positive, negative, width, height, num_pixel_frames, batch_size, seed, steps, cfg, scheduler, mode,
                window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch,
                initial_clip=None, prompts=None, guidance=None, borders=None) -> io.NodeOutput:
        check_size(width, height)
        run = runner.model_run(model, positive, negative, cfg, scheduler, steps, seed, prompts)
        config = config_from(mode, window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch, seed,
                             borders)
        return io.NodeOutput(runner.start_queue(run, config, runner.VideoRequest(num_pixel_frames, batch_size, height, width, initial_clip),
                                                guidance))


class MigaZigzagStage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaZigzagStage",
            display_name="MIGA Zigzag Stage",
            category=CATEGORY,
            description="Stage 1: slides the queue through the model window by window until every frame has left it at the "
                        "unified level (paper Alg. 5; FIFO-Diffusion's loop in fifo mode), with optional self-reflection.",
            inputs=[
                QUEUE.Input("queue", tooltip=QUEUE_IN.format("MIGA Queue Initialization")),
                REFLECTION.Input("reflection", optional=True, tooltip="Self-reflection options (off when not connected), with phase "
                                                                      "stage1: the queue is already built here (phase build: MIGA Long "
                                                                      "Video Sampler)."),
            ],
            outputs=[QUEUE.Output(display_name="queue", tooltip="The queue after stage 1, for MIGA Unified Stage.")],
        )

    @classmethod
    def validate_inputs(cls, reflection=None) -> bool | str:
        """The reflection options against the run the queue comes from, before queueing; see :mod:`.checks`."""
        return checks.validate_zigzag()

    @classmethod
    def execute(cls, queue, reflection=None) -> io.NodeOutput:
        return io.NodeOutput(runner.run_zigzag(queue, reflection))


class MigaUnifiedStage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaUnifiedStage",
            display_name="MIGA Unified Stage",
            category=CATEGORY,
            description="Stage 2: finishes all frames together at one shared noise level, as the model was trained (paper Eq. 4). "
                        "Outputs a LATENT for VAE Decode.",
            inputs=[QUEUE.Input("queue", tooltip=QUEUE_IN.format("MIGA Zigzag Stage"))],
            outputs=[io.Latent.Output(display_name="latent", tooltip=LATENT_TOOLTIP),
                     io.String.Output(display_name="report", tooltip=REPORT_TOOLTIP)],
        )

    @classmethod
    def execute(cls, queue) -> io.NodeOutput:
        return io.NodeOutput(*runner.run_unified(queue))
