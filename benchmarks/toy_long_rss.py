"""Peak host memory of a streamed long run: 10,000 frames to MP4 against 1,000 frames (issue 11).

    python benchmarks/toy_long_rss.py                      # CPU: benchmarks/results/toy_long_rss_cpu.json
    python benchmarks/toy_long_rss.py --frames 64 256 --out /tmp/rss.json     # quick check

Each length runs in a fresh subprocess (this script with ``--child``): MIGA on a ToyDiT (the toy preset: f0 = 16,
L_zig = 4, u = 6, long-range guidance m = 4; self-reflection off unless ``--reflection``), streamed with
``miga_core.run(..., sink=...)``: the finished latents go, a chunk at a time, to an H.264 MP4 through the pack's
chunked writer (``nodes/video_file.py``, 32x32 frames upscaled 4x). The parent waits for the child with
``os.wait4`` and records that child's peak resident memory (``ru_maxrss``), then decodes the MP4 and counts its
frames. Rows: frames asked and written, peak RSS (MiB) and its ratio to the first length's (the aim: <= 1.05),
model calls; the seconds sit in ``timing``. ``--in-memory`` adds the same lengths run without a sink (the whole
video returned, then written), as a control that the measure sees a run that holds the video.

The model is a small ToyDiT (``--dim 32 --depth 1 --heads 1``), randomly initialised from ``--model-seed`` with
every layer drawn from N(0, 0.02^2) (so its output is not the identity that ToyDiT's zero-initialised output
layers give), and ``--steps 12`` (the fewest the toy preset allows is 11): what is measured is memory, which the
model's weights (a few KB) and the steps do not grow with the length; the shipped 2.9M-parameter model at T = 24
would take hours of CPU for 10,000 frames here. One torch thread (``--threads``) keeps the allocator's arenas alike.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCRIPT = "benchmarks/toy_long_rss.py"
CODE = ("miga_core", "toyworld", "benchmarks/record.py", "nodes/video_file.py")
MP4_SCALE, MP4_FPS = 4, 16
AIM = 1.05  # the bound on peak RSS(10,000 frames) / peak RSS(1,000 frames)


def video_file_module():
    """``nodes/video_file.py`` without ComfyUI: loaded under a stand-in package (``nodes/__init__`` imports comfy_api)."""
    pack = sys.modules.get("miga_pack_bench") or types.ModuleType("miga_pack_bench")
    pack.__path__ = [str(ROOT)]
    sys.modules["miga_pack_bench"] = pack
    folder = sys.modules.get("miga_pack_bench.nodes") or types.ModuleType("miga_pack_bench.nodes")
    folder.__path__ = [str(ROOT / "nodes")]
    sys.modules["miga_pack_bench.nodes"] = folder
    return importlib.import_module("miga_pack_bench.nodes.video_file")


def child(args: argparse.Namespace) -> dict:
    """One run in this process: generate ``args.num_frames`` frames into ``args.mp4``; a dict for the parent."""
    import torch

    from miga_core import plan_run, run
    from toyworld.model import ToyDenoiser, ToyDiT, ToyDiTConfig
    from toyworld.sampling import ladder, toy_preset
    from toyworld.train import EVAL_SEED_BASE
    from toyworld.world import sample_spec

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.model_seed)
    model = ToyDiT(ToyDiTConfig(dim=args.dim, depth=args.depth, heads=args.heads))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    model.eval()
    spec = sample_spec(EVAL_SEED_BASE + args.seed)
    denoiser = ToyDenoiser(model, torch.tensor([[spec.attributes()]]), cfg_scale=3.0)
    config, guidance, reflection = toy_preset()
    config = config.with_(seed=args.seed)
    sigmas = ladder(args.steps)
    plan = plan_run(config, args.steps, args.num_frames, guidance=guidance, reflection=reflection if args.reflection else None)
    size = model.config.size
    writer = video_file_module().VideoFileWriter(args.mp4, size * MP4_SCALE, size * MP4_SCALE, MP4_FPS, crf=18)

    def write(latents: torch.Tensor) -> None:  # [1, 3, n, 32, 32] in [-1, 1] -> frames [1, 128, 128, 3] in [0, 1]
        frames = ((latents[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0)
        for frame in frames.split(1):  # one upscaled frame at a time: no 12 MiB float chunks between the encoder's buffers
            writer.write(frame.repeat_interleave(MP4_SCALE, dim=1).repeat_interleave(MP4_SCALE, dim=2))

    t0 = time.perf_counter()
    with writer, torch.no_grad():
        if args.in_memory:
            result = run(denoiser, sigmas, plan, latent_shape=(1, 3, size, size))
            for a in range(0, args.num_frames, args.chunk):
                write(result.latents[:, :, a:a + args.chunk])
        else:
            result = run(denoiser, sigmas, plan, latent_shape=(1, 3, size, size), sink=write, spill_dir=args.spill_dir,
                         spill_chunk=args.chunk)
    return {"model_calls": result.model_calls, "num_windows": result.num_windows, "seconds": round(time.perf_counter() - t0, 2),
            "self_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def count_frames(path: str) -> int:
    """Frames in a video file, decoded one by one."""
    import av

    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


def measure(num_frames: int, in_memory: bool, args: argparse.Namespace, folder: str) -> dict:
    """Run one length in a fresh subprocess; its row."""
    mp4 = os.path.join(folder, f"toy_{num_frames}_{'memory' if in_memory else 'stream'}.mp4")
    cmd = [sys.executable, str(ROOT / SCRIPT), "--child", "--num-frames", str(num_frames), "--mp4", mp4,
           "--spill-dir", folder, *(["--in-memory"] if in_memory else []), *(["--reflection"] if args.reflection else []),
           *[f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("steps", "seed", "model_seed", "dim", "depth", "heads",
                                                                     "chunk", "threads")]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN would keep the max of all)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child for {num_frames} frames failed with exit code {proc.returncode}")
    got = json.loads(out.strip().splitlines()[-1])
    written = count_frames(mp4)
    os.remove(mp4)
    return {"num_frames": num_frames, "mode": "in_memory" if in_memory else "streamed", "frames_written": written,
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "model_calls": got["model_calls"], "num_windows": got["num_windows"],
            "timing": {"seconds": got["seconds"], "process_seconds": round(time.perf_counter() - t0, 1)}}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[1000, 10000], help="video lengths (frames = latents), the first is the baseline")
    ap.add_argument("--steps", type=int, default=12, help="ladder steps T (>= 11 with the toy preset)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed and prompt")
    ap.add_argument("--model-seed", type=int, default=0, help="seed of the random ToyDiT weights")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=64, help="spill_chunk: latents per spill read/write and per sink call")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each child")
    ap.add_argument("--reflection", action="store_true", help="self-reflection on (the toy preset's)")
    ap.add_argument("--in-memory", action="store_true", help="also run every length in memory (no sink), as a control")
    ap.add_argument("--out", default="benchmarks/results/toy_long_rss_cpu.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--num-frames", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mp4", help=argparse.SUPPRESS)
    ap.add_argument("--spill-dir", help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    from benchmarks import record

    options = {k: v for k, v in vars(args).items() if k not in ("out", "child", "num_frames", "mp4", "spill_dir")}
    head = record.header(SCRIPT, options, "cpu", code=CODE, argv=sys.argv[1:] if argv is None else argv)
    head["aim"] = f"peak RSS of the longest streamed run <= {AIM} x that of the first length"
    t0, date, rows = time.perf_counter(), record.now(), []
    runs = [(n, False) for n in args.frames] + ([(n, True) for n in args.frames] if args.in_memory else [])
    with tempfile.TemporaryDirectory(prefix="miga-rss-") as folder:
        for n, in_memory in runs:
            row = measure(n, in_memory, args, folder)
            base = next((r for r in rows if r["mode"] == row["mode"]), row)
            row["peak_rss_vs_first"] = round(row["peak_rss_mib"] / base["peak_rss_mib"], 4)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
            record.write(record.resolve_out(args.out), "toy_long_rss", head, rows,
                         {"date": date, "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
