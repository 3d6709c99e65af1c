"""Tiny, random, deterministic stand-ins for the Wan 2.1 T2V model files.

The files carry the real file names and the real key layouts, so ComfyUI's own
loaders (UNETLoader, CLIPLoader type "wan", VAELoader, LoraLoaderModelOnly)
detect and build them exactly as they would the real models; only the sizes
are shrunk so that a whole sampling run takes well under a second on a CPU.

* DiT ``wan2.1_t2v_1.3B_fp16.safetensors``: ``comfy.ldm.wan.model.WanModel``
  with dim 128 (ComfyUI reads ``num_heads = dim // 128`` = 1), ffn 256,
  2 blocks, text_dim 4096; stored in fp32 so tests can compare at 1e-5.
* Text encoder ``umt5_xxl_fp8_e4m3fn_scaled.safetensors``: a UMT5 encoder with
  d_model 4096 and 24 blocks (so ``comfy.sd.detect_te_model`` still says
  T5-XXL) but d_ff 8, one head of width 8 and a 64-piece vocabulary, plus an
  in-process trained sentencepiece model under the key ``spiece_model``.
  ComfyUI builds the UMT5 from a fixed XXL json; :func:`patch_tiny_text_encoder`
  makes it read the shrunk sizes from the weights instead (needed once per
  process, before the text encoder is loaded).
* VAE ``wan_2.1_vae.safetensors``: ``comfy.ldm.wan.vae.WanVAE`` with base dim 8.
* VideoCrafter2 ``videocrafter2_t2v_512.ckpt`` (the name the VC2 template loads; written by
  :func:`write_tiny_vc2` once the pack is imported, since it builds the pack's own ``VC2UNet``): a
  torch pickle ``{"state_dict": ...}`` with VC2's real key names (``model.diffusion_model.*``,
  ``cond_stage_model.model.*`` of a 3-layer OpenCLIP text tower of width 64, ``first_stage_model.*``
  of an SD KL autoencoder with 4 latent channels); MigaVC2Loader infers the sizes from the shapes.
* LoRA ``tiny_wan_lora.safetensors``: rank-4 ``lora_up``/``lora_down``/``alpha``
  on every attention and FFN linear of the DiT, keyed ``diffusion_model.<module>``.

Everything is drawn from seeded ``torch.Generator`` objects, so the bytes are
the same on every run. Importing this module requires ComfyUI on ``sys.path``
and, when ComfyUI runs in the same process, its ``comfy.cli_args.args``
configured first (see ``harness.configure``).
"""

from __future__ import annotations

import functools
import io
import logging
import math
import random
from pathlib import Path

import torch
from safetensors.torch import save_file

log = logging.getLogger(__name__)

WAN_DIT_FILE = "wan2.1_t2v_1.3B_fp16.safetensors"
TEXT_ENCODER_FILE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
VAE_FILE = "wan_2.1_vae.safetensors"
LORA_FILE = "tiny_wan_lora.safetensors"
VC2_FILE = "videocrafter2_t2v_512.ckpt"  # in models/checkpoints; the VC2 workflow's ckpt_name
VC2_CLIP_WIDTH = 64

#: Sub-folder of ``<base>/models`` for each file.
MODEL_FOLDERS = {
    WAN_DIT_FILE: "diffusion_models",
    TEXT_ENCODER_FILE: "text_encoders",
    VAE_FILE: "vae",
    LORA_FILE: "loras",
}

#: WanModel sizes. ComfyUI derives everything but text_dim from the weights;
#: text_dim stays 4096 because the UMT5 encoder outputs 4096 features.
TINY_DIT = {"dim": 128, "ffn_dim": 256, "num_layers": 2, "in_dim": 16, "out_dim": 16, "text_dim": 4096}

#: UMT5 sizes. d_model and num_layers are the real XXL ones (detection keys on them).
TINY_UMT5 = {"d_model": 4096, "num_layers": 24, "d_ff": 8, "num_heads": 1, "d_kv": 8, "vocab_size": 64}

#: WanVAE base width (the real one is 96); z_dim is the real 16.
TINY_VAE_DIM = 8

LORA_RANK = 4

