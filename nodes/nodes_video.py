"""MIGA Save Video: decode a long LATENT chunk by chunk straight into an MP4, in constant memory.

Core VAE Decode + Create Video + Save Video hold every frame at once (481 frames at 832x480 in float32
~2.3 GB of host memory, 10,000 frames ~48 GB, and Wan2.1's decode concatenates the whole video on the
GPU). This node decodes ``decode_chunk`` latent frames at a time with the decoder's causal cache carried
across chunks (the frames are those of one full ``VAE.decode``; :func:`.host.decode_chunks`), encodes
them at once (:class:`.video_file.VideoFileWriter`) and drops them: memory holds one chunk whatever the
length. The file appears under its final name only when complete; a cancel between chunks removes it.
"""

from __future__ import annotations

from typing import Any

import torch
from comfy_api.latest import InputImpl, io, ui

from ..miga_core import MigaValueError
from ..miga_core.errors import bad_value
from . import host
from .video_file import CODECS, CRF_RANGE, VideoFileWriter, check_filename_prefix, encoder_available
from .widgets import CATEGORY

__all__ = ["MigaSaveVideo"]

MAX_IMAGE_FRAMES = 100_001


class MigaSaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaSaveVideo",
            display_name="MIGA Save Video (streaming decode)",
            category=CATEGORY,
            description="Decodes a video LATENT chunk by chunk and writes it to an H.264 MP4 in your output folder as it goes: "
                        "memory holds one chunk whatever the length (core VAE Decode holds the whole video). Wan2.1's causal "
                        "VAE keeps its cache across chunks, so the frames are exactly those of VAE Decode. The file gets its "
                        "final name only when complete; cancelling leaves no file.",
            inputs=[
                io.Latent.Input("samples", tooltip="The video LATENT to save, e.g. the latent of MIGA Long Video Sampler."),
                io.Vae.Input("vae", tooltip="The VAE of the model (wan_2.1_vae for Wan2.1; image VAEs decode frame by frame)."),
                io.String.Input("filename_prefix", default="video/miga",
                                tooltip="File name prefix inside ComfyUI's output folder (subfolders and %date% patterns as in "
                                        "core Save Video); a batch writes one file per video."),
                io.Float.Input("fps", default=16.0, min=1.0, max=120.0, step=1.0, tooltip="Frames per second (Wan2.1: 16)."),
                io.Combo.Input("codec", options=list(CODECS), default="h264",
                               tooltip="Video codec: H.264 in an MP4, yuv420p (plays in every browser and player)."),
                io.Int.Input("crf", default=19, min=CRF_RANGE[0], max=CRF_RANGE[1],
                             tooltip="Quality (x264 constant rate factor): lower is better and bigger; 17-19 look lossless, 23 is "
                                     "x264's default, 0 is lossless luma."),
                io.Int.Input("decode_chunk", default=4, min=1, max=256,
                             tooltip="Latent frames decoded at a time (Wan2.1: 4 latents = 16 video frames). Host memory grows "
                                     "with it; GPU memory little (for Wan2.1 most of it is the decoder's cache, whatever the "
                                     "chunk); the result does not change."),
                io.Int.Input("image_frames", default=0, min=0, max=MAX_IMAGE_FRAMES,
                             tooltip="0: no IMAGE output (nodes connected to it are stopped with a message). N > 0: also return "
                                     "the frames as IMAGE when the video has at most N frames (all kept in memory); a longer "
                                     "video is refused before decoding."),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The decoded frames [frames, H, W, 3] when image_frames allows "
                                                               "it (short videos only); otherwise blocked."),
                io.Video.Output(display_name="video", tooltip="The written MP4 as a VIDEO (the file, not frames in memory) "
                                                              "for core video nodes; the first video of a batch."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, filename_prefix, codec) -> bool | str:
        """Before queueing (HTTP 400): the prefix stays inside the output folder; this PyAV build has the encoder.

        ComfyUI skips its own option check for inputs named here, so ``codec`` is checked against the list too.
        """
        prefix = check_filename_prefix(filename_prefix)
        if prefix is not True:
            return prefix
        if not encoder_available(codec):
            return bad_value("codec", codec, f"one of {[c for c in CODECS if encoder_available(c)]} (encoders of this PyAV build)",
                             "pick h264; if it is missing, reinstall PyAV with its bundled FFmpeg: pip install --force-reinstall av")
        return True

    @classmethod
    def execute(cls, samples, vae, filename_prefix, fps, codec, crf, decode_chunk, image_frames) -> io.NodeOutput:
        latent = samples.get("samples") if isinstance(samples, dict) else None
        if not isinstance(latent, torch.Tensor):
            raise MigaValueError(bad_value("samples", type(samples).__name__, "a LATENT", "connect the LATENT output of a sampler"))
        frames = host.decoded_frames(vae, latent)  # per video; also refuses VAEs that cannot stream
        videos = latent.shape[0] if latent.ndim == 5 else 1
        if image_frames and frames * videos > image_frames:
            raise MigaValueError(bad_value("image_frames", image_frames, f">= {frames * videos} (the frames of this LATENT) to "
                                           "return them as IMAGE", "set image_frames to 0 for long videos: the MP4 and the VIDEO "
                                                                   "output do not need the frames in memory"))
        hidden = getattr(cls, "hidden", None)  # set by ComfyUI's executor; absent when execute is called directly
        metadata = host.save_metadata(getattr(hidden, "prompt", None), getattr(hidden, "extra_pnginfo", None))
        progress = host.DecodeProgress(frames)
        writers: list[VideoFileWriter] = []
        saved: list[ui.SavedResult] = []
        kept: list[torch.Tensor] = []
        done = 0
        try:
            for chunk in host.decode_chunks(vae, latent, decode_chunk):  # [B, t, H, W, 3]
                if not writers:
                    height, width = int(chunk.shape[2]), int(chunk.shape[3])
                    for index in range(chunk.shape[0]):
                        path, file, subfolder = host.save_path(filename_prefix, width, height, "mp4", index)
                        writers.append(VideoFileWriter(path, width, height, float(fps), int(crf), codec, metadata))
                        saved.append(ui.SavedResult(file, subfolder, io.FolderType.output))
                for writer, video in zip(writers, chunk):
                    writer.write(video)
                if image_frames:
                    kept.append(chunk)
                done += int(chunk.shape[1])
                progress(done, chunk[0, -1])  # raises on cancel: the except below removes the partial files
            paths = [writer.finish() for writer in writers]
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        images: Any = torch.cat(kept, dim=1).reshape(-1, *kept[0].shape[2:]) if kept else host.blocked_output(
            "MIGA Save Video: the IMAGE output is off (image_frames = 0). Fix: set image_frames to at least the video's frame "
            "count for short videos, or use the VIDEO output.")
        return io.NodeOutput(images, InputImpl.VideoFromFile(str(paths[0])), ui=ui.PreviewVideo(saved))
