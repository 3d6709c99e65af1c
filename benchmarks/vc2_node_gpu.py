"""The MigaSampler node on the real VideoCrafter2 architecture (random weights), loaded by MigaVC2Loader in ComfyUI.

    python benchmarks/vc2_node_gpu.py --comfyui /path/to/ComfyUI [--official-json fifo_official_speed.json]
                                                                   # benchmarks/results/vc2_node_cuda.json
    python benchmarks/vc2_node_gpu.py --comfyui /path/to/ComfyUI --tiny --device cpu --out /tmp/vc2_tiny.json   # smoke test

The real checkpoint cannot be downloaded here, so the script writes one with VC2's key layout and seeded random
weights (:func:`random_weights`: no tensor is all zeros, the zero-initialised residual outputs included) as a
``.safetensors`` file in a temporary ``checkpoints`` folder and loads it through the loader node, the path a user's
``model.ckpt`` takes: the LVDM 3D UNet (``nodes/vc2_unet.py``, full size: 1.41e9 parameters), the OpenCLIP ViT-H/14
text tower (ComfyUI's SD2 text encoder, so the prompts go through the real tokenizer and CLIPTextEncode's call) and
the SD KL-f8 VAE. ComfyUI picks the UNet's dtype as for any checkpoint (fp16 on an H200); the record says which.

Rows: MigaSampler at 320x512 with the paper's VC2 options (f0=16, L_zig=4, u=9, m_guid=6, self-reflection delta
0.01, CFG 12, ``ddim_uniform``; T given by ``--steps``, the paper's 64 by default), then FIFO mode (L_zig=1, u=0,
``euler_ancestral`` as FIFO-Diffusion's DDIM eta=1) on the same frames and steps. Each row records seconds per
frame (the node's sampling seconds over the frames; wall time around the node too), model calls (each a CFG batch
of 2 windows), peak VRAM (``torch.cuda.max_memory_allocated``, reset before the row, after the text encoder was
unloaded and a warm-up run loaded the UNet: weights + sampling), the reserved peak, and host RSS. The JSON is
written after every row.

``--official-json``: the output of the official FIFO-Diffusion speed run (a script outside this repository, run on
the same machine just before; see BENCHMARKS.md) is stored verbatim in the record, next to the rows, so the
report can put the three (paper, official code, this node) side by side. When the official run was made in another
device call, ``--attach-official F --out R`` stores F in the record of the existing result R instead (nothing is run;
the record says when and by which command it was attached, and F keeps its own command and date).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import resource
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402

SCRIPT = "benchmarks/vc2_node_gpu.py"
CKPT_NAME = "vc2_random_t2v_512.safetensors"
PROMPT = "A red fox trots through a snowy pine forest in soft morning light, the camera tracking alongside"
FPS = 8
# Last layer of each residual branch (zero-initialised in LVDM for the first four): drawn at a quarter of the usual
# scale so that 1.4e9 random parameters keep the residual stream within fp16's range.
RESIDUAL_OUTPUTS = ("out_layers.3.", "proj_out.", "conv4.3.", "to_out.0.", "ff.net.2.")
RESIDUAL_GAIN = 0.25

# OpenCLIP ViT-H/14 text tower (VC2's FrozenOpenCLIPEmbedder) and SD's KL-f8 VAE; TINY: the CPU smoke test's sizes.
CLIP_FULL = {"width": 1024, "layers": 24, "mlp": 4096, "vocab": 49408, "context": 77}
VAE_FULL = {"ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2}
UNET_TINY = {"model_channels": 64, "channel_mult": (1,), "num_res_blocks": 1, "attention_resolutions": (1,), "context_dim": 64,
             "init_attention_heads": 1}
CLIP_TINY = {"width": 64, "layers": 3, "mlp": 128, "vocab": 49408, "context": 77}  # ComfyUI's penultimate layer needs >= 3 layers
VAE_TINY = {"ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1}


def random_weights(shapes: Mapping[str, Sequence[int]], seed: int, device: str | torch.device = "cpu") -> Iterator[tuple[str, torch.Tensor]]:
    """Seeded random fp32 tensors for ``shapes`` (name -> shape), one at a time; none is all zeros.

    Each tensor is drawn from its own generator seeded by ``seed`` and the CRC32 of its name, so a tensor's values
    depend only on (seed, name, shape, device type), not on the order or on which other tensors exist: the official
    FIFO-Diffusion speed script (outside this repository) draws the same UNet from the reference code's names.
    Matrices and convolutions: N(0, 1/fan_in), times :data:`RESIDUAL_GAIN` for :data:`RESIDUAL_OUTPUTS`; 1-D
    ``weight`` (norm scales): 1 + 0.1 N(0, 1); everything else (biases, scalars, embeddings' 1-D parts): 0.02 N(0, 1).
    """
    for name, shape in shapes.items():
        shape = tuple(int(s) for s in shape)
        g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        n = torch.randn(shape, generator=g, device=device, dtype=torch.float32)
        if len(shape) >= 2:
            n = n / math.sqrt(max(1, math.prod(shape[1:])))
            if any(part in name for part in RESIDUAL_OUTPUTS):
                n = n * RESIDUAL_GAIN
        elif len(shape) == 1 and name.endswith("weight"):
            n = 1.0 + 0.1 * n
        else:
            n = 0.02 * n
        if n.numel() and not bool(n.abs().max() > 0):  # never with a normal draw; checked since the brief demands it
            raise AssertionError(f"random tensor {name} is all zeros")
        yield name, n


def openclip_text_shapes(width: int, layers: int, mlp: int, vocab: int, context: int) -> dict[str, tuple[int, ...]]:
    """Names (``model.*``, as under VC2's ``cond_stage_model.``) and shapes of an OpenCLIP text tower."""
    c = width
    shapes: dict[str, tuple[int, ...]] = {"model.token_embedding.weight": (vocab, c), "model.positional_embedding": (context, c),
                                          "model.ln_final.weight": (c,), "model.ln_final.bias": (c,),
                                          "model.text_projection": (c, c), "model.logit_scale": ()}
    for i in range(layers):
        p = f"model.transformer.resblocks.{i}."
        shapes.update({p + "ln_1.weight": (c,), p + "ln_1.bias": (c,), p + "ln_2.weight": (c,), p + "ln_2.bias": (c,),
                       p + "attn.in_proj_weight": (3 * c, c), p + "attn.in_proj_bias": (3 * c,),
                       p + "attn.out_proj.weight": (c, c), p + "attn.out_proj.bias": (c,), p + "mlp.c_fc.weight": (mlp, c),
                       p + "mlp.c_fc.bias": (mlp,), p + "mlp.c_proj.weight": (c, mlp), p + "mlp.c_proj.bias": (c,)})
    return shapes


def vae_shapes(ch: int, ch_mult: list[int], num_res_blocks: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of an SD KL autoencoder (4 latent channels) as ComfyUI builds it (``AutoencoderKL``)."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": ch, "ch_mult": ch_mult,
                "num_res_blocks": num_res_blocks, "attn_resolutions": [], "dropout": 0.0}
    with torch.device("meta"):
        net = AutoencoderKL(ddconfig=ddconfig, embed_dim=4)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def write_checkpoint(path: pathlib.Path, unet_config, clip: dict, vae: dict, dtype: torch.dtype, device: str, seed: int = 0) -> dict:
    """Write a random VC2 checkpoint (``model.diffusion_model.*``, ``cond_stage_model.model.*``, ``first_stage_model.*``)
    as safetensors in ``dtype``; returns the parameter count of each part."""
    from comfyui_miga.nodes.vc2_checkpoint import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX
    from comfyui_miga.nodes.vc2_unet import VC2UNet
    from safetensors.torch import save_file

    with torch.device("meta"):
        unet = {k: tuple(v.shape) for k, v in VC2UNet(unet_config, device="meta").state_dict().items()}
    sd, counts = {}, {}
    for part, prefix, shapes, s in (("unet", UNET_PREFIX, unet, seed), ("clip", CLIP_PREFIX, openclip_text_shapes(**clip), seed + 1),
                                    ("vae", VAE_PREFIX, vae_shapes(**vae), seed + 2)):
        counts[part] = sum(math.prod(v) for v in shapes.values())
        for name, t in random_weights(shapes, s, device):
            sd[prefix + name] = t.to(dtype).cpu().contiguous()
    save_file(sd, str(path))
    return counts


def rss_gib() -> dict:
    """Host memory of this process: current (VmRSS) and peak since start (ru_maxrss), GiB."""
    current = None
    try:
        line = next(x for x in pathlib.Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
        current = round(int(line.split()[1]) / 2**20, 2)
    except (OSError, StopIteration):
        pass
    return {"rss_gib": current, "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", default=None, help="a ComfyUI v0.8.0 checkout (required unless --attach-official)")
    ap.add_argument("--out", default="benchmarks/results/vc2_node_cuda.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny UNet, text tower and VAE (CPU smoke test)")
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=320)
    ap.add_argument("--frames", type=int, default=128, help="video frames (VC2: one latent per frame)")
    ap.add_argument("--steps", type=int, default=64, help="T (the paper's VC2 setting: 64)")
    ap.add_argument("--cfg", type=float, default=12.0)
    ap.add_argument("--window-length", type=int, default=None, help="f0 (default: the vc2 preset's 16; smaller only for the smoke test)")
    ap.add_argument("--zigzag-width", type=int, default=None, help="L_zig of the miga row (default: the vc2 preset's 4)")
    ap.add_argument("--unified-steps", type=int, default=None, help="u of the miga row (default: the vc2 preset's 9)")
    ap.add_argument("--num-guidance", type=int, default=None, help="m_guid of the miga row (default: the vc2 preset's 6)")
    ap.add_argument("--modes", default="miga,fifo", help="rows to run, in order: miga, fifo")
    ap.add_argument("--official-json", default=None, help="JSON written by the official FIFO-Diffusion speed run, stored in the record")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights and of the sampler's noise")
    ap.add_argument("--attach-official", default=None, metavar="JSON",
                    help="store this official FIFO-Diffusion speed JSON in the existing --out result; runs nothing")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.attach_official:
        return attach_official(pathlib.Path(args.attach_official), record.resolve_out(args.out), argv)
    if not args.comfyui:
        ap.error("--comfyui is required (a ComfyUI v0.8.0 checkout)")
    t_start, date = time.perf_counter(), record.now()
    from benchmarks.wan_node_gpu import comfyui_version, start_comfyui

    start_comfyui(args.comfyui, args.device)
    import comfy.model_management as mm
    import folder_paths
    from comfyui_miga.miga_core import GuidanceOptions, ReflectionOptions, preset
    from comfyui_miga.nodes.nodes_sampler import MigaSampler
    from comfyui_miga.nodes.nodes_vc2 import MigaVC2Loader
    from comfyui_miga.nodes.vc2_unet import VC2_T2V_512_V2, VC2UNetConfig

    cuda = args.device.startswith("cuda")
    unet_config = VC2UNetConfig(**UNET_TINY) if args.tiny else VC2_T2V_512_V2
    file_dtype = torch.float16 if cuda else torch.float32
    folder = pathlib.Path(tempfile.mkdtemp(prefix="vc2_random_ckpt_"))
    t0 = time.perf_counter()
    counts = write_checkpoint(folder / CKPT_NAME, unet_config, CLIP_TINY if args.tiny else CLIP_FULL, VAE_TINY if args.tiny else VAE_FULL,
                              file_dtype, args.device, args.seed)
    write_s = time.perf_counter() - t0
    folder_paths.add_model_folder_path("checkpoints", str(folder), is_default=True)
    t0 = time.perf_counter()
    model, clip, _vae = MigaVC2Loader.execute(CKPT_NAME, FPS).result
    load_s = time.perf_counter() - t0
    shutil.rmtree(folder)  # 3.7 GB at full size; the loaded model holds its own tensors
    with torch.inference_mode():
        positive = clip.encode_from_tokens_scheduled(clip.tokenize(PROMPT))  # CLIPTextEncode's call
        negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))  # VC2's unconditional input: the empty prompt
    context = positive[0][0]
    del clip, _vae
    mm.unload_all_models()
    mm.soft_empty_cache()

    paper, guidance, reflection = preset("vc2")
    f0 = args.window_length or paper.window_length
    lz = args.zigzag_width or paper.zigzag_width
    u = paper.unified_steps if args.unified_steps is None else args.unified_steps
    m_guid = guidance.num_guidance if args.num_guidance is None else args.num_guidance
    rows_spec = {
        "miga": {"mode": "miga", "zigzag_width": lz, "unified_steps": u, "sampler": "euler", "guidance": GuidanceOptions(m_guid),
                 "reflection": ReflectionOptions(threshold=reflection.threshold)},
        "fifo": {"mode": "fifo", "zigzag_width": 1, "unified_steps": 0, "sampler": "euler_ancestral", "guidance": None,
                 "reflection": None},
    }
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in rows_spec]
    if unknown:
        ap.error(f"--modes: {unknown} not among {sorted(rows_spec)}")

    def sample(frames: int, steps: int, spec: dict) -> tuple[dict, dict]:
        with torch.inference_mode():
            out = MigaSampler.execute(model, positive, negative, args.width, args.height, frames, 1, args.seed, steps, args.cfg,
                                      "ddim_uniform", spec["mode"], f0, spec["zigzag_width"], spec["unified_steps"],
                                      spec["sampler"], 0, "lookahead", 1, guidance=spec["guidance"], reflection=spec["reflection"],
                                      borders="fixed")
        latent, report = out.result
        return latent, json.loads(report)

    # warm-up on the GPU: loads the UNet onto it (ComfyUI's model management) and initialises the kernels, untimed
    t0 = time.perf_counter()
    if cuda:
        sample(1, f0, rows_spec["fifo"])
    warmup_s = time.perf_counter() - t0

    def run(name: str) -> dict:
        spec = rows_spec[name]
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        latent, report = sample(args.frames, args.steps, spec)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        samples = latent["samples"]
        assert tuple(samples.shape) == (1, 4, args.frames, args.height // 8, args.width // 8), samples.shape
        assert bool(torch.isfinite(samples).all()), "non-finite latents"
        seconds = report["seconds"]
        row = {"mode": name, "num_pixel_frames": args.frames, "num_latents": report["num_frames"], "steps": args.steps, "cfg": args.cfg,
               "window_length": f0, "sampler": spec["sampler"], "zigzag_width": spec["zigzag_width"], "unified_steps": spec["unified_steps"],
               "num_guidance": spec["guidance"].num_guidance if spec["guidance"] else 0,
               "reflection_threshold": spec["reflection"].threshold if spec["reflection"] else None,
               "model_calls": report["model_calls"], "model_calls_per_frame": round(report["model_calls"] / args.frames, 3),
               "windows_planned": report["windows_planned"],
               "reflection_n_all": report["reflection"]["n_all"], "reflection_n_corr": report["reflection"]["n_corr"]}
        if cuda:
            row["peak_vram_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
            row["peak_vram_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20)
        row.update(rss_gib())
        row["timing"] = {"sampling_s": round(seconds, 2), "wall_s": round(wall, 2), "s_per_frame": round(seconds / args.frames, 4),
                         "s_per_model_call": round(seconds / report["model_calls"], 4)}
        print(json.dumps(row), flush=True)
        return row

    official = None
    if args.official_json:
        p = pathlib.Path(args.official_json)
        official = json.loads(p.read_text()) if p.exists() else {"missing": f"{args.official_json} was not written (the official run failed or timed out)"}
    unet = model.model.diffusion_model
    head = record.header(SCRIPT, {k: v for k, v in vars(args).items() if k not in ("out", "comfyui")}, args.device, dtype=model.model.get_dtype(),
                         code=("miga_core", "nodes", "__init__.py", "benchmarks/record.py", "benchmarks/wan_node_gpu.py"), argv=argv)
    head.update({
        "model": ("VideoCrafter2 t2v 512 architecture (LVDM 3D UNet, OpenCLIP ViT-H/14 text tower, SD KL-f8 VAE), random weights"
                  if not args.tiny else "tiny VC2-layout checkpoint"),
        "loaded_through": "MigaVC2Loader (a random safetensors checkpoint in a temporary checkpoints folder); prompts through "
                          "ComfyUI's SD2 text encoder with random weights (CLIPTextEncode's call)",
        "weights": "benchmarks/vc2_node_gpu.py random_weights (seeded per tensor; no tensor all zeros)",
        "parameters": counts, "file_dtype": str(file_dtype).removeprefix("torch."),
        "unet_dtype": str(next(unet.parameters()).dtype).removeprefix("torch."),
        "manual_cast_dtype": str(model.model.manual_cast_dtype).removeprefix("torch.") if model.model.manual_cast_dtype else None,
        "context_shape": list(context.shape),
        "preset": f"vc2 (f0={paper.window_length}, L_zig={paper.zigzag_width}, u={paper.unified_steps}, m_guid={guidance.num_guidance}, "
                  f"reflection delta={reflection.threshold}), scheduler ddim_uniform, fps {FPS}; this run: f0={f0}, L_zig={lz}, u={u}, "
                  f"m_guid={m_guid}",
        "peak_vram_measures": "UNet weights resident (loaded by the warm-up) + one row's sampling; text encoder and VAE unloaded",
        "comfyui": comfyui_version(args.comfyui),
        "official_fifo": official,
    })
    out = record.resolve_out(args.out)
    rows = []
    for name in modes:
        rows.append(run(name))
        timing = {"date": date, "seconds": round(time.perf_counter() - t_start, 1),
                  "setup_s": {"write_checkpoint": round(write_s, 1), "load_checkpoint": round(load_s, 1), "warmup": round(warmup_s, 1)}}
        record.write(out, "vc2_node", head, rows, timing)  # after each row
    return 0


def attach_official(official: pathlib.Path, out: pathlib.Path, argv: list[str]) -> int:
    """Put the official run's JSON into ``out``'s record where that run was missing; refuse to replace one."""
    data = json.loads(out.read_text())
    if data.get("benchmark") != "vc2_node":
        raise SystemExit(f"--out {out}: not a vc2_node result (benchmark {data.get('benchmark')!r}); give the file this script wrote")
    present = data["record"].get("official_fifo")
    if isinstance(present, dict) and "s_per_frame" in present:
        raise SystemExit(f"--out {out} already holds an official run ({present.get('date')}); re-run this script to replace it")
    measured = json.loads(official.read_text())
    if "s_per_frame" not in measured:
        raise SystemExit(f"--attach-official {official}: no s_per_frame; give the JSON the official speed run wrote")
    data["record"]["official_fifo"] = measured
    data["record"]["official_fifo_attached"] = {"command": "python " + " ".join([SCRIPT, *argv]), "date": record.now()}
    record.write(out, data["benchmark"], data["record"], data["rows"], data["timing"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
