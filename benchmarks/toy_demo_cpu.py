"""How long the toy CPU demo workflow takes inside ComfyUI, on the CPU, with its shipped options and with variants (issue 12).

    python benchmarks/toy_demo_cpu.py --comfyui /path/to/ComfyUI          # benchmarks/results/toy_demo_cpu.json
    python benchmarks/toy_demo_cpu.py --comfyui /path/to/ComfyUI --frames 33 --variants shipped --out /tmp/demo.json

The template "MIGA toy CPU demo - no download 257 frames" (its API twin in workflows/api/) is validated as POST /prompt
does and run by ComfyUI's own ``execution.PromptExecutor`` (benchmarks/peer_comfy.py's in-process ComfyUI), with
``--threads`` torch threads (the issue's machine has 2 cores). Each variant changes only MigaSampler widgets
(``window_batch`` packs several windows of a pass into one model call: the same windows and noise [D1], though
batched float32 products on the CPU may differ in the last bits, which can flip a self-reflection decision; ``steps``
changes the video). Per variant: wall seconds of the whole graph (toy loader to the MP4), the frames in the MP4 and the
identity accuracy of each prompt's segment of the decoded file (toyworld.metrics), how many frames after its scheduled
frame the colour switch shows (a late switch lowers the second segment's identity), and the frames without the object,
so a faster variant that makes a worse video shows it. The first run of the process also pays one-time imports; a warm-up run of a short video comes first.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from benchmarks.peer_comfy import Comfy  # noqa: E402

SCRIPT = "benchmarks/toy_demo_cpu.py"
DEMO = ROOT / "workflows" / "api" / "MIGA toy CPU demo - no download 257 frames.api.json"
VARIANTS = {  # MigaSampler widget changes (steps=48: the toy preset's TOY_STEPS)
    "shipped": {},
    "steps=48": {"steps": 48},
    "steps=32": {"steps": 32},
    "steps=24": {"steps": 24},
    "steps=20": {"steps": 20},
    "steps=16": {"steps": 16},
    "window_batch=8": {"window_batch": 8},
}


def demo_prompt(frames: int, changes: dict) -> tuple[dict, int]:
    """The demo's API prompt at ``frames`` frames (the prompt switch at the middle) with MigaSampler ``changes``."""
    prompt = copy.deepcopy(json.loads(DEMO.read_text()))
    switch = None
    for node in prompt.values():
        if node["class_type"] == "MigaSampler":
            node["inputs"].update(num_pixel_frames=frames, **changes)
        if node["class_type"] == "MigaPromptScheduleConditioning":
            switch = (frames - 1) // 2
            node["inputs"]["start_frames"] = f"0, {switch}"
    return prompt, switch


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--out", default="benchmarks/results/toy_demo_cpu.json")
    ap.add_argument("--frames", type=int, default=257)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0, date = time.perf_counter(), record.now()
    comfy = Comfy(args.comfyui, "cpu", None)
    import folder_paths

    world, metrics, video_io = (comfy.host.toyworld(m) for m in ("world", "metrics", "video"))
    head = record.header(SCRIPT, vars(args), "cpu", dtype=torch.float32, argv=argv)
    out, rows = record.resolve_out(args.out), []
    comfy.run(demo_prompt(17, {})[0])  # warm-up: imports, model load
    for name in args.variants.split(","):
        prompt, switch = demo_prompt(args.frames, VARIANTS[name])
        save = next(k for k, n in prompt.items() if n["class_type"] == "MigaSaveVideo")
        t = time.perf_counter()
        comfy.run(prompt)
        seconds = time.perf_counter() - t
        (result,) = comfy.executor.history_result["outputs"][save]["images"]
        path = pathlib.Path(folder_paths.get_output_directory()) / result["subfolder"] / result["filename"]
        video = video_io.read_mp4(path)
        texts = [n["inputs"]["text"] for n in prompt.values() if n["class_type"] == "MigaToyPrompt" and n["inputs"]["text"]]
        segs = [world.ClipSpec(shape=next(w for w in t.split() if w in world.SHAPES),
                               colour=next(w for w in t.split() if w in world.COLOURS)) for t in texts]  # what identity reads
        ident = [metrics.identity_accuracy(video[:switch], segs[0]), metrics.identity_accuracy(video[switch:], segs[1])]
        objects = metrics.object_measures(video)  # colour-blind, whole video: a frame without the object is absent
        rows.append({"variant": name, "changes": VARIANTS[name], "mp4_frames": int(video.shape[0]),
                     "identity_first": round(ident[0], 4), "identity_second": round(ident[1], 4),
                     "switch_error_frames": metrics.switch_error(video, segs, [0, switch])["errors"][0],
                     "absent_frames": round((1 - objects["presence"]) * int(video.shape[0])), "blink_count": objects["blink_count"],
                     "timing": {"seconds": round(seconds, 1), "seconds_per_frame": round(seconds / args.frames, 4)}})
        print(json.dumps(rows[-1]), flush=True)
        record.write(out, "toy_demo_cpu", head, rows, {"date": date, "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