#: ``model_options`` key that ``comfy.sd1_clip.SDClipModel`` reads config overrides
#: from: ``"{model_name}_model_config"``, and the Wan text encoder's model_name is
#: ``"umt5xxl"`` (set by ``SD1ClipModel(name="umt5xxl")`` in comfy/text_encoders/wan.py).
UMT5_CONFIG_KEY = "umt5xxl_model_config"

_T5_PROBE_KEY = "encoder.block.0.layer.1.DenseReluDense.wi_1.weight"
_REAL_UMT5_XXL_D_FF = 10240

_WORDS = (
    "a cat dog walks runs on the beach city at night red blue car forest river sun rain snow "
    "slowly camera pans over mountain bird flies sky bright dark ocean waves low quality blurry "
    "static video of in and with man woman street light green tree jumps quick brown fox lazy zebra"
).split()


def _randomise(module: torch.nn.Module, seed: int, scale: float = 1.0) -> None:
    """Overwrite every parameter of ``module`` with seeded random values.

    Matrices/convolutions get N(0, scale/sqrt(fan_in)), 1-D ``weight``/``gamma``
    (norm scales) get 1 + N(0, 0.1), biases N(0, 0.02), Wan ``modulation``
    tables N(0, 0.1). Nothing is left at zero, so outputs depend on every input.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            leaf = name.rsplit(".", 1)[-1]
            if "modulation" in name:
                value = 0.1 * noise
            elif p.dim() >= 2:
                fan_in = math.prod(p.shape[1:])
                value = noise * (scale / math.sqrt(fan_in))
            elif leaf in ("weight", "gamma"):
                value = 1.0 + 0.1 * noise
            else:
                value = 0.02 * noise
            p.copy_(value.reshape(p.shape))


def _cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in module.state_dict().items()}


def build_wan_dit(seed: int = 0) -> dict[str, torch.Tensor]:
    """Return the tiny Wan 2.1 T2V DiT state dict (ComfyUI's un-prefixed key layout)."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    model = WanModel(
        model_type="t2v", patch_size=(1, 2, 2), num_heads=TINY_DIT["dim"] // 128, freq_dim=256,
        window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6,
        operations=comfy.ops.disable_weight_init, dtype=torch.float32, device="cpu",
        **TINY_DIT,
    )
    _randomise(model, seed)
    return _cpu_state_dict(model)


@functools.lru_cache(maxsize=None)
def train_tiny_spiece_model(vocab_size: int = TINY_UMT5["vocab_size"], seed: int = 0) -> bytes:
    """Train a small unigram sentencepiece model in memory; return its serialised proto.

    Ids follow (U)MT5: pad 0, eos 1, unk 2, no bos. Input is NFKC + case-folded,
    so any lower/upper case English prompt tokenises without ``<unk>``.
    """
    import sentencepiece

    rng = random.Random(seed)
    lines = [
        " ".join(rng.choice(_WORDS) for _ in range(8)) + rng.choice(".,!?") + f" {rng.randint(0, 99)}"
        for _ in range(2000)
    ]
    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buffer, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, num_threads=1,
        normalization_rule_name="nmt_nfkc_cf", minloglevel=2,
    )
    return buffer.getvalue()


def build_umt5_text_encoder(seed: int = 1) -> dict[str, torch.Tensor]:
    """Return the tiny UMT5 encoder state dict, ``spiece_model`` included (uint8 tensor)."""
    import json
    import os

    import comfy.ops
    import comfy.text_encoders.t5
    import comfy.text_encoders.wan

    config_path = os.path.join(os.path.dirname(comfy.text_encoders.wan.__file__), "umt5_config_xxl.json")
    with open(config_path) as f:
        config = json.load(f)
    config.update(TINY_UMT5)
    model = comfy.text_encoders.t5.T5(config, torch.float32, "cpu", comfy.ops.disable_weight_init)
    _randomise(model, seed)
    with torch.no_grad():  # T5 token embeddings are O(1) per feature, not 1/sqrt(fan_in)
        model.shared.weight.copy_(torch.randn(model.shared.weight.shape, generator=torch.Generator().manual_seed(seed + 1000)))
    sd = _cpu_state_dict(model)
    sd["spiece_model"] = torch.frombuffer(bytearray(train_tiny_spiece_model()), dtype=torch.uint8).clone()
    return sd


