"""Reading VideoCrafter2's released checkpoint safely and checking it before anything is built (torch only).

VC2's ``model.ckpt`` (VideoCrafter2 t2v 512) holds, under ``state_dict`` (or at the top level):

- ``model.diffusion_model.*``: the LVDM 3D UNet (1484 tensors, built by :class:`.vc2_unet.VC2UNet`);
- ``cond_stage_model.model.*``: the OpenCLIP ViT-H/14 text tower (``FrozenOpenCLIPEmbedder``, penultimate layer);
- ``first_stage_model.*``: the SD KL-f8 autoencoder (4 latent channels, scale factor 0.18215).

This module reads the file without running code from it (``torch.load(weights_only=True)`` or safetensors),
recognises the family, infers the sizes of the three parts from the tensor shapes (so a same-architecture
checkpoint of other sizes loads too: the host tests use tiny ones), and checks the UNet keys strictly.
:mod:`.host` builds the ComfyUI objects from the result.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..miga_core import MigaValueError
from ..miga_core.errors import bad_value
from .vc2_unet import VC2UNet, VC2UNetConfig

__all__ = ["VC2CheckpointError", "VC2Parts", "read_state_dict", "split_vc2", "infer_unet_config", "check_unet_keys",
           "clip_sizes", "vae_sizes", "UNET_PREFIX", "CLIP_PREFIX", "VAE_PREFIX", "HEAD_CHANNELS"]

UNET_PREFIX = "model.diffusion_model."
CLIP_PREFIX = "cond_stage_model."
VAE_PREFIX = "first_stage_model."
HEAD_CHANNELS = 64  # channels per attention head of every VC2 transformer (not visible in the weights)
SHOWN = 5  # keys named in a refusal
# Tensors only the LVDM 3D UNet has: the temporal attention after the first convolution and the (sic) temporal convs.
_MARKERS = ("init_attn.0.proj_in.weight", "input_blocks.1.0.temopral_conv.conv1.0.weight")


class VC2CheckpointError(MigaValueError):
    """A file the VideoCrafter2 loader refuses: needs code to unpickle, not VC2, or missing / mis-shaped tensors."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.ckpt``/``.pt``/``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file.

    A Lightning-style ``{"state_dict": {...}}`` is unwrapped. Nothing in the file is executed.

    Raises:
        VC2CheckpointError: the pickle needs code to load (a class or function reference outside plain tensors and
            containers), the file is not a checkpoint, or it holds no tensors.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: object = load_file(str(path), device="cpu")
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = found.group(1) if found else "a non-tensor object"
        raise VC2CheckpointError(bad_value(
            "ckpt_name", path.name, "a checkpoint of plain tensors (torch.load with weights_only=True, or .safetensors)",
            "use VideoCrafter2's released model.ckpt unchanged, or re-save its state_dict as .safetensors where you trust "
            "the file; this loader never runs code from a checkpoint",
            problem=f"needs code to unpickle ({what}) and was refused")) from None
    except Exception as exc:  # noqa: BLE001 (a damaged or foreign file: say which)
        raise VC2CheckpointError(bad_value("ckpt_name", path.name, "a readable .ckpt or .safetensors checkpoint",
                                           "check the file is complete (re-download it)",
                                           problem=f"cannot be read ({type(exc).__name__}: {str(exc)[:200]})")) from None
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not any(isinstance(v, torch.Tensor) for v in data.values()):
        raise VC2CheckpointError(bad_value("ckpt_name", path.name, "a checkpoint holding a state_dict of tensors",
                                           "pick VideoCrafter2's model.ckpt", problem="holds no tensors"))
    return {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}


@dataclass(frozen=True)
class VC2Parts:
    """A VC2 checkpoint split in its three parts, each with its prefix removed."""

    unet: dict[str, torch.Tensor]
    clip: dict[str, torch.Tensor]  # keys "model.<open_clip name>"
    vae: dict[str, torch.Tensor]
    unet_config: VC2UNetConfig


