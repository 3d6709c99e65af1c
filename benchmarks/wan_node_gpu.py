"""The MigaSampler node on the real Wan2.1-T2V-1.3B architecture (random bf16 weights) in ComfyUI.

    python benchmarks/wan_node_gpu.py --comfyui /path/to/ComfyUI                         # benchmarks/results/wan_node_cuda.json
    python benchmarks/wan_node_gpu.py --comfyui /path/to/ComfyUI --tiny --device cpu --out /tmp/wan_tiny.json   # smoke test
    python benchmarks/wan_node_gpu.py --comfyui /path/to/ComfyUI --devices cuda:0,cuda:1 --out benchmarks/results/wan_node_2gpu_cuda.json

Weights are random (the real ones cannot be downloaded here), so the video is noise-like; what is
measured is the node path's cost: seconds per pixel frame, model calls per latent and peak VRAM.
A second, longer run is stopped through ComfyUI's interrupt after a fixed number of windows to show
that peak VRAM does not grow with the video length. The pack is loaded the way ComfyUI loads a
custom node folder (its ``__init__.py`` as a package).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import re
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402

SCRIPT = "benchmarks/wan_node_gpu.py"

WAN_1_3B = dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)  # Wan2.1-T2V-1.3B (config.json of the release)
TINY = dict(dim=128, ffn_dim=256, num_heads=1, num_layers=2)


def load_pack(name: str = "comfyui_miga"):
    """Import this repository as ComfyUI does a custom node folder."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def start_comfyui(comfyui: str, device: str) -> None:
    """Make a ComfyUI checkout importable as its main.py does (CPU mode when ``device`` is "cpu"), then load the pack."""
    sys.path.insert(0, str(pathlib.Path(comfyui).resolve()))
    from comfy.cli_args import args as comfy_args

    comfy_args.cpu = device == "cpu"
    import utils.extra_config  # noqa: F401  as main.py does: ComfyUI's nodes.py later puts comfy/ (with a utils.py) first on sys.path

    load_pack()