def build_wan_vae(seed: int = 2) -> dict[str, torch.Tensor]:
    """Return the tiny Wan 2.1 VAE state dict, built with the ddconfig ComfyUI's ``VAE`` uses."""
    from comfy.ldm.wan.vae import WanVAE

    model = WanVAE(
        dim=TINY_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
        temperal_downsample=[False, True, True], image_channels=3, dropout=0.0,
    )
    _randomise(model, seed)
    return _cpu_state_dict(model)


def lora_target_modules(dit_sd: dict[str, torch.Tensor]) -> list[str]:
    """DiT linears (un-prefixed module names) that the tiny LoRA patches."""
    names = []
    for key, value in dit_sd.items():
        if not key.startswith("blocks.") or not key.endswith(".weight") or value.dim() != 2:
            continue
        module = key[: -len(".weight")]
        if any(part in module for part in (".self_attn.", ".cross_attn.", ".ffn.")) and "norm" not in module:
            names.append(module)
    return sorted(names)


def build_lora(dit_sd: dict[str, torch.Tensor], seed: int = 3) -> dict[str, torch.Tensor]:
    """Return a rank-4 LoRA for the tiny DiT in the ``diffusion_model.<module>.lora_up/lora_down/alpha`` format.

    ComfyUI maps ``diffusion_model.<module>`` to the model weight for every model
    (``comfy.lora.model_lora_keys_unet``, the "generic" format); ``lora_up``/``lora_down``
    are read by ``comfy.weight_adapter.lora.LoRAAdapter``. The delta is ``up @ down * alpha / rank``.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for module in lora_target_modules(dit_sd):
        rows, cols = dit_sd[module + ".weight"].shape
        prefix = f"diffusion_model.{module}"
        out[prefix + ".lora_down.weight"] = torch.randn(LORA_RANK, cols, generator=gen) / math.sqrt(cols)
        out[prefix + ".lora_up.weight"] = 0.5 * torch.randn(rows, LORA_RANK, generator=gen) / math.sqrt(LORA_RANK)
        out[prefix + ".alpha"] = torch.tensor(float(LORA_RANK))
    return out


def write_tiny_models(base_dir: str | Path) -> dict[str, Path]:
    """Write all four files under ``<base_dir>/models/<folder>/``; return ``{file name: path}``."""
    base = Path(base_dir)
    dit = build_wan_dit()
    contents = {
        WAN_DIT_FILE: dit,
        TEXT_ENCODER_FILE: build_umt5_text_encoder(),
        VAE_FILE: build_wan_vae(),
        LORA_FILE: build_lora(dit),
    }
    paths = {}
    for name, sd in contents.items():
        folder = base / "models" / MODEL_FOLDERS[name]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        save_file(sd, str(path))
        paths[name] = path
        log.debug("wrote %s (%d tensors)", path, len(sd))
    return paths


def _fill(sd: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Seeded random, nonzero values for every tensor (matrices ~ 1/sqrt(fan_in), norm scales ~ 1)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in sorted(sd.items()):
        n = torch.randn(v.shape, generator=g)
        if v.ndim >= 2:
            n = n / math.sqrt(max(1, math.prod(v.shape[1:])))
        elif k.endswith("weight") and ("norm" in k or "ln_" in k):
            n = 1 + 0.1 * n
        else:
            n = 0.02 * n
        out[k] = n.float().contiguous()
    return out


def build_vc2_checkpoint(vc2_unet) -> tuple[dict[str, torch.Tensor], object]:
    """A tiny random VideoCrafter2 state dict with the released checkpoint's key names, and its UNet config.

    ``vc2_unet`` is the pack's ``nodes.vc2_unet`` module (``Comfy.pack_submodule("nodes.vc2_unet")``). The UNet has
    64 channels, 2 levels, 1 res block; the text tower 3 layers (ComfyUI's penultimate layer needs >= 3) of width
    :data:`VC2_CLIP_WIDTH`; the VAE base width 32 and 4 latent channels (8x downsampling, as SD's)."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    tiny = vc2_unet.VC2UNetConfig(model_channels=64, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(2, 1),
                                  num_head_channels=64, context_dim=VC2_CLIP_WIDTH, init_attention_heads=1)
    unet = _fill(vc2_unet.VC2UNet(tiny).state_dict(), 1)
    c, mlp = VC2_CLIP_WIDTH, 2 * VC2_CLIP_WIDTH
    clip = {"model.token_embedding.weight": (49408, c), "model.positional_embedding": (77, c), "model.ln_final.weight": (c,),
            "model.ln_final.bias": (c,), "model.text_projection": (c, c), "model.logit_scale": ()}
    for i in range(3):
        p = f"model.transformer.resblocks.{i}."
        clip.update({p + "ln_1.weight": (c,), p + "ln_1.bias": (c,), p + "ln_2.weight": (c,), p + "ln_2.bias": (c,),
                     p + "attn.in_proj_weight": (3 * c, c), p + "attn.in_proj_bias": (3 * c,), p + "attn.out_proj.weight": (c, c),
                     p + "attn.out_proj.bias": (c,), p + "mlp.c_fc.weight": (mlp, c), p + "mlp.c_fc.bias": (mlp,),
                     p + "mlp.c_proj.weight": (c, mlp), p + "mlp.c_proj.bias": (c,)})
    clip = _fill({k: torch.empty(s) for k, s in clip.items()}, 2)
    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    vae = _fill(AutoencoderKL(ddconfig=ddconfig, embed_dim=4).state_dict(), 3)
    sd = {**{"model.diffusion_model." + k: v for k, v in unet.items()}, **{"cond_stage_model." + k: v for k, v in clip.items()},
          **{"first_stage_model." + k: v for k, v in vae.items()}}
    return sd, tiny


def write_tiny_vc2(base_dir: str | Path, vc2_unet) -> Path:
    """Write :func:`build_vc2_checkpoint`'s state dict to ``<base_dir>/models/checkpoints/`` :data:`VC2_FILE`."""
    folder = Path(base_dir) / "models" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / VC2_FILE
    torch.save({"state_dict": build_vc2_checkpoint(vc2_unet)[0]}, path)
    return path


def tiny_umt5_config(state_dict: dict[str, torch.Tensor]) -> dict[str, int] | None:
    """UMT5 config overrides read off a shrunk UMT5-XXL state dict; None for a full-size one."""
    probe = state_dict.get(_T5_PROBE_KEY)
    if probe is None or probe.shape[0] == _REAL_UMT5_XXL_D_FF:
        return None
    bias = state_dict["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    num_heads = bias.shape[1]
    inner = state_dict["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    return {
        "d_ff": probe.shape[0],
        "num_heads": num_heads,
        "d_kv": inner // num_heads,
        "vocab_size": state_dict["shared.weight"].shape[0],
    }


def patch_tiny_text_encoder(sd_module=None) -> None:
    """Make ComfyUI build the tiny UMT5 from its weights instead of the fixed XXL json.

    Wraps ``comfy.sd.load_text_encoder_state_dicts`` (which ``comfy.sd.load_clip``,
    and so CLIPLoader, looks up at call time): for a single shrunk UMT5-XXL state
    dict it adds ``model_options["umt5xxl_model_config"]`` with the real sizes;
    full-size files pass through untouched. Idempotent. ``sd_module`` is
    ``comfy.sd`` itself, for callers that hold it before its import finished.
    """
    if sd_module is None:
        import comfy.sd as sd_module

    current = sd_module.load_text_encoder_state_dicts
    if getattr(current, "_miga_tiny_te", False):
        return

    @functools.wraps(current)
    def load_text_encoder_state_dicts(state_dicts=[], embedding_directory=None,
                                      clip_type=sd_module.CLIPType.STABLE_DIFFUSION, model_options={}):
        if len(state_dicts) == 1:
            overrides = tiny_umt5_config(state_dicts[0])
            if overrides is not None:
                merged = {**overrides, **model_options.get(UMT5_CONFIG_KEY, {})}
                model_options = {**model_options, UMT5_CONFIG_KEY: merged}
        return current(state_dicts, embedding_directory=embedding_directory, clip_type=clip_type,
                       model_options=model_options)

    load_text_encoder_state_dicts._miga_tiny_te = True
    sd_module.load_text_encoder_state_dicts = load_text_encoder_state_dicts
