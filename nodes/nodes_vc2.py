"""The VideoCrafter2 loader node: MODEL, CLIP and VAE from VC2's released checkpoint (issue 10)."""

from __future__ import annotations

from comfy_api.latest import io

from . import host
from .families import VC2
from .widgets import CATEGORY

__all__ = ["MigaVC2Loader"]


class MigaVC2Loader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaVC2Loader",
            display_name="MIGA VideoCrafter2 Loader",
            category=CATEGORY,
            description="Loads VideoCrafter2's model.ckpt (or .safetensors) from models/checkpoints: the LVDM 3D UNet as a MODEL "
                        "(eps, SD's linear schedule, latents 4 x frames x H/8 x W/8, one latent per video frame), the OpenCLIP ViT-H "
                        "text encoder as a CLIP (penultimate layer) and the SD KL-f8 VAE. The file is read without running code "
                        "from it. VC2 was trained with the empty prompt as the unconditional input: encode \"\" as the negative.",
            inputs=[
                io.Combo.Input("ckpt_name", options=host.checkpoint_files(), tooltip="VideoCrafter2 t2v 512 model.ckpt in models/checkpoints."),
                io.Int.Input("fps", default=VC2.default_fps, min=1, max=60,
                             tooltip="Frame rate the UNet is conditioned on (VC2 and FIFO-Diffusion use 8)."),
            ],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The VC2 UNet (eps, SD's linear schedule) for the MIGA sampler."),
                     io.Clip.Output(display_name="CLIP", tooltip="OpenCLIP ViT-H/14 text encoder (penultimate layer) for CLIPTextEncode."),
                     io.Vae.Output(display_name="VAE", tooltip="SD KL-f8 VAE (4 latent channels, one latent per frame) for VAE Decode.")],
        )

    @classmethod
    def execute(cls, ckpt_name: str, fps: int = VC2.default_fps) -> io.NodeOutput:
        return io.NodeOutput(*host.load_vc2_checkpoint(host.checkpoint_file(ckpt_name), fps=fps))
