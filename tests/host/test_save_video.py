"""MIGA Save Video inside ComfyUI v0.8.0 on the tiny random Wan2.1 VAE (issue 11 acceptance, host part).

- the streaming decode (chunks with the causal cache carried) equals ``VAE.decode`` of the whole latent, while
  independent chunks (what a naive chunked decode does) do not;
- a cancel during the decode leaves no file under the final name (nor a partial one);
- the node's output reaches ``/history`` in the same form as core Save Video's, and the file decodes to the
  requested frames;
- a bad filename prefix is a validation error (HTTP 400), not a crash.
"""

from __future__ import annotations

import io as _io
import uuid

import av
import pytest
import torch

import harness

H, W = 40, 48  # pixels -> 5x6 latents (not square, so a transposed layout would show)


@pytest.fixture(scope="module")
def vae(comfy, comfy_base):
    import comfy.sd
    import comfy.utils

    sd = comfy.utils.load_torch_file(str(comfy_base / "models" / "vae" / "wan_2.1_vae.safetensors"), safe_load=True)
    return comfy.sd.VAE(sd=sd)


@pytest.fixture(scope="module")
def host(comfy):
    return comfy.pack_submodule("nodes.host")


def latent(batch: int = 1, frames: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 16, frames, H // 8, W // 8, generator=torch.Generator().manual_seed(seed))


def stream(host, vae, samples, chunk):
    with torch.inference_mode():
        return torch.cat(list(host.decode_chunks(vae, samples, chunk)), dim=1)


def test_the_streaming_decode_equals_vae_decode_of_the_whole_latent(vae, host):
    samples = latent(batch=2)
    with torch.inference_mode():
        full = vae.decode(samples)  # [B, T, H, W, 3]
    assert full.shape == (2, 33, H, W, 3)
    assert host.decoded_frames(vae, samples) == 33
    inside = ((full > 0) & (full < 1)).float().mean().item()
    assert inside > 0.5, f"the random VAE saturates {1 - inside:.0%} of the pixels: the comparison would see too little"
    diffs = {}
    for chunk in (1, 2, 4, 9, 16):
        streamed = stream(host, vae, samples, chunk)
        assert streamed.shape == full.shape and streamed.dtype == full.dtype
        diffs[chunk] = (streamed - full).abs().max().item()
    print(f"max |streamed - VAE.decode| by decode_chunk: {diffs}")
    assert max(diffs.values()) <= 1e-6, diffs


def test_independent_chunks_differ_from_the_full_decode_so_the_comparison_can_fail(vae):
    samples = latent()
    with torch.inference_mode():
        full = vae.decode(samples)
        naive = torch.cat([vae.decode(samples[:, :, s:s + 3]) for s in range(0, 9, 3)], dim=1)  # cache restarts per chunk
    assert naive.shape[1] == 3 * (1 + 4 + 4)  # each chunk's first latent gives 1 frame, not 4: 27 frames, not 33
    assert (naive[:, :9] - full[:, :9]).abs().max() < 1e-6  # the first chunk agrees
    assert (naive[:, 9:13] - full[:, 9:13]).abs().max() > 1e-2  # after a restart it does not


def test_a_video_vae_that_cannot_stream_and_a_mismatched_latent_are_refused(vae, host, comfy):
    errors = comfy.pack_submodule("nodes.host")
    with pytest.raises(errors.UnsupportedVaeError, match="latent channels"):
        host.decoded_frames(vae, torch.zeros(1, 4, 3, 5, 6))
    with pytest.raises(errors.UnsupportedVaeError, match="VAE LATENT|image LATENT"):
        host.decoded_frames(vae, torch.zeros(16, 5, 6))


@pytest.fixture(scope="module")
def image_vae(comfy):
    """A tiny random SD-style AutoencoderKL (4 latent channels, frame-wise) built by ComfyUI's VAE from a config."""
    import comfy.sd

    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32, "ch_mult": [1, 1, 1, 1],
                "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    import tiny_models

    vae = comfy.sd.VAE(sd={}, config={"params": {"embed_dim": 4, "ddconfig": ddconfig}})
    tiny_models._randomise(vae.first_stage_model, seed=5)  # ComfyUI's layers start uninitialised
    return vae


def test_an_image_vae_decodes_frame_batches_equal_to_vae_decode(image_vae, host):
    frames = torch.randn(7, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(1))  # an image LATENT: frames in the batch
    video = torch.randn(2, 4, 5, H // 8, W // 8, generator=torch.Generator().manual_seed(2))  # a video LATENT of an image model
    with torch.inference_mode():
        full = image_vae.decode(frames)  # [7, H, W, 3]
        per_frame = torch.stack([image_vae.decode(video[:, :, i]) for i in range(5)], dim=1)  # [2, 5, H, W, 3]
    assert host.check_vae(image_vae, frames) == "framewise" and host.decoded_frames(image_vae, video) == 5
    assert ((full > 0) & (full < 1)).float().mean() > 0.5
    diffs = {}
    for chunk in (1, 3, 7):
        streamed = stream(host, image_vae, frames, chunk)
        assert streamed.shape == (1, 7, H, W, 3)
        streamed_video = stream(host, image_vae, video, chunk)
        assert streamed_video.shape == (2, 5, H, W, 3)
        diffs[chunk] = max((streamed[0] - full).abs().max().item(), (streamed_video - per_frame).abs().max().item())
    print(f"frame-wise: max |streamed - VAE.decode| by decode_chunk: {diffs}")
    assert max(diffs.values()) <= 1e-5, diffs  # float rounding only: convolutions round differently by batch size


def save_prompt(prefix: str, length: int = 33, chunk: int = 2, image_frames: int = 0, with_core: bool = False) -> dict:
    prompt = {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "2": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": W, "height": H, "length": length, "batch_size": 1}},
        "3": {"class_type": "MigaSaveVideo", "inputs": {"samples": ["2", 0], "vae": ["1", 0], "filename_prefix": prefix,
                                                        "fps": 16.0, "codec": "h264", "crf": 19, "decode_chunk": chunk,
                                                        "image_frames": image_frames}},
    }
    if with_core:
        prompt |= {
            "4": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}},
            "5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": 16.0}},
            "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": prefix + "_core", "format": "auto",
                                                        "codec": "auto"}},
        }
    return prompt