def _sub(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def split_vc2(sd: Mapping[str, torch.Tensor], name: str = "checkpoint") -> VC2Parts:
    """Recognise a VC2 checkpoint, split it, infer its UNet sizes and check the UNet keys strictly.

    Raises:
        VC2CheckpointError: not a VideoCrafter2 checkpoint (no LVDM 3D UNet, e.g. an SD1.5/SD2 image checkpoint or a
            Wan file), no text encoder or VAE, or UNet tensors missing / mis-shaped / unexpected (the first few named).
    """
    unet = _sub(sd, UNET_PREFIX)
    if not unet or not all(k in unet for k in _MARKERS):
        looks = ("an image UNet checkpoint (SD1.x/SD2.x style, no temporal layers)" if unet else
                 "a diffusion-model file without the model.diffusion_model.* UNet" if any(k.startswith("blocks.") for k in sd) else
                 f"a file with keys like {_names(sorted(sd)[:3])}")
        raise VC2CheckpointError(bad_value(
            "ckpt_name", name, "a VideoCrafter2 checkpoint (model.diffusion_model.* of the LVDM 3D UNet with "
            f"{_MARKERS[0]} and temopral_conv tensors, cond_stage_model.*, first_stage_model.*)",
            "load this file with the loader of its own family (Load Checkpoint, UNETLoader); here pick VC2's model.ckpt",
            problem=f"is not a VideoCrafter2 checkpoint: it looks like {looks}"))
    clip, vae = _sub(sd, CLIP_PREFIX), _sub(sd, VAE_PREFIX)
    for part, tensors, prefix in (("text encoder", clip, CLIP_PREFIX), ("VAE", vae, VAE_PREFIX)):
        if not tensors:
            raise VC2CheckpointError(bad_value("ckpt_name", name, f"a full VC2 checkpoint with its {part} ({prefix}*)",
                                               "use the released model.ckpt, which holds UNet, text encoder and VAE",
                                               problem=f"has no {part}"))
    config = infer_unet_config({k: tuple(v.shape) for k, v in unet.items()}, name)
    check_unet_keys({k: tuple(v.shape) for k, v in unet.items()}, config, name)
    return VC2Parts(unet, clip, vae, config)


def _missing(keys: list[str], name: str) -> VC2CheckpointError:
    return VC2CheckpointError(bad_value(
        "ckpt_name", name, "every tensor of the VC2 UNet (model.diffusion_model.*)",
        "the file is incomplete or edited: use the released model.ckpt", problem=f"lacks UNet tensors: {_names(keys)}"))


def infer_unet_config(shapes: Mapping[str, tuple[int, ...]], name: str = "checkpoint") -> VC2UNetConfig:
    """The :class:`VC2UNetConfig` whose parameters have these shapes (UNet keys without prefix).

    Head widths are VC2's 64 channels (shapes do not show them); GroupNorms have 32 groups.

    Raises:
        VC2CheckpointError: a tensor the sizes are read from is missing.
    """
    need = ("input_blocks.0.0.weight", "out.2.weight", "init_attn.0.proj_in.weight", "middle_block.1.transformer_blocks.0.attn2.to_k.weight")
    absent = [k for k in need if k not in shapes]
    if absent:
        raise _missing(absent, name)
    mc, in_ch = shapes["input_blocks.0.0.weight"][:2]
    levels: list[list[tuple[int, bool]]] = [[]]
    i = 1
    while any(k.startswith(f"input_blocks.{i}.") for k in shapes):
        conv = shapes.get(f"input_blocks.{i}.0.in_layers.2.weight")
        if conv is not None:
            levels[-1].append((conv[0], f"input_blocks.{i}.1.proj_in.weight" in shapes))
        else:
            levels.append([])
        i += 1
    levels = [lv for lv in levels if lv]
    if not levels:
        raise _missing(["input_blocks.1.0.in_layers.2.weight"], name)

    def depth(prefix: str) -> int:
        found = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"transformer_blocks\.(\d+)\.", k))}
        return max(found) + 1 if found else 1

    return VC2UNetConfig(
        in_channels=in_ch, out_channels=shapes["out.2.weight"][0], model_channels=mc,
        channel_mult=tuple(lv[0][0] // mc for lv in levels), num_res_blocks=len(levels[0]),
        attention_resolutions=tuple(sorted((2 ** j for j, lv in enumerate(levels) if lv[0][1]), reverse=True)),
        num_head_channels=HEAD_CHANNELS, transformer_depth=depth("middle_block.1."),
        temporal_transformer_depth=depth("middle_block.2."),
        context_dim=shapes["middle_block.1.transformer_blocks.0.attn2.to_k.weight"][1],
        init_attention_heads=max(1, shapes["init_attn.0.proj_in.weight"][0] // HEAD_CHANNELS),
        fps_cond="fps_embedding.0.weight" in shapes)


def check_unet_keys(shapes: Mapping[str, tuple[int, ...]], config: VC2UNetConfig, name: str = "checkpoint") -> None:
    """Strict check: the UNet of ``config`` has exactly these tensor names and shapes.

    Raises:
        VC2CheckpointError: missing, mis-shaped or unexpected tensors, the first few named.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in VC2UNet(config, device="meta").state_dict().items()}
    missing = sorted(k for k in expected if k not in shapes)
    if missing:
        raise _missing(missing, name)
    wrong = sorted(k for k in expected if tuple(shapes[k]) != expected[k])
    if wrong:
        raise VC2CheckpointError(bad_value(
            "ckpt_name", name, "UNet tensors of consistent VC2 sizes", "the file is damaged or mixes models: use the released model.ckpt",
            problem="has mis-shaped UNet tensors: " + _names([f"{k} {tuple(shapes[k])} (expected {expected[k]})" for k in wrong])))
    extra = sorted(k for k in shapes if k not in expected)
    if extra:
        raise VC2CheckpointError(bad_value(
            "ckpt_name", name, "only the tensors of the VC2 UNet under model.diffusion_model.*",
            "this looks like another LVDM variant (DynamiCrafter, VideoCrafter1 i2v...): not supported",
            problem=f"has unexpected UNet tensors: {_names(extra)}"))


def clip_sizes(clip: Mapping[str, torch.Tensor], name: str = "checkpoint") -> dict[str, int]:
    """ComfyUI ``CLIPTextModel`` config of the OpenCLIP text tower in ``clip`` (keys ``model.*``): widths from the shapes,
    heads = width / 64 (ViT-H/14: 1024 wide, 16 heads, 24 layers).

    Raises:
        VC2CheckpointError: the token embedding or the first transformer block is missing.
    """
    need = ("model.token_embedding.weight", "model.positional_embedding", "model.transformer.resblocks.0.mlp.c_fc.weight")
    absent = [k for k in need if k not in clip]
    if absent:
        raise VC2CheckpointError(bad_value("ckpt_name", name, "the OpenCLIP text tower under cond_stage_model.model.*",
                                           "use the released model.ckpt", problem=f"lacks text-encoder tensors: {_names(absent)}"))
    vocab, width = clip["model.token_embedding.weight"].shape
    layers = 1 + max(int(m.group(1)) for k in clip if (m := re.match(r"model\.transformer\.resblocks\.(\d+)\.", k)))
    proj = clip.get("model.text_projection")
    return {"hidden_size": int(width), "intermediate_size": int(clip["model.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
            "num_attention_heads": max(1, int(width) // HEAD_CHANNELS), "num_hidden_layers": int(layers), "vocab_size": int(vocab),
            "max_position_embeddings": int(clip["model.positional_embedding"].shape[0]),
            "projection_dim": int(proj.shape[1]) if proj is not None else int(width)}


def vae_sizes(vae: Mapping[str, torch.Tensor], name: str = "checkpoint") -> dict:
    """``{"ddconfig": ..., "embed_dim": ...}`` of the SD KL autoencoder in ``vae`` (ComfyUI's ``AutoencoderKL`` params).

    VC2's is SD's KL-f8: ch 128, ch_mult (1, 2, 4, 4), 2 ResBlocks per level, 4 latent channels.

    Raises:
        VC2CheckpointError: a tensor the sizes are read from is missing.
    """
    need = ("encoder.conv_in.weight", "decoder.conv_in.weight", "post_quant_conv.weight", "encoder.down.0.block.0.conv1.weight")
    absent = [k for k in need if k not in vae]
    if absent:
        raise VC2CheckpointError(bad_value("ckpt_name", name, "the KL autoencoder under first_stage_model.*",
                                           "use the released model.ckpt", problem=f"lacks VAE tensors: {_names(absent)}"))
    ch = int(vae["encoder.conv_in.weight"].shape[0])
    mult, level = [], 0
    while f"encoder.down.{level}.block.0.conv1.weight" in vae:
        mult.append(int(vae[f"encoder.down.{level}.block.0.conv1.weight"].shape[0]) // ch)
        level += 1
    blocks = 1 + max(int(m.group(1)) for k in vae if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
    z = int(vae["decoder.conv_in.weight"].shape[1])
    return {"ddconfig": {"double_z": True, "z_channels": z, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": ch,
                         "ch_mult": mult, "num_res_blocks": blocks, "attn_resolutions": [], "dropout": 0.0},
            "embed_dim": int(vae["post_quant_conv.weight"].shape[1])}
