"""The main job: a long, prompt-scheduled MIGA video from the shipped toy model, on the CPU.

    python -m toyworld.demo --num-frames 256 --out out/demo

Loads ``toyworld/weights/toy_dit.safetensors`` (trained by ``toyworld.train``), generates
``--num-frames`` frames with MIGA (two stages, long-range guidance, self-reflection) under a
two-prompt schedule (the object changes colour halfway), shows a progress bar, and writes
``video.mp4`` (128x128, 16 fps: 256 frames are 16 s) and ``metrics.json`` (the toy world's
VBench-style metrics of each prompt's segment, the switch timing, model calls and time).

Every option is checked before the model runs (frame count, steps, seed, weights file, output
folder, PyAV): a bad one ends the program with one line naming the flag, the value, the
allowed range and the fix, and exit code 2. 256 frames take about 3.5 minutes on 2 idle CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import tempfile
import time
from dataclasses import dataclass, fields

import torch

from ._core import MigaConfig, MigaError, MigaValueError, PromptSchedule, WindowInfo, bad_value, plan_run

from .metrics import evaluate, switch_error
from .model import ToyDiT, ToyDiTConfig
from .sampling import TOY_STEPS, generate_videos, toy_preset
from .train import EVAL_SEED_BASE
from .video import write_mp4
from .world import COLOURS, ClipSpec, sample_spec

__all__ = ["WEIGHTS", "MIN_FRAMES", "OUTPUTS", "ProgressBar", "build_parser", "check_args", "load_weights", "main", "run"]

WEIGHTS = pathlib.Path(__file__).resolve().parent / "weights" / "toy_dit.safetensors"
OUTPUTS = ("video.mp4", "metrics.json")  # what --out receives
MIN_SEGMENT = 3  # frames per prompt: motion smoothness compares a frame with both neighbours (metrics.evaluate)
MIN_FRAMES = 2 * MIN_SEGMENT  # two prompts, the switch at num_frames // 2
MP4_SCALE, MP4_FPS = 4, 16  # 32x32 frames upscaled to 128x128, 16 frames per second


def min_steps(config: MigaConfig) -> int:
    """The fewest ladder steps T a two-stage run accepts: ``T >= u + ceil(f0 / L_zig) + 1`` [D4].

    With the toy preset (f0 = 16, L_zig = 4, u = 6) that is 11.
    """
    return config.unified_steps + math.ceil(config.window_length / config.zigzag_width) + 1


class ProgressBar:
    """A one-line progress bar on stderr, redrawn when the percentage or the stage changes."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.shown: tuple[int, str] | None = None

    def __call__(self, info: WindowInfo) -> None:
        total = max(1, info.total_windows)
        key = (100 * info.window // total, info.stage)
        if key == self.shown and info.window != info.total_windows:
            return
        self.shown = key
        done = self.width * min(info.window, total) // total
        eta = getattr(info, "eta_seconds", None)  # present from the run-plan API on
        eta_text = f" ETA {eta / 60:4.1f} min" if eta is not None else ""
        sys.stderr.write(f"\r[{'#' * done}{'.' * (self.width - done)}] {key[0]:3d}% window {info.window}/{info.total_windows} "
                         f"{info.stage:<12} frames {info.frames_done}/{info.num_frames}{eta_text}")
        sys.stderr.flush()


def build_parser() -> argparse.ArgumentParser:
    """The command line; ranges in the help text come from the toy preset."""
    config = toy_preset()[0]
    n_zig = math.ceil(config.window_length / config.zigzag_width)
    ap = argparse.ArgumentParser(prog="python -m toyworld.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--num-frames", type=int, default=256, metavar="N",
                    help=f"frames to generate, one latent each; at least {MIN_FRAMES} ({MIN_SEGMENT} per prompt, "
                         f"for the metrics). The MP4 plays {MP4_FPS} frames per second. Default: 256")
    ap.add_argument("--steps", type=int, default=TOY_STEPS, metavar="T",
                    help=f"ladder steps T; at least --unified-steps + {n_zig + 1} ({min_steps(config)} with the default "
                         f"--unified-steps {config.unified_steps}). Time grows about linearly with T. Default: {TOY_STEPS}")
    ap.add_argument("--unified-steps", type=int, default=config.unified_steps, metavar="U",
                    help=f"steps left to the unified stage, 0 .. T - {n_zig + 1} (the paper's u) [D4]. "
                         f"Default: {config.unified_steps}")
    ap.add_argument("--seed", type=int, default=0, help="noise seed and prompt choice, >= 0. Default: 0")
    ap.add_argument("--weights", type=pathlib.Path, default=WEIGHTS,
                    help="a ToyDiT safetensors file written by python -m toyworld.train. Default: the shipped one")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/demo"),
                    help=f"folder for {' and '.join(OUTPUTS)}; created if missing; must not hold them already "
                         "unless --overwrite is given. Default: out/demo")
    ap.add_argument("--overwrite", action="store_true", help=f"replace {' and '.join(OUTPUTS)} if --out holds them")
    return ap