def frames_in(data: bytes | str) -> tuple[int, tuple[int, int], str]:
    with av.open(_io.BytesIO(data) if isinstance(data, bytes) else data) as container:
        ctx = container.streams.video[0].codec_context
        count = sum(1 for _ in container.decode(video=0))
        return count, (ctx.height, ctx.width), f"{ctx.name}/{ctx.pix_fmt}"


def test_the_node_writes_the_whole_video_and_returns_frames_and_a_video(comfy):
    import folder_paths

    prefix = f"video/miga_{uuid.uuid4().hex[:8]}"
    run = comfy.execute(save_prompt(prefix, image_frames=33))
    (result,) = run.outputs["3"]["images"]
    assert run.outputs["3"]["animated"] == [True] or run.outputs["3"]["animated"] == (True,)
    path = folder_paths.get_output_directory() + f"/{result['subfolder']}/{result['filename']}"
    assert frames_in(path) == (33, (H, W), "h264/yuv420p")
    progress = [data for event, data in run.events if event == "progress" and data.get("node") == "3"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 33
    assert [p["value"] for p in progress] == sorted(p["value"] for p in progress)


def test_a_cancel_during_the_decode_leaves_no_file_with_the_final_name(comfy, monkeypatch):
    app = comfy  # the fixture; ``import comfy.model_management`` rebinds the name
    import comfy.model_management
    import folder_paths

    nodes_video = app.pack_submodule("nodes.nodes_video")
    original = nodes_video.VideoFileWriter
    chunks = []

    class CancelMidway(original):
        def write(self, frames):
            super().write(frames)
            chunks.append(frames.shape[0])
            if len(chunks) == 5:  # the user presses Cancel while the decode is half done
                assert self.partial.exists() and not self.path.exists()  # x264 has flushed packets: there is a file to clean
                comfy.model_management.interrupt_current_processing(True)

    monkeypatch.setattr(nodes_video, "VideoFileWriter", CancelMidway)
    name = f"cancel_{uuid.uuid4().hex[:8]}"
    run = app.execute(save_prompt(f"video/{name}", length=161, chunk=4), check=False)  # 41 latents, 11 chunks
    assert not run.success and any(event == "execution_interrupted" for event, _ in run.messages), run.messages
    assert len(chunks) == 5  # stopped between chunks, long before the eleventh
    folder = folder_paths.get_output_directory() + "/video"
    left = [f for f in __import__("os").listdir(folder) if name in f]
    assert left == [], left


def test_a_prefix_outside_the_output_folder_is_a_validation_error(comfy):
    result = comfy.validate(save_prompt("../../etc/miga"))
    assert not result.ok
    errors = result.node_errors["3"]["errors"]
    assert any(e["type"] == "custom_validation_failed" and "filename_prefix" in str(e) for e in errors), errors


def test_the_output_appears_in_history_like_core_save_videos(comfy_server):
    prefix = f"video/http_{uuid.uuid4().hex[:8]}"
    prompt_id = comfy_server.post_prompt(save_prompt(prefix, length=17, with_core=True))
    entry = comfy_server.wait_history(prompt_id, timeout=300)
    ours, core = entry["outputs"]["3"], entry["outputs"]["6"]
    assert set(ours) == set(core) == {"images", "animated"}
    assert ours["animated"] == core["animated"]
    (mine,), (theirs,) = ours["images"], core["images"]
    assert set(mine) == set(theirs) and mine["type"] == theirs["type"] == "output" and mine["subfolder"] == theirs["subfolder"]
    assert mine["filename"].endswith(".mp4") and mine["filename"].startswith(prefix.split("/")[1] + "_")
    assert frames_in(comfy_server.view(mine))[0] == frames_in(comfy_server.view(theirs))[0] == 17
    status, body = comfy_server.request("/prompt", {"prompt": save_prompt("/abs/path")})
    assert status == 400 and "3" in body["node_errors"], body
    assert harness  # the server fixture comes from the harness (conftest)


def test_the_decode_asks_comfyui_for_the_memory_of_a_cache_carrying_decode(vae, host, monkeypatch):
    """ComfyUI unloads other models only for the memory it is asked for: each chunk asks for its estimate of a decode of
    more than 4 latents (the cache of every earlier latent is held), per video, whatever the chunk size. The <= 4
    latent estimate (what a chunk of 4 looked like before) was 2.5x lower than a chunk's measured need on the H200."""
    import comfy.model_management as mm

    asked = []
    real = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, memory_required=0, **kw: (asked.append(memory_required),
                                                                                            real(models, memory_required, **kw))[1])
    samples = latent(batch=2)
    stream(host, vae, samples, 4)
    h, w = samples.shape[-2:]
    many = vae.memory_used_decode((1, 16, 5, h, w), vae.vae_dtype)
    assert many > vae.memory_used_decode((1, 16, 4, h, w), vae.vae_dtype)  # the two regimes differ at this size
    assert asked and set(asked) == {2 * many}, (asked, many)
