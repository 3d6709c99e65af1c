"""VideoCrafter2 in ComfyUI v0.8.0 (issue 10): the loader's refusals, a tiny VC2 MODEL through MigaSampler,
per-frame timesteps reaching the UNet, and the model-family dispatch.

Weights cannot be downloaded: the checkpoints here are tiny and random with the real key names
(``model.diffusion_model.*`` of our LVDM UNet, ``cond_stage_model.model.*`` of an OpenCLIP text tower,
``first_stage_model.*`` of an SD KL autoencoder); the loader infers their sizes from the shapes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import tiny_models

W = H = 64  # pixels -> 8x8 latents (VC2: multiples of 64 pixels)
CLIP_WIDTH = tiny_models.VC2_CLIP_WIDTH
TINY = tiny_models.VC2_FILE


@pytest.fixture(scope="module")
def env(comfy, vc2_checkpoint):
    app = comfy
    vc2 = app.pack_submodule("nodes.vc2_unet")
    sd, tiny = tiny_models.build_vc2_checkpoint(vc2)  # the same tensors as the file (seeded)
    return dict(app=app, sd=sd, tiny=tiny, folder=vc2_checkpoint.parent, vc2=vc2, host=app.pack_submodule("nodes.host"),
                ck=app.pack_submodule("nodes.vc2_checkpoint"), loader=app.nodes.NODE_CLASS_MAPPINGS["MigaVC2Loader"],
                sampler=app.nodes.NODE_CLASS_MAPPINGS["MigaSampler"], families=app.pack_submodule("nodes.families"))


def _save(env, name, sd):
    path = env["folder"] / name
    torch.save({"state_dict": sd}, path)
    return path


def _refusal(env, path) -> str:
    with pytest.raises(env["ck"].VC2CheckpointError) as info:
        env["host"].load_vc2_checkpoint(path)
    return str(info.value)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # loading would create the marker file


def test_a_pickle_that_needs_code_is_refused_without_running_it(env, tmp_path):
    marker = tmp_path / "ran"
    path = _save(env, "evil.ckpt", {**env["sd"], "evil": _Evil(str(marker))})
    message = _refusal(env, path)
    assert "ckpt_name='evil.ckpt'" in message and "needs code to unpickle" in message and "weights_only" in message
    assert "open" in message.split("needs code to unpickle")[1].split(")")[0]  # names the global it would have called
    assert not marker.exists()


def test_missing_and_misshaped_unet_tensors_are_named(env):
    key = "input_blocks.1.0.temopral_conv.conv2.3.weight"  # the real checkpoint's (sic) key
    sd = {k: v for k, v in env["sd"].items() if k != "model.diffusion_model." + key}
    message = _refusal(env, _save(env, "missing.ckpt", sd))
    assert "lacks UNet tensors" in message and key in message
    sd = dict(env["sd"])
    bad = "model.diffusion_model.middle_block.0.in_layers.2.bias"
    sd[bad] = torch.zeros(3)
    message = _refusal(env, _save(env, "shape.ckpt", sd))
    assert "mis-shaped" in message and "middle_block.0.in_layers.2.bias (3,)" in message


def test_a_file_of_another_family_is_refused(env, comfy_base):
    wan = comfy_base / "models" / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors"
    message = _refusal(env, wan)
    assert "is not a VideoCrafter2 checkpoint" in message and "wan2.1_t2v_1.3B_fp16.safetensors" in message
    sd15 = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3), "cond_stage_model.x": torch.zeros(1)}
    message = _refusal(env, _save(env, "sd15.ckpt", sd15))
    assert "image UNet checkpoint" in message


def test_the_real_key_set_infers_the_released_config(env):
    import json

    keys = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "vc2_unet" / "vc2_t2v_512_v2_keys.json").read_text())
    shapes = {k.removeprefix("model.diffusion_model."): tuple(v) for k, v in keys["shapes"].items()}
    config = env["ck"].infer_unet_config(shapes)
    assert config == env["vc2"].VC2_T2V_512_V2
    env["ck"].check_unet_keys(shapes, config)


def test_the_loader_node_gives_model_clip_and_vae(env):
    model, clip, vae = env["loader"].execute(TINY, 8).result
    host = env["host"]
    assert isinstance(model.model, host.VC2Model) and host.model_family(model).name == "vc2"
    assert host.check_model(model) == "eps"
    ms = model.get_model_object("model_sampling")
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    sigmas = ((1 - torch.cumprod(1 - betas, 0)) / torch.cumprod(1 - betas, 0)) ** 0.5
    torch.testing.assert_close(ms.sigmas.double(), sigmas, rtol=1e-5, atol=0)
    assert model.model.latent_format.scale_factor == 0.18215
    cond = clip.encode_from_tokens(clip.tokenize(""), return_pooled=False)
    assert tuple(cond.shape) == (1, 77, CLIP_WIDTH)
    images = vae.decode(torch.randn(2, 4, 8, 8))
    assert tuple(images.shape) == (2, 64, 64, 3)


def _conds(env, model, clip):
    pos = clip.encode_from_tokens(clip.tokenize("a cat walks"), return_pooled=False)
    neg = clip.encode_from_tokens(clip.tokenize(""), return_pooled=False)  # VC2's unconditional input
    return [[pos, {}]], [[neg, {}]]


def _sample(env, model, pos, neg, *, frames, mode, f0, lz, u, steps):
    with torch.inference_mode():
        out = env["sampler"].execute(model, pos, neg, W, H, frames, 1, 5, steps, 7.5, "ddim_uniform", mode, f0, lz, u, "euler", 0,
                                     "lookahead", 1)
    return out.result


@pytest.mark.parametrize("mode", ["fifo", "miga"])
def test_a_tiny_vc2_model_runs_through_the_sampler_with_per_frame_timesteps(env, mode):
    model, clip, _ = env["loader"].execute(TINY, 8).result
    pos, neg = _conds(env, model, clip)
    preset = env["families"].VC2
    f0 = preset.window_length
    calls = []
    unet = model.model.diffusion_model
    hook = unet.time_embed.register_forward_hook(lambda m, args, out: calls.append(args[0].detach().clone()))
    seen = []
    original = type(unet).__mro__[1].forward  # VC2UNet.forward: what the network itself receives

    def spy(self, x, timesteps, context, fps=8):
        seen.append((tuple(x.shape), timesteps.detach().clone(), fps))
        return original(self, x, timesteps, context, fps)

    env["vc2"].VC2UNet.forward = spy
    try:
        if mode == "fifo":
            latent, report = _sample(env, model, pos, neg, frames=20, mode="fifo", f0=f0, lz=1, u=0, steps=16)
        else:
            latent, report = _sample(env, model, pos, neg, frames=24, mode="miga", f0=f0, lz=4, u=4, steps=16)
    finally:
        env["vc2"].VC2UNet.forward = original
        hook.remove()
    frames = 20 if mode == "fifo" else 24
    assert tuple(latent["samples"].shape) == (1, 4, frames, 8, 8)  # one latent per frame
    assert torch.isfinite(latent["samples"]).all()
    assert seen and all(shape == (2, 4, f0, 8, 8) for shape, _, _ in seen)  # CFG: cond + uncond in one forward
    assert all(fps == 8 for _, _, fps in seen)
    per_frame = [t for _, t, _ in seen if t.ndim == 2]
    assert per_frame and all(t.shape == (2, f0) for t in per_frame)
    assert any(len(set(t[0].tolist())) > 1 for t in per_frame)  # frames at different levels in one call
    assert len(calls) == len(seen)
    i = next(i for i, (_, t, _) in enumerate(seen) if t.ndim == 2 and len(set(t[0].tolist())) > 1)
    emb = calls[i].reshape(2, f0, -1)[0]  # the time-embedding input of each frame of video row 0
    levels = seen[i][1][0].tolist()
    for a in range(f0):  # frames at different levels get different embeddings, equal levels equal ones
        for b in range(f0):
            assert torch.equal(emb[a], emb[b]) == (levels[a] == levels[b])
    assert f'"num_pixel_frames": {frames}' in report


def test_unsupported_models_are_refused_listing_the_families(env):
    class NotAModel:
        model = torch.nn.Linear(1, 1)

        def clone(self):
            return self

    with pytest.raises(env["host"].UnsupportedModelError) as info:
        env["host"].check_model(NotAModel())
    message = str(info.value)
    assert "Wan2.1" in message and "VideoCrafter2" in message and "MigaVC2Loader" in message