def random_wan(dims: dict, dtype: torch.dtype, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A Wan2.1 T2V state dict with the real key names and random weights (norm scales near 1)."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    with torch.device("meta"):
        dit = WanModel(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16, freq_dim=256, text_dim=4096, out_dim=16,
                       window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6, operations=comfy.ops.disable_weight_init, **dims)
    g = torch.Generator(device=device).manual_seed(seed)
    sd = {}
    for k, v in dit.state_dict().items():
        w = torch.randn(v.shape, generator=g, device=device, dtype=torch.float32) * 0.02
        if "norm" in k and k.endswith("weight"):
            w = w + 1.0
        sd[k] = w.to(dtype)
    return sd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", required=True, help="a ComfyUI v0.8.0 checkout")
    ap.add_argument("--out", default="benchmarks/results/wan_node_cuda.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny dims (CPU smoke test)")
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=161)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=6.0)
    ap.add_argument("--long-frames", type=int, default=641)
    ap.add_argument("--long-windows", type=int, default=40, help="windows before the long run is interrupted")
    ap.add_argument("--devices", default="", help="the sampler's devices input (issue 15), e.g. cuda:0,cuda:1; empty: --device only")
    ap.add_argument("--compare-frames", type=int, default=0,
                    help="with --devices: first run this many frames on --device alone and on --devices, and record whether the "
                         "latents are bit-identical (reflection off; 0: skip)")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    t_start, date = time.perf_counter(), record.now()

    start_comfyui(args.comfyui, args.device)
    import comfy.model_management as mm
    import comfy.sd
    import comfy.utils

    from comfyui_miga.miga_core import GuidanceOptions, ReflectionOptions
    from comfyui_miga.nodes.nodes_sampler import MigaSampler

    dims = TINY if args.tiny else WAN_1_3B
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    model = comfy.sd.load_diffusion_model_state_dict(random_wan(dims, dtype, args.device), model_options={"dtype": dtype})
    g = torch.Generator().manual_seed(1)
    positive = [[torch.randn(1, 512, 4096, generator=g) * 0.1, {}]]
    negative = [[torch.randn(1, 512, 4096, generator=g) * 0.1, {}]]
    cuda = args.device.startswith("cuda")
    gpus = sorted({d.strip() for d in args.devices.split(",") if d.strip().startswith("cuda")}) or ([args.device] if cuda else [])

    hooks = {"stop_after": None}

    def hook(value, total, preview, node_id=None):
        if hooks["stop_after"] is not None and value >= hooks["stop_after"]:
            mm.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)

    def run(frames: int, stop_after: int | None) -> dict:
        hooks["stop_after"] = stop_after
        if cuda:
            for d in gpus:
                torch.cuda.synchronize(d)
                torch.cuda.reset_peak_memory_stats(d)
        t0 = time.perf_counter()
        report = None
        try:
            with torch.inference_mode():
                out = MigaSampler.execute(model, positive, negative, args.width, args.height, frames, 1, 0, args.steps, args.cfg, "simple",
                                          "miga", 21, 7, 9, "euler", 0, "lookahead", 1, guidance=GuidanceOptions(4),
                                          reflection=ReflectionOptions(), devices=args.devices, borders="fixed")
            latent, report = out.result
            report = json.loads(report)
            assert latent["samples"].shape[2] == (frames - 1) // 4 + 1 and bool(torch.isfinite(latent["samples"]).all())
        except mm.InterruptProcessingException:
            pass
        if cuda:
            for d in gpus:
                torch.cuda.synchronize(d)
        seconds = time.perf_counter() - t0
        row = {"num_pixel_frames": frames, "num_latents": (frames - 1) // 4 + 1, "steps": args.steps, "cfg": args.cfg,
               "completed": report is not None}
        timing = {"wall_s": round(seconds, 1)}
        if report is not None:
            row.update({"model_calls": report["model_calls"], "model_calls_per_latent": report["model_calls_per_latent"],
                        "reflection_n_all": report["reflection"]["n_all"], "reflection_n_corr": report["reflection"]["n_corr"],
                        "devices": report["devices"]})
            if "windows_per_device" in report:
                row["windows_per_device"] = report["windows_per_device"]
            timing.update({"s_per_model_call": round(seconds / report["model_calls"], 3), "s_per_pixel_frame": round(seconds / frames, 3)})
        else:
            row["model_calls"] = stop_after
        if cuda:
            peaks = [round(torch.cuda.max_memory_allocated(d) / 2**30, 2) for d in gpus]
            row["peak_vram_gib"] = max(peaks)
            if len(gpus) > 1:
                row["peak_vram_gib_per_device"] = dict(zip(gpus, peaks))
        row["timing"] = timing
        print(json.dumps(row), flush=True)
        return row

    head = record.header(SCRIPT, {k: v for k, v in vars(args).items() if k not in ("out", "comfyui")}, args.device, dtype=dtype,
                         code=("miga_core", "nodes", "__init__.py", "benchmarks/record.py"), argv=argv)
    head.update({"model": "Wan2.1-T2V-1.3B architecture, random weights" if not args.tiny else "tiny Wan",
                 "preset": "wan21-paper (f0=21, L_zig=7, u=9, m_guid=4, reflection delta=0.01)",
                 "comfyui": comfyui_version(args.comfyui),
                 "weights_gib": round(sum(p.numel() * p.element_size() for p in model.model.diffusion_model.parameters()) / 2**30, 2)})
    out = record.resolve_out(args.out)
    rows = []
    if args.devices and args.compare_frames:
        latents = []
        for devices in ("", args.devices):
            with torch.inference_mode():
                latents.append(MigaSampler.execute(model, positive, negative, args.width, args.height, args.compare_frames, 1, 0, args.steps,
                                                   args.cfg, "simple", "miga", 21, 7, 9, "euler", 0, "lookahead", 1,
                                                   guidance=GuidanceOptions(4), devices=devices, borders="fixed").result[0]["samples"])
        rows.append({"compare": {"num_pixel_frames": args.compare_frames, "devices": [args.device, args.devices],
                                 "bit_identical": bool(torch.equal(*latents)),
                                 "max_abs_diff": float((latents[0].float() - latents[1].float()).abs().max())}, "completed": False})
        print(json.dumps(rows[-1]), flush=True)
    for frames, stop_after in ((args.frames, None), (args.long_frames, args.long_windows)):
        rows.append(run(frames, stop_after))
        record.write(out, "wan_node", head, rows, {"date": date, "seconds": round(time.perf_counter() - t_start, 1)})  # after each row
    return 0


def comfyui_version(path: str) -> str | None:
    """``__version__`` of the ComfyUI checkout (its comfyui_version.py), None if absent."""
    f = pathlib.Path(path) / "comfyui_version.py"
    if not f.exists():
        return None
    found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", f.read_text())
    return found.group(1) if found else None


if __name__ == "__main__":
    sys.exit(main())
