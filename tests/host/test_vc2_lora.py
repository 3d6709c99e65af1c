"""A LoRA on our VideoCrafter2 UNet through ComfyUI v0.8.0's own LoRA loading (issue 10: VC2 as a ComfyUI model, so
LoRAs, model patches and memory management work as for core models).

The tiny VC2 checkpoint of ``test_vc2_host.py`` is loaded by MigaVC2Loader; a small LoRA file goes to ``models/loras``
and core **LoraLoaderModelOnly** (and ``comfy.sd.load_lora_for_models``) patches the MODEL. ComfyUI maps LoRA keys onto a
custom ``BaseModel`` from its state dict (``comfy.lora.model_lora_keys_unet``): ``diffusion_model.<module>`` (its
generic format) and ``lora_unet_<module with _>`` (kohya's format for LDM-layout UNets such as VC2's); the diffusers
names it also builds need an SD ``unet_config``, which VC2 has not. The LoRA trainer VC2 LoRAs are known from
(T2V-Turbo's VC2 ``unet_lora.pt``, cloneofsimo-style ``save_lora_weight``) writes an unnamed list of up/down tensors,
which no key map can place, so the two named formats are what is tested here.

The reference: the same UNet with each target weight changed by hand, ``W + strength * (alpha / rank) * up @ down``.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from safetensors.torch import save_file

import tiny_models

TINY = tiny_models.VC2_FILE
RANK, ALPHA = 4, 2.0
#: target module -> how the file names it: kohya's ``lora_unet_*`` or ComfyUI's generic ``diffusion_model.*``, in
#: ``lora_up/lora_down`` (kohya, LyCORIS) or ``lora_B/lora_A`` (peft) tensor names
TARGETS = {
    "input_blocks.1.1.transformer_blocks.0.attn2.to_k": "kohya",  # spatial cross-attention (the text enters here)
    "input_blocks.1.2.transformer_blocks.0.attn1.to_q": "peft",  # VC2's temporal attention
    "input_blocks.1.0.temopral_conv.conv1.2": "kohya",  # VC2's temporal 3-D convolution (3, 1, 1)
    "input_blocks.1.0.in_layers.2": "generic",  # a 2-D convolution
}


def _file_keys(module: str, style: str) -> tuple[str, str, str]:
    """The ``(up, down, alpha)`` key names of ``module`` in ``style``."""
    if style == "kohya":
        base = "lora_unet_" + module.replace(".", "_")
        return f"{base}.lora_up.weight", f"{base}.lora_down.weight", f"{base}.alpha"
    base = "diffusion_model." + module
    if style == "peft":
        return f"{base}.lora_B.weight", f"{base}.lora_A.weight", f"{base}.alpha"
    return f"{base}.lora_up.weight", f"{base}.lora_down.weight", f"{base}.alpha"


def _lora_tensors(weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A seeded LoRA for :data:`TARGETS`: ``(file tensors, {module: up @ down reshaped to its weight})``."""
    g = torch.Generator().manual_seed(11)
    file, delta = {}, {}
    for module, style in TARGETS.items():
        w = weights[module + ".weight"]
        out_dim, rest = w.shape[0], w.shape[1:]
        up = torch.randn(out_dim, RANK, *[1] * (w.ndim - 2), generator=g) * 0.3
        down = torch.randn(RANK, *rest, generator=g) * 0.3
        k_up, k_down, k_alpha = _file_keys(module, style)
        file.update({k_up: up, k_down: down, k_alpha: torch.tensor(ALPHA)})
        delta[module] = (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
    return file, delta


@pytest.fixture(scope="module")
def env(comfy, vc2_checkpoint, comfy_base):
    app = comfy
    import comfy.lora
    import comfy.model_management
    import comfy.sd
    import folder_paths

    model, _, _ = app.nodes.NODE_CLASS_MAPPINGS["MigaVC2Loader"].execute(TINY, 8).result
    weights = {k: v.detach().clone() for k, v in model.model.diffusion_model.state_dict().items()}
    file, delta = _lora_tensors(weights)
    folder = comfy_base / "models" / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in file.items()}, str(folder / "vc2_tiny_lora.safetensors"))
    g = torch.Generator().manual_seed(5)
    inputs = dict(x=torch.randn(1, 4, 4, 8, 8, generator=g), timesteps=torch.tensor([500.0]),
                  context=torch.randn(1, 77, tiny_models.VC2_CLIP_WIDTH, generator=g))
    return dict(model=model, weights=weights, file=file, delta=delta, inputs=inputs, lora=comfy.lora, mm=comfy.model_management,
                sd=comfy.sd, loader=app.nodes.NODE_CLASS_MAPPINGS["LoraLoaderModelOnly"], folder_paths=folder_paths)