@dataclass(frozen=True)
class Job:
    """A checked command line: everything :func:`run` needs."""

    model: ToyDiT
    config: MigaConfig
    prompts: tuple[ClipSpec, ClipSpec]
    switch: int  # first frame of the second prompt
    num_frames: int
    steps: int
    out: pathlib.Path


def _need_int(flag: str, value: int, low: int, high: int | None, fix: str) -> None:
    if value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise MigaValueError(bad_value(flag, value, allowed, fix))


def load_weights(path: pathlib.Path) -> ToyDiT:
    """Load a ToyDiT from ``--weights``, refusing any file that is not one.

    Raises:
        MigaValueError: naming ``--weights`` when the file is missing, not safetensors, has no
            ToyDiT config in its metadata (not written by ``toyworld.train``), or its tensors do
            not match that config.
    """
    from safetensors import SafetensorError, safe_open

    fix = f"pass a file written by python -m toyworld.train, or leave --weights out for the shipped {WEIGHTS.name}"

    def refuse(what: str) -> MigaValueError:
        return MigaValueError(bad_value("--weights", str(path), f"a ToyDiT safetensors file ({what})", fix))

    if not path.is_file():
        raise refuse("no such file" if not path.exists() else "this is not a file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError) as err:
        raise refuse(f"this one is not safetensors: {err}") from err
    try:
        options = json.loads(meta["config"])
        options["vocab"] = tuple(options["vocab"])
        config = ToyDiTConfig(**options)
    except (KeyError, TypeError, ValueError) as err:  # missing key, wrong fields, bad JSON
        names = ", ".join(f.name for f in fields(ToyDiTConfig))
        raise refuse(f"its metadata must hold 'config' with the fields {names}; this one holds {sorted(meta)}") from err
    model = ToyDiT(config)
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise refuse(f"its tensors do not match its config: {first}") from err
    return model.eval()


def _check_out(out: pathlib.Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MigaValueError(bad_value("--out", str(out), "a folder (new or existing); this is a file", "pass a folder path"))
    held = [name for name in OUTPUTS if (out / name).exists()]
    if held and not overwrite:
        raise MigaValueError(bad_value("--out", str(out), f"a folder that does not hold {' or '.join(OUTPUTS)} yet "
                                       f"(it holds {', '.join(held)})", "pass another --out, or add --overwrite to replace them"))
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise MigaValueError(bad_value("--out", str(out), f"a folder path; {parent} is a file", "pass a folder path"))


def _prepare_out(out: pathlib.Path) -> None:
    """Create ``out`` and write a probe file there, so an unwritable folder fails now, not after generating."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        raise MigaValueError(bad_value("--out", str(out), "a folder this user can create and write",
                                       f"pass a writable folder ({err.strerror or err})")) from err


def _check_pyav() -> None:
    try:
        import av
    except ImportError as err:
        raise MigaValueError("PyAV is not installed: allowed is an environment with PyAV, which writes video.mp4. "
                             "Fix: python -m pip install av.") from err
    if not any(codec in av.codecs_available for codec in ("libx264", "h264")):
        raise MigaValueError("this PyAV build has no H.264 encoder for video.mp4. "
                             "Fix: python -m pip install --force-reinstall av.")


def check_args(args: argparse.Namespace) -> Job:
    """Check every option before anything is generated; returns the :class:`Job` to :func:`run`.

    Side effect, only when every other check passed: ``--out`` is created and a probe file
    written and removed there.

    Raises:
        MigaValueError: naming the CLI flag (``--num-frames``, ``--steps``, ``--unified-steps``,
            ``--seed``, ``--weights``, ``--out``), its value, the allowed range and the fix; or
            naming PyAV when it is missing.
        MigaError: anything else miga_core refuses for these options, before any model call.
    """
    config = toy_preset()[0]
    _need_int("--num-frames", args.num_frames, MIN_FRAMES, None,
              f"ask for at least {MIN_FRAMES} frames: each of the two prompts needs {MIN_SEGMENT} for the metrics")
    n_zig = math.ceil(config.window_length / config.zigzag_width)
    _need_int("--unified-steps", args.unified_steps, 0, None, f"use the default {config.unified_steps}, or 0 for no unified stage")
    lowest = min_steps(config.with_(unified_steps=args.unified_steps))
    most_u = args.steps - n_zig - 1  # the largest --unified-steps these --steps allow
    _need_int("--steps", args.steps, lowest, None,
              f"use --steps {max(TOY_STEPS, lowest)} (T >= --unified-steps {args.unified_steps} + {n_zig + 1} [D4])"
              + (f", or lower --unified-steps to {most_u} or less" if 0 <= most_u < args.unified_steps else ""))
    _need_int("--seed", args.seed, 0, None, "use a seed >= 0, e.g. 0")
    model = load_weights(args.weights)
    if model.config.frames < config.window_length:
        raise MigaValueError(bad_value("--weights", str(args.weights), f"a ToyDiT trained on >= {config.window_length} frames "
                                       f"(the toy preset's window); this one has {model.config.frames}", "leave --weights out"))
    _check_out(args.out, args.overwrite)
    _check_pyav()
    config = config.with_(seed=args.seed, unified_steps=args.unified_steps)
    first = sample_spec(EVAL_SEED_BASE + args.seed)
    second = first.with_(colour=COLOURS[(COLOURS.index(first.colour) + 2) % len(COLOURS)])
    switch = args.num_frames // 2
    # Whatever else miga_core would refuse for these options, its run plan refuses now.
    _, guidance, reflection = toy_preset()
    plan_run(config, args.steps, args.num_frames, guidance=guidance, reflection=reflection,
             prompts=PromptSchedule((0, switch), (0, 1), 2))
    _prepare_out(args.out)
    return Job(model, config, (first, second), switch, args.num_frames, args.steps, args.out)


def run(job: Job) -> dict:
    """Generate the video of a checked :class:`Job`, write ``video.mp4`` and ``metrics.json``, return the metrics."""
    first, second = job.prompts
    _, guidance, reflection = toy_preset()
    t0 = time.perf_counter()
    with torch.no_grad():
        result = generate_videos(job.model, [[first, second]], job.num_frames, job.config, starts=(0, job.switch),
                                 steps=job.steps, guidance=guidance, reflection=reflection, callback=ProgressBar())
    seconds = time.perf_counter() - t0
    sys.stderr.write("\n")
    video = result.video[0]
    write_mp4(str(job.out / "video.mp4"), video, fps=MP4_FPS, scale=MP4_SCALE)
    stats = result.result.reflection
    calls = result.model_calls
    metrics = {
        "prompts": {"0": first.prompt(), str(job.switch): second.prompt()},
        "num_frames": job.num_frames,
        "steps": job.steps,
        "unified_steps": job.config.unified_steps,
        "seed": job.config.seed,
        "seconds": round(seconds, 2),
        "seconds_per_frame": round(seconds / job.num_frames, 4),
        "model_calls": calls,
        "model_calls_per_frame": round(calls / job.num_frames, 3),
        "first_segment": evaluate(video[:job.switch], first),
        "second_segment": evaluate(video[job.switch:], second),
        "switch": switch_error(video, [first, second], [0, job.switch]),
        "reflection": {"n_all": stats.n_all, "n_eval": stats.n_eval, "n_corr": stats.n_corr,
                       "R_corr": round(stats.r_corr, 4), "R_succ": round(stats.r_succ, 4)},
    }
    (job.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    side = video.shape[-1] * MP4_SCALE
    sys.stderr.write(f"wrote {job.out / 'video.mp4'} ({side}x{side}, {job.num_frames} frames = {job.num_frames / MP4_FPS:g} s "
                     f"at {MP4_FPS} fps) and metrics.json in {seconds / 60:.1f} min\n")
    print(json.dumps(metrics, default=float))
    return metrics


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 after writing the outputs, 2 (one line on stderr) for a refused option."""
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on a malformed flag
    try:
        run(check_args(args))
    except MigaError as err:
        sys.stderr.write(f"{parser.prog}: error: {' '.join(str(err).split())}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
