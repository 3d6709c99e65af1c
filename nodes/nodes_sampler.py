"""The all-in-one MIGA sampler node (initialization, zigzag and unified stages in one)."""

from __future__ import annotations

from comfy_api.latest import io

from . import checks, graph, runner
from .families import FAMILIES
from .widgets import (CATEGORY, REFLECTION, appended_start_inputs, check_pixel_frames, check_size, config_from,
                      start_inputs)

__all__ = ["MigaSampler", "LATENT_TOOLTIP", "REPORT_TOOLTIP"]

LATENT_TOOLTIP = "The video latent [batch, 16, (num_pixel_frames - 1) / 4 + 1, height / 8, width / 8] for VAE Decode."
REPORT_TOOLTIP = "JSON: mode, frames, steps, model calls, seconds and self-reflection counts of the run."


class MigaSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaSampler",
            display_name="MIGA Long Video Sampler (Wan, FIFO, infinite)",
            category=CATEGORY,
            description="Generates a long video with MIGA (or FIFO-Diffusion in fifo mode) from a short-clip Wan2.1 model, "
                        "in constant GPU memory. Outputs a LATENT for VAE Decode and a JSON report (model calls, time, reflection).",
            inputs=start_inputs("Long-range frame guidance (miga mode).") + [
                REFLECTION.Input("reflection", optional=True, tooltip="Self-reflection (miga mode)."),
                io.String.Input("resume_from", optional=True, default="",
                                tooltip="A checkpoint to continue (path under the output folder, e.g. miga_checkpoints/miga_....safetensors, "
                                        "as logged when a run is cancelled). Empty: start anew. A checkpoint of another model, prompt or "
                                        "options is refused naming what differs; the result equals the uninterrupted run."),
                io.Float.Input("checkpoint_minutes", optional=True, default=10.0, min=0.0, max=1440.0, step=1.0,
                               tooltip="Save the run to output/miga_checkpoints every this many minutes (0: only on cancel or error); "
                                       "the file is removed when the run finishes."),
                io.String.Input("devices", optional=True, default="",
                                tooltip="Several GPUs: the devices to spread each pass's windows over, e.g. cuda:0,cuda:1 (one copy of "
                                        "the model, LoRAs included, per device; each holds its weights and one window). Empty: the "
                                        "model's own device. The video is identical for any devices."),
            ] + appended_start_inputs(),
            outputs=[io.Latent.Output(display_name="latent", tooltip=LATENT_TOOLTIP),
                     io.String.Output(display_name="report", tooltip=REPORT_TOOLTIP)],
        )

    @classmethod
    def validate_inputs(cls, num_pixel_frames) -> bool | str:
        """Every cross-input check before the prompt is queued (HTTP 400 with node_errors); see :mod:`.checks`.

        ``devices`` is read from the submitted prompt (naming it here would repeat every message under it too).
        """
        frames = check_pixel_frames(num_pixel_frames, FAMILIES[graph.model_family()].latent_rule)
        if frames is not True:
            return frames
        devices = checks.validate_devices()
        return devices if devices is not True else checks.validate_start(cls)

    @classmethod
    def execute(cls, model, positive, negative, width, height, num_pixel_frames, batch_size, seed, steps, cfg, scheduler, mode,
                window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch,
                initial_clip=None, prompts=None, guidance=None, reflection=None, resume_from="", checkpoint_minutes=10.0,
                devices="", borders=None) -> io.NodeOutput:
        check_size(width, height)
        run = runner.model_run(model, positive, negative, cfg, scheduler, steps, seed, prompts, devices or "")
        config = config_from(mode, window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch, seed,
                             borders)
        return io.NodeOutput(*runner.sample(run, config, runner.VideoRequest(num_pixel_frames, batch_size, height, width, initial_clip),
                                            guidance, reflection, resume_from or "", checkpoint_minutes))
