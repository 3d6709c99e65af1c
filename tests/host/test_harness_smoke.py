"""The harness itself: a core-nodes Wan 2.1 T2V workflow on the tiny models, in-process and over HTTP."""

import copy

import pytest

import harness
import tiny_models


def wan_t2v_prompt(text: str = "a red fox runs through snow", seed: int = 7) -> dict:
    """API-format prompt using core nodes only; node "10" saves 9 frames of 32x32."""
    return {
        "1": {"class_type": "UNETLoader",
              "inputs": {"unet_name": tiny_models.WAN_DIT_FILE, "weight_dtype": "default"}},
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 8.0}},
        "3": {"class_type": "CLIPLoader",
              "inputs": {"clip_name": tiny_models.TEXT_ENCODER_FILE, "type": "wan", "device": "default"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": text}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": "blurry, static, low quality"}},
        "6": {"class_type": "EmptyHunyuanLatentVideo",
              "inputs": {"width": 32, "height": 32, "length": 9, "batch_size": 1}},
        "7": {"class_type": "KSampler",
              "inputs": {"model": ["2", 0], "positive": ["4", 0], "negative": ["5", 0], "latent_image": ["6", 0],
                         "seed": seed, "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple",
                         "denoise": 1.0}},
        "8": {"class_type": "VAELoader", "inputs": {"vae_name": tiny_models.VAE_FILE}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["8", 0]}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "miga_smoke"}},
    }


def test_pack_registered(comfy):
    assert "KSampler" in comfy.node_types
    assert comfy.pack_loaded, "\n".join(comfy.pack_load_log)
    assert comfy.pack_node_types and all(name.startswith("Miga") for name in comfy.pack_node_types)
    assert comfy.pack_submodule("miga_core").__name__.endswith(".miga_core")


def test_tiny_models_load_as_wan(comfy):
    import nodes
    from comfy.model_base import WAN21

    (patcher,) = nodes.UNETLoader().load_unet(tiny_models.WAN_DIT_FILE, "default")
    assert type(patcher.model) is WAN21
    assert not patcher.model.image_to_video
    assert patcher.model.diffusion_model.dim == tiny_models.TINY_DIT["dim"]


def test_tiny_dit_depends_on_time_text_and_lora(comfy):
    import folder_paths
    import nodes
    import torch
    from comfy import lora, model_management
    from comfy.utils import load_torch_file

    (model,) = nodes.UNETLoader().load_unet(tiny_models.WAN_DIT_FILE, "default")
    (clip,) = nodes.CLIPLoader().load_clip(tiny_models.TEXT_ENCODER_FILE, "wan")
    ctx_a = nodes.CLIPTextEncode().encode(clip, "a red fox runs through snow")[0][0][0]
    ctx_b = nodes.CLIPTextEncode().encode(clip, "a blue car at night")[0][0][0]
    x = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    def predict(patcher, sigma, ctx):
        model_management.load_models_gpu([patcher])
        with torch.no_grad():
            return patcher.model.apply_model(x, torch.tensor([sigma]), c_crossattn=ctx)

    assert next(model.model.diffusion_model.parameters()).dtype == torch.float32
    base = predict(model, 0.8, ctx_a)
    assert base.abs().mean() > 1e-2
    assert (base - predict(model, 0.3, ctx_a)).abs().max() > 1e-3
    assert (base - predict(model, 0.8, ctx_b)).abs().max() > 1e-3

    lora_sd = load_torch_file(folder_paths.get_full_path("loras", tiny_models.LORA_FILE))
    patches = lora.load_lora(lora_sd, lora.model_lora_keys_unet(model.model, {}))
    assert len(patches) == len(lora_sd) // 3  # every up/down/alpha triple maps to a DiT weight
    (with_lora,) = nodes.LoraLoaderModelOnly().load_lora_model_only(model, tiny_models.LORA_FILE, 1.0)
    assert (base - predict(with_lora, 0.8, ctx_a)).abs().max() > 1e-3
    model_management.load_models_gpu([model])
    assert torch.equal(base, predict(model, 0.8, ctx_a))  # the LoRA is unpatched again


def test_core_workflow_in_process(comfy):
    run = comfy.execute(wan_t2v_prompt())
    images = run.outputs["10"]["images"]
    assert len(images) == 9  # frames 1 + 4 * (3 latents - 1)
    assert all(img["type"] == "output" for img in images)
    import numpy as np
    from PIL import Image

    frame = np.asarray(Image.open(comfy.base_dir / "output" / images[0]["subfolder"] / images[0]["filename"]))
    assert frame.shape == (32, 32, 3)
    assert frame.std() > 0  # not a flat image
    assert [e for e, _ in run.messages][-1] == "execution_success"


def test_text_encoder_distinguishes_prompts(comfy):
    import nodes

    (clip,) = nodes.CLIPLoader().load_clip(tiny_models.TEXT_ENCODER_FILE, "wan")
    (a,) = nodes.CLIPTextEncode().encode(clip, "a red fox runs through snow")
    (b,) = nodes.CLIPTextEncode().encode(clip, "A blue car at night")
    assert a[0][0].shape[-1] == 4096
    assert not a[0][0].allclose(b[0][0])


def test_pack_registered_over_http(comfy_server, comfy):
    info = comfy_server.object_info()
    served = sorted(k for k, v in info.items() if v.get("python_module") == harness.PACK_MODULE)
    assert served == comfy.pack_node_types


def test_core_workflow_over_http(comfy_server):
    prompt_id = comfy_server.post_prompt(wan_t2v_prompt(seed=11))
    entry = comfy_server.wait_history(prompt_id)
    assert entry["status"]["status_str"] == "success"
    images = entry["outputs"]["10"]["images"]
    assert len(images) == 9
    assert comfy_server.view(images[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_validation_errors_in_process(comfy):
    bad_link = copy.deepcopy(wan_t2v_prompt())
    bad_link["7"]["inputs"]["positive"] = ["3", 0]  # a CLIP where CONDITIONING is required
    result = comfy.validate(bad_link)
    assert not result.ok
    assert result.node_errors["7"]["errors"][0]["type"] == "return_type_mismatch"

    out_of_range = copy.deepcopy(wan_t2v_prompt())
    out_of_range["7"]["inputs"]["steps"] = 0
    with pytest.raises(harness.PromptValidationError) as info:
        comfy.execute(out_of_range)
    assert info.value.node_errors["7"]["errors"][0]["type"] == "value_smaller_than_min"


def test_validation_errors_over_http(comfy_server):
    bad = copy.deepcopy(wan_t2v_prompt())
    bad["6"]["inputs"]["length"] = 0  # min is 1
    with pytest.raises(harness.PromptRejected) as info:
        comfy_server.post_prompt(bad)
    assert info.value.error["type"] == "prompt_outputs_failed_validation"
    assert "6" in info.value.node_errors
