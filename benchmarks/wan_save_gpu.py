"""MIGA Save Video against core VAE Decode + Create Video + Save Video on a long Wan2.1 latent (issue 11, decode side).

    python benchmarks/wan_save_gpu.py --comfyui /path/to/ComfyUI                      # benchmarks/results/wan_save_cuda.json
    python benchmarks/wan_save_gpu.py --comfyui /path/to/ComfyUI --tiny --device cpu --frames 33 --out /tmp/wan_save_tiny.json

The real-size Wan2.1 VAE (base width 96) with random weights decodes a random latent of ``--frames`` video
frames at 832x480, once through MIGA Save Video (chunked causal decode straight into an MP4) and once through
core VAE Decode -> Create Video -> Save Video. Each row records peak VRAM (``torch.cuda.max_memory_allocated``),
peak host RSS of the process during the row (VmHWM, reset before each row through /proc/self/clear_refs), the
frames in the written MP4, and wall time; an out-of-memory failure is recorded as such. The first frames of
both files are compared (mean abs difference in 8-bit levels: both encode the same decoded frames).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import tempfile
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from benchmarks.wan_node_gpu import comfyui_version, start_comfyui  # noqa: E402

SCRIPT = "benchmarks/wan_save_gpu.py"


def peak_rss_reset() -> None:
    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)
    except OSError:
        pass


def peak_rss_gib() -> float | None:
    try:
        line = next(x for x in pathlib.Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return round(int(line.split()[1]) / 2**20, 2)


def random_vae(dim: int, seed: int = 0):
    """A ComfyUI VAE of Wan2.1's architecture (base width ``dim``) with seeded random weights."""
    import comfy.sd
    from comfy.ldm.wan.vae import WanVAE

    with torch.device("meta"):
        net = WanVAE(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[], temperal_downsample=[False, True, True])
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in net.state_dict().items():
        w = torch.randn(v.shape, generator=g)
        sd[k] = w / math.sqrt(math.prod(v.shape[1:])) if v.dim() >= 2 else (1 + 0.1 * w if k.endswith(("gamma", "weight")) else 0.02 * w)
    return comfy.sd.VAE(sd=sd)


def frames_in(path: str) -> tuple[int, torch.Tensor]:
    import av

    with av.open(path) as container:
        first, count = None, 0
        for frame in container.decode(video=0):
            if first is None:
                first = torch.from_numpy(frame.to_ndarray(format="rgb24")).float()
            count += 1
    return count, first


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", required=True, help="a ComfyUI v0.8.0 checkout")
    ap.add_argument("--out", default="benchmarks/results/wan_save_cuda.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="VAE base width 8 (CPU smoke test)")
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=2001, help="video frames, 4n+1")
    ap.add_argument("--decode-chunk", type=int, default=4)
    ap.add_argument("--skip-core", action="store_true", help="only MIGA Save Video")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    t_start, date = time.perf_counter(), record.now()

    start_comfyui(args.comfyui, args.device)
    import folder_paths
    from comfy_api.latest import InputImpl, Types

    from comfyui_miga.nodes.nodes_video import MigaSaveVideo

    out_dir = tempfile.mkdtemp(prefix="miga_save_")
    folder_paths.set_output_directory(out_dir)
    vae = random_vae(8 if args.tiny else 96)
    latents = (args.frames - 1) // 4 + 1
    samples = torch.randn(1, 16, latents, args.height // 8, args.width // 8, generator=torch.Generator().manual_seed(1))
    cuda = args.device.startswith("cuda")

    def measured(name: str, work) -> dict:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        peak_rss_reset()
        t0 = time.perf_counter()
        row = {"path": name, "num_pixel_frames": args.frames, "num_latents": latents}
        try:
            with torch.inference_mode():
                path = work()
            count, first = frames_in(path)
            row.update({"completed": True, "mp4_frames": count, "file": pathlib.Path(path).name})
            row["_first"] = first
        except torch.cuda.OutOfMemoryError as exc:
            row.update({"completed": False, "error": f"CUDA out of memory: {str(exc)[:200]}"})
        except MemoryError as exc:
            row.update({"completed": False, "error": f"host out of memory: {exc}"})
        if cuda:
            torch.cuda.synchronize()
            row["peak_vram_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["peak_rss_gib"] = peak_rss_gib()
        row["timing"] = {"wall_s": round(time.perf_counter() - t0, 1)}
        print(json.dumps({k: v for k, v in row.items() if k != "_first"}), flush=True)
        return row

    def miga() -> str:
        out = MigaSaveVideo.execute({"samples": samples}, vae, "bench/miga", 16.0, "h264", 19, args.decode_chunk, 0)
        return str(out.result[1].get_stream_source())

    def core() -> str:
        images = vae.decode(samples)  # VAE Decode
        images = images.reshape(-1, *images.shape[-3:])
        video = InputImpl.VideoFromComponents(Types.VideoComponents(images=images, frame_rate=__import__("fractions").Fraction(16)))
        path = str(pathlib.Path(out_dir) / "core.mp4")
        video.save_to(path, format=Types.VideoContainer.MP4, codec=Types.VideoCodec.H264)  # Save Video
        return path

    head = record.header(SCRIPT, {k: v for k, v in vars(args).items() if k not in ("out", "comfyui")}, args.device,
                         dtype=vae.vae_dtype, code=("nodes", "__init__.py", "benchmarks/record.py"), argv=argv)
    head.update({"vae": "Wan2.1 VAE architecture, random weights" if not args.tiny else "tiny Wan VAE (width 8)",
                 "comfyui": comfyui_version(args.comfyui)})
    out = record.resolve_out(args.out)
    rows = [measured("miga_save_video", miga)]
    if not args.skip_core:
        rows.append(measured("core_vae_decode_create_save_video", core))
        if rows[0].get("_first") is not None and rows[1].get("_first") is not None:
            rows[1]["first_frame_mean_abs_diff_levels"] = round((rows[0]["_first"] - rows[1]["_first"]).abs().mean().item(), 3)
    for row in rows:
        row.pop("_first", None)
    record.write(out, "wan_save", head, rows, {"date": date, "seconds": round(time.perf_counter() - t_start, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