@torch.no_grad()
def _output(env, patcher) -> torch.Tensor:
    """The UNet's eps of :data:`inputs` with ``patcher``'s weights, loaded by ComfyUI's memory management."""
    env["mm"].load_models_gpu([patcher])
    net = patcher.model.diffusion_model
    x = {k: v.to(patcher.load_device) for k, v in env["inputs"].items()}
    return net(x["x"], x["timesteps"], x["context"]).float().cpu()


@torch.no_grad()
def _by_hand(env, strength: float) -> torch.Tensor:
    """The same UNet with each target weight changed by hand: ``W + strength * (alpha / rank) * up @ down``."""
    net = copy.deepcopy(env["model"].model.diffusion_model).to("cpu")
    sd = {k: v.clone() for k, v in env["weights"].items()}
    for module, d in env["delta"].items():
        key = module + ".weight"
        sd[key] = (sd[key].double() + strength * (ALPHA / RANK) * d.double()).to(sd[key].dtype)
    net.load_state_dict(sd, strict=True)
    return net(env["inputs"]["x"], env["inputs"]["timesteps"], env["inputs"]["context"]).float()


def test_comfyui_maps_every_lora_key_onto_the_vc2_unet(env, caplog):
    key_map = env["lora"].model_lora_keys_unet(env["model"].model, {})
    for module, style in TARGETS.items():
        if style == "kohya":
            assert key_map["lora_unet_" + module.replace(".", "_")] == f"diffusion_model.{module}.weight"
        else:
            assert key_map["diffusion_model." + module] == f"diffusion_model.{module}.weight"
    with caplog.at_level(logging.WARNING):
        patches = env["lora"].load_lora(env["file"], key_map)
    assert sorted(patches) == sorted(f"diffusion_model.{m}.weight" for m in TARGETS)
    assert "not loaded" not in caplog.text.lower()


@pytest.mark.parametrize("strength", [1.0, -0.6])
def test_lora_loader_model_only_patches_the_vc2_unet_as_by_hand(env, strength):
    unpatched = _output(env, env["model"])
    name = "vc2_tiny_lora.safetensors"
    assert name in env["folder_paths"].get_filename_list("loras")
    patched = env["loader"]().load_lora_model_only(env["model"], name, strength)[0]
    assert patched is not env["model"] and set(patched.patches) == {f"diffusion_model.{m}.weight" for m in TARGETS}
    out = _output(env, patched)
    ref = _by_hand(env, strength)
    scale = ref.abs().max()
    assert (out - ref).abs().max() <= 1e-5 * scale
    assert (out - unpatched).abs().max() > 1e-2 * scale  # the LoRA changes the output
    # the unpatched MODEL is unchanged after the patched one ran (ComfyUI restores the weights)
    assert torch.allclose(_output(env, env["model"]), unpatched, rtol=0, atol=1e-6 * float(scale))
    torch.testing.assert_close(_by_hand(env, 0.0), unpatched, rtol=1e-5, atol=1e-6)


def test_strength_0_gives_the_unpatched_output(env):
    unpatched = _output(env, env["model"])
    assert env["loader"]().load_lora_model_only(env["model"], "vc2_tiny_lora.safetensors", 0.0)[0] is env["model"]
    zero, _ = env["sd"].load_lora_for_models(env["model"], None, env["file"], 0.0, 0.0)  # patches added at strength 0
    assert set(zero.patches) == {f"diffusion_model.{m}.weight" for m in TARGETS}
    assert torch.equal(_output(env, zero), unpatched)
