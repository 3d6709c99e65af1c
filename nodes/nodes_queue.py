"""The composable MIGA nodes: queue initialization -> zigzag stage -> unified stage [D4]."""

from __future__ import annotations

from comfy_api.latest import io

from . import runner
from .widgets import CATEGORY, QUEUE, REFLECTION, check_pixel_frames, config_from, start_inputs

__all__ = ["MigaQueueInit", "MigaZigzagStage", "MigaUnifiedStage"]


class MigaQueueInit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaQueueInit",
            display_name="MIGA Queue Initialization",
            category=CATEGORY,
            description="Builds the stage-1 queue (paper Alg. 4; FIFO's queue in fifo mode) from an initial clip: the one you "
                        "connect (e.g. a KSampler result, for a continuation) or one sampled here.",
            inputs=start_inputs("Long-range frame guidance (also used by the zigzag stage)."),
            outputs=[QUEUE.Output(display_name="queue")],
        )

    @classmethod
    def validate_inputs(cls, num_pixel_frames) -> bool | str:
        return check_pixel_frames(num_pixel_frames)

    @classmethod
    def execute(cls, model, positive, negative, width, height, num_pixel_frames, batch_size, seed, steps, cfg, scheduler, mode,
                window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch,
                initial_clip=None, prompts=None, guidance=None) -> io.NodeOutput:
        run = runner.model_run(model, positive, negative, cfg, scheduler, steps, seed, prompts)
        config = config_from(mode, window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch, seed)
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
                QUEUE.Input("queue"),
                REFLECTION.Input("reflection", optional=True, tooltip="Self-reflection options (off when not connected)."),
            ],
            outputs=[QUEUE.Output(display_name="queue")],
        )

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
            inputs=[QUEUE.Input("queue")],
            outputs=[io.Latent.Output(display_name="latent"), io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(cls, queue) -> io.NodeOutput:
        return io.NodeOutput(*runner.run_unified(queue))
