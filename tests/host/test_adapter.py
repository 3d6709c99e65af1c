"""The host adapter on a tiny random Wan2.1 model inside ComfyUI v0.8.0 (issue 3 acceptance).

Each test drives the MigaSampler node's ``execute`` (the code ComfyUI runs) and compares it
with an independent reference: the core run with a denoiser that calls Wan's DiT directly with
per-frame timesteps and CFG, or ComfyUI's own sampler.
"""

from __future__ import annotations

import math

import pytest
import torch

W = H = 32  # pixels -> 4x4 latents
CFG = 5.0


@pytest.fixture(scope="module")
def env(comfy, comfy_base):
    host_app = comfy  # the fixture; ``import comfy.sd`` below rebinds the name
    import comfy.sd
    import comfy.utils

    models = comfy_base / "models"
    model = comfy.sd.load_diffusion_model(str(models / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors"))
    lora = comfy.utils.load_torch_file(str(models / "loras" / "tiny_wan_lora.safetensors"), safe_load=True)
    g = torch.Generator().manual_seed(7)
    positive = [[torch.randn(1, 12, 4096, generator=g), {}]]
    second = [[torch.randn(1, 12, 4096, generator=g), {}]]
    negative = [[torch.randn(1, 12, 4096, generator=g), {}]]
    core = host_app.pack_submodule("miga_core")
    return dict(model=model, lora=lora, positive=positive, second=second, negative=negative, core=core,
                host=host_app.pack_submodule("nodes.host"), runner=host_app.pack_submodule("nodes.runner"),
                sampler=host_app.nodes.NODE_CLASS_MAPPINGS["MigaSampler"])


def run_node(env, model=None, *, frames=29, steps=8, mode="fifo", f0=4, lz=1, u=0, seed=3, prompts=None, guidance=None,
             reflection=None, initial_clip=None, positive=None, borders="fixed"):
    """MigaSampler.execute with small settings (the paper's fixed borders unless ``borders``); returns (samples, report)."""
    with torch.inference_mode():
        out = env["sampler"].execute(model or env["model"], positive or env["positive"], env["negative"], W, H, frames, 1, seed, steps,
                                     CFG, "simple", mode, f0, lz, u, "euler", 0, "lookahead", 1, initial_clip, prompts, guidance,
                                     reflection, borders=borders)
    latent, report = out.result
    return latent["samples"], report


def direct_denoiser(model, contexts, negative, eps=False):
    """D(x, sigma, prompt) calling Wan's DiT itself: per-frame timesteps [B, F], CFG, one context per prompt."""
    base = model.model
    dit, ms = base.diffusion_model, base.model_sampling

    def D(x, sigma, prompt):
        t = ms.timestep(sigma.reshape(-1)).reshape(sigma.shape).float()
        s5 = sigma[:, None, :, None, None]
        xin = x / (s5 ** 2 + 1) ** 0.5 if eps else x
        ctx = torch.cat([contexts[int(p.argmax())] for p in prompt])
        with torch.inference_mode():
            v_c = dit(xin, t, ctx)
            v_u = dit(xin, t, negative.expand(x.shape[0], -1, -1))
        return x - (v_u + CFG * (v_c - v_u)) * s5

    return D


def core_reference(env, model, config, frames, steps, eps=False, prompts=None, contexts=None):
    core = env["core"]
    sigmas = env["host"].ladder(model, "simple", steps)
    D = direct_denoiser(model, contexts or [env["positive"][0][0]], env["negative"][0][0], eps=eps)
    result = core.generate(D, sigmas, (frames - 1) // 4 + 1, config, latent_shape=(1, 16, H // 8, W // 8), prompts=prompts)
    return result.latents


def test_every_miga_node_type_is_registered(comfy):
    assert comfy.pack_loaded, comfy.pack_load_log
    assert {"MigaSampler", "MigaQueueInit", "MigaZigzagStage", "MigaUnifiedStage", "MigaGuidanceOptions", "MigaReflectionOptions",
            "MigaPromptSchedule", "MigaPromptScheduleConditioning"} <= set(comfy.pack_node_types)


def test_fifo_node_equals_the_core_run_with_the_dit_called_directly(env):
    samples, report = run_node(env, mode="fifo")
    config = env["core"].MigaConfig(window_length=4, zigzag_width=1, unified_steps=0, seed=3, mode="fifo")
    ref = core_reference(env, env["model"], config, 29, 8)
    got = env["model"].model.process_latent_in(samples)
    err = (got - ref).abs().max().item()
    print(f"FIFO node vs direct DiT: max abs diff {err:.3g} (|x| mean {ref.abs().mean():.3g})")
    assert err <= 1e-5
    assert '"mode": "fifo"' in report


def test_miga_node_with_guidance_equals_the_core_run_with_the_dit_called_directly(env):
    core = env["core"]
    samples, _ = run_node(env, mode="miga", f0=6, lz=2, u=2, steps=8, frames=37, guidance=core.GuidanceOptions(num_guidance=2))
    config = core.MigaConfig(window_length=6, zigzag_width=2, unified_steps=2, seed=3)
    sigmas = env["host"].ladder(env["model"], "simple", 8)
    D = direct_denoiser(env["model"], [env["positive"][0][0]], env["negative"][0][0])
    ref = core.generate(D, sigmas, 10, config, latent_shape=(1, 16, 4, 4), guidance=core.GuidanceOptions(num_guidance=2)).latents
    err = (env["model"].model.process_latent_in(samples) - ref).abs().max().item()
    print(f"MIGA node (guidance) vs direct DiT: max abs diff {err:.3g}")
    assert err <= 1e-5


def test_eps_model_recovers_per_frame_predictions_exactly(env):
    import comfy_extras.nodes_model_advanced as adv

    eps_model = adv.ModelSamplingDiscrete().patch(env["model"], "eps", False)[0]
    assert env["host"].check_model(eps_model) == "eps"
    with torch.inference_mode():
        out = env["sampler"].execute(eps_model, env["positive"], env["negative"], W, H, 29, 1, 3, 8, CFG, "simple", "fifo", 4, 1, 0,
                                     "euler", 0, "lookahead", 1)
    samples = out.result[0]["samples"]
    config = env["core"].MigaConfig(window_length=4, zigzag_width=1, unified_steps=0, seed=3, mode="fifo", parameterization="eps")
    ref = core_reference(env, eps_model, config, 29, 8, eps=True)
    err = ((eps_model.model.process_latent_in(samples) - ref).abs().max() / ref.abs().max()).item()
    print(f"eps FIFO node vs direct DiT: max relative diff {err:.3g}")
    assert err <= 1e-5


def test_v_prediction_model_is_refused_with_a_clear_error(env):
    import comfy_extras.nodes_model_advanced as adv

    v_model = adv.ModelSamplingDiscrete().patch(env["model"], "v_prediction", False)[0]
    with pytest.raises(ValueError, match="flow \\(CONST\\) or eps"):
        run_node(env, v_model)


def test_unified_only_with_one_window_equals_comfyuis_ksampler(env):
    import comfy.sample

    core, steps, f0 = env["core"], 8, 5
    samples, _ = run_node(env, mode="miga", frames=(f0 - 1) * 4 + 1, f0=f0, lz=1, u=steps, steps=steps)
    noise = core.latent_noise(3, core.Stream.FRESH, range(f0), [steps] * f0, (1, 16, 4, 4))
    with torch.inference_mode():
        ks = comfy.sample.sample(env["model"], noise, steps, CFG, "euler", "simple", env["positive"], env["negative"],
                                 torch.zeros_like(noise), seed=3, disable_pbar=True)
    to_model = env["model"].model.process_latent_in  # both sampled in model space; compare there
    err = (to_model(samples) - to_model(ks)).abs().max().item()
    print(f"unified-only node vs KSampler euler: max abs diff {err:.3g} in model space "
          f"({(samples - ks).abs().max().item():.3g} after Wan's latent scaling)")
    assert err <= 1e-5


def test_lora_and_shift_change_the_result_and_removing_them_restores_it(env):
    import comfy.sd
    import comfy_extras.nodes_model_advanced as adv

    plain, _ = run_node(env)
    with_lora = comfy.sd.load_lora_for_models(env["model"], None, env["lora"], 1.0, 0)[0]
    lora_out, _ = run_node(env, with_lora)
    shifted = adv.ModelSamplingSD3().patch(env["model"], 3.0)[0]
    shift_out, _ = run_node(env, shifted)
    again, _ = run_node(env)
    print(f"LoRA changes the video by {(lora_out - plain).abs().max():.3g}, shift 8->3 by {(shift_out - plain).abs().max():.3g}")
    assert (lora_out - plain).abs().max() > 1e-3
    assert (shift_out - plain).abs().max() > 1e-3
    assert torch.equal(again, plain)


def test_interrupt_raises_comfyuis_exception_and_the_next_run_is_clean(env, monkeypatch):
    import comfy.model_management as mm
    import comfy.utils

    clean, _ = run_node(env)
    seen = []

    def hook(value, total, preview, node_id=None, prompt_id=None):
        seen.append((value, total))
        if value == 5:
            mm.interrupt_current_processing(True)

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    with pytest.raises(mm.InterruptProcessingException):
        run_node(env)
    assert seen[-1][0] == 5 and seen[-1][1] > 5, seen[-3:]  # stopped at the next window, progress counts windows of the run
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
    after, _ = run_node(env)
    assert torch.equal(after, clean)


def test_memory_estimate_for_250_latents_equals_one_window(env, monkeypatch):
    import comfy.model_management as mm
    import comfy.sample
    import comfy.sampler_helpers as sh

    estimates = []
    real = sh.estimate_memory

    def spy(model, noise_shape, conds):
        out = real(model, noise_shape, conds)
        estimates.append((list(noise_shape), out))
        return out

    monkeypatch.setattr(sh, "estimate_memory", spy)
    mm.interrupt_current_processing(False)

    def stop_after_first_window(value, total, preview, node_id=None, prompt_id=None):
        mm.interrupt_current_processing(True)

    import comfy.utils

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", stop_after_first_window)
    with pytest.raises(mm.InterruptProcessingException):
        run_node(env, frames=(250 - 1) * 4 + 1, mode="miga", f0=4, lz=2, u=2, steps=8)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
    miga_shape, miga_estimate = estimates[-1]
    window = torch.zeros(1, 16, 4, 4, 4)
    with torch.inference_mode():
        comfy.sample.sample(env["model"], window, 1, CFG, "euler", "simple", env["positive"], env["negative"], window, seed=0,
                            disable_pbar=True)
    ks_shape, ks_estimate = estimates[-1]
    print(f"250 latents: ComfyUI sized memory for {miga_shape} -> {miga_estimate}; one-window KSampler {ks_shape} -> {ks_estimate}")
    assert miga_shape == ks_shape == [1, 16, 4, 4, 4]
    assert miga_estimate == ks_estimate


def test_prompt_schedule_switches_the_conditioning_at_the_scheduled_latent(env):
    core, runner = env["core"], env["runner"]
    schedule = core.PromptSchedule.from_keyframes({"0": 0, "16": 1}, latent_rule="wan21", num_prompts=2)
    prompts = runner.PromptInput(schedule, (env["positive"], env["second"]))
    samples, _ = run_node(env, prompts=prompts)
    config = core.MigaConfig(window_length=4, zigzag_width=1, unified_steps=0, seed=3, mode="fifo")
    ref = core_reference(env, env["model"], config, 29, 8, prompts=schedule,
                         contexts=[env["positive"][0][0], env["second"][0][0]])
    single, _ = run_node(env)
    err = (env["model"].model.process_latent_in(samples) - ref).abs().max().item()
    print(f"two-prompt FIFO node vs direct DiT: max abs diff {err:.3g}")
    assert err <= 1e-5
    assert (samples - single).abs().max() > 1e-3
    assert math.isclose(schedule.starts[1], 4)


@pytest.mark.parametrize("variant", ["vace", "i2v"])
def test_wan_variants_without_per_frame_timesteps_or_t2v_are_refused(env, variant):
    import comfy.ldm.wan.model as wan
    import comfy.ops
    import comfy.sd

    kw = dict(patch_size=(1, 2, 2), dim=128, ffn_dim=256, freq_dim=256, text_dim=4096, out_dim=16, num_heads=1, num_layers=1,
              window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6, operations=comfy.ops.disable_weight_init)
    if variant == "vace":
        dit = wan.VaceWanModel(model_type="t2v", in_dim=16, vace_layers=1, vace_in_dim=96, **kw)
    else:
        dit = wan.WanModel(model_type="i2v", in_dim=36, **kw)
    sd = {k: torch.zeros(v.shape) for k, v in dit.state_dict().items()}
    model = comfy.sd.load_diffusion_model_state_dict(sd)
    with pytest.raises(ValueError, match="per-frame timesteps|image-to-video"):
        run_node(env, model)


def composable(env, *, initial_clip=None, reflection=None, guidance=None, frames=37, seed=3):
    """QueueInit -> ZigzagStage -> UnifiedStage, and the all-in-one sampler on the same inputs."""
    import nodes as comfy_nodes  # ComfyUI's registry (the pack's nodes/ is imported as part of the pack)

    mapping = comfy_nodes.NODE_CLASS_MAPPINGS
    args = (env["model"], env["positive"], env["negative"], W, H, frames, 1, seed, 8, CFG, "simple", "miga", 6, 2, 2, "euler", 0,
            "lookahead", 1)
    with torch.inference_mode():
        queue = mapping["MigaQueueInit"].execute(*args, initial_clip, None, guidance).result[0]
        queue = mapping["MigaZigzagStage"].execute(queue, reflection).result[0]
        latent, report = mapping["MigaUnifiedStage"].execute(queue).result
        whole = env["sampler"].execute(*args, initial_clip, None, guidance, reflection).result[0]
    return latent["samples"], whole["samples"], report


def test_composable_stage_nodes_equal_the_all_in_one_sampler(env):
    core = env["core"]
    reflection = core.ReflectionOptions(threshold=-1.0, num_eval=1, num_ref=1, num_candidates=2, num_guide=2, judge_position=4)
    staged, whole, report = composable(env, reflection=reflection, guidance=core.GuidanceOptions(num_guidance=1))
    assert torch.equal(staged, whole)
    assert '"n_corr": ' in report and '"n_eval": 0' not in report  # threshold -1: every check searched


def test_an_initial_clip_from_ksampler_starts_the_video(env):
    clip = {"samples": torch.randn(1, 16, 6, 4, 4, generator=torch.Generator().manual_seed(5))}
    staged, whole, _ = composable(env, initial_clip=clip)
    fresh, _, _ = composable(env)
    assert torch.equal(staged, whole) and staged.shape == (1, 16, 10, 4, 4)
    assert (staged - fresh).abs().max() > 1e-3
    with pytest.raises(ValueError, match="window_length=6"):
        composable(env, initial_clip={"samples": clip["samples"][:, :, :5]})


def test_block_patches_and_model_function_wrappers_keep_working(env):
    plain, _ = run_node(env)
    calls = {"wrapper": 0, "block": 0}

    def wrapper(apply_model, args):  # ComfyUI's model_function_wrapper contract
        calls["wrapper"] += 1
        return apply_model(args["input"], args["timestep"], **args["c"])

    def block(args, extra):  # a "dit" block replacement that scales block 0's output
        calls["block"] += 1
        out = extra["original_block"](args)
        out["img"] = out["img"] * 1.5
        return out

    wrapped = env["model"].clone()
    wrapped.set_model_unet_function_wrapper(wrapper)
    same, _ = run_node(env, wrapped)
    patched = env["model"].clone()
    patched.set_model_patch_replace(block, "dit", "double_block", 0)
    changed, _ = run_node(env, patched)
    assert calls["wrapper"] > 0 and calls["block"] > 0
    assert torch.equal(same, plain)
    assert (changed - plain).abs().max() > 1e-3


def test_progress_counts_windows_of_the_whole_run_and_sends_latent_previews(env, monkeypatch):
    import comfy.utils
    import latent_preview
    from comfy.cli_args import LatentPreviewMethod, args

    events = []
    monkeypatch.setattr(args, "preview_method", LatentPreviewMethod.Latent2RGB)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None, prompt_id=None:
                        events.append((value, total, preview)))
    assert latent_preview.get_previewer("cpu", env["model"].model.latent_format) is not None
    _, report = run_node(env)
    calls = __import__("json").loads(report)["model_calls"]
    assert [e[0] for e in events] == list(range(1, calls + 1))
    assert events[-1][1] == calls
    fmt, image, _ = events[-1][2]
    assert fmt == "JPEG" and image.size[0] > 0


def test_caching_wrappers_get_a_warning_because_windows_change_between_calls(env, caplog):
    import comfy.patcher_extension

    cached = env["model"].clone()
    cached.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "easycache",
                                lambda executor, *args, **kwargs: executor(*args, **kwargs))
    with caplog.at_level("WARNING", logger="miga"):
        out, _ = run_node(env, cached)
    assert any("easycache" in record.getMessage() for record in caplog.records)
    plain, _ = run_node(env)
    assert torch.equal(out, plain)  # a pass-through wrapper changes nothing


def test_conds_move_to_the_model_device_once_keeping_their_kind_and_values(env):
    """``_conds_to``: the processed conditioning's tensors go to the model's device (there "meta" stands in for a GPU),
    each cond keeps its class; non-tensor conds and the ``model_conds`` dicts given are untouched."""
    import comfy.conds

    text = torch.randn(1, 12, 4096)
    entry = {"model_conds": {"c_crossattn": comfy.conds.CONDRegular(text), "fixed": comfy.conds.CONDConstant(3)}}
    conds = {"positive": [entry], "negative": [dict(entry)]}
    original = entry["model_conds"]
    env["host"]._conds_to(conds, torch.device("meta"))
    for entries in conds.values():
        moved = entries[0]["model_conds"]
        assert type(moved["c_crossattn"]) is comfy.conds.CONDRegular and moved["c_crossattn"].cond.device.type == "meta"
        assert moved["fixed"].cond == 3
    assert original["c_crossattn"].cond is text  # a new model_conds dict: the one the caller gave is not changed
