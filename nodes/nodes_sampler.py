"""The all-in-one MIGA sampler node (initialization, zigzag and unified stages in one)."""

from __future__ import annotations

from comfy_api.latest import io

from . import runner
from .widgets import CATEGORY, REFLECTION, check_pixel_frames, config_from, start_inputs

__all__ = ["MigaSampler"]


class MigaSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaSampler",
            display_name="MIGA Long Video Sampler",
            category=CATEGORY,
            description="Generates a long video with MIGA (or FIFO-Diffusion in fifo mode) from a short-clip Wan2.1 model, "
                        "in constant GPU memory. Outputs a LATENT for VAE Decode and a JSON report (model calls, time, reflection).",
            inputs=start_inputs("Long-range frame guidance (miga mode).") + [
                REFLECTION.Input("reflection", optional=True, tooltip="Self-reflection (miga mode)."),
            ],
            outputs=[io.Latent.Output(display_name="latent"), io.String.Output(display_name="report")],
        )

    @classmethod
    def validate_inputs(cls, num_pixel_frames) -> bool | str:
        return check_pixel_frames(num_pixel_frames)

    @classmethod
    def execute(cls, model, positive, negative, width, height, num_pixel_frames, batch_size, seed, steps, cfg, scheduler, mode,
                window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch,
                initial_clip=None, prompts=None, guidance=None, reflection=None) -> io.NodeOutput:
        run = runner.model_run(model, positive, negative, cfg, scheduler, steps, seed, prompts)
        config = config_from(mode, window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch, seed)
        return io.NodeOutput(*runner.sample(run, config, runner.VideoRequest(num_pixel_frames, batch_size, height, width, initial_clip),
                                            guidance, reflection))
