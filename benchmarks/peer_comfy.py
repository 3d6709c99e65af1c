"""MIGA against what ComfyUI users run for long videos, on the toy model, through ComfyUI's own executor (issue 12).

    python benchmarks/peer_comfy.py --comfyui .comfyui --workers 12 --worker-gpus 1   # two GPUs: results/peer_comfy_cuda.json
    python benchmarks/peer_comfy.py --comfyui .comfyui --workers 8 --sweep-prompts 4  # one GPU
    python benchmarks/peer_comfy.py --comfyui .comfyui --workers 14 --sweep-prompts 4 --part core     # in two device calls:
    python benchmarks/peer_comfy.py --comfyui .comfyui --sweep-prompts 4 --part miga --out benchmarks/results/peer_comfy_miga_cuda.json
    python benchmarks/peer_comfy.py --comfyui /path/to/ComfyUI --device cpu --tiny --toy-weights tiny.safetensors \\
        --out /tmp/peer.json                                                  # smoke test (tests/host/test_peer_comfy.py)

Every row generates the videos of benchmarks/toy_quality.py (prompt p is ``sample_spec(PROMPT_SEED_BASE + p)``, noise
seeds 0..S-1, video i has seed i // P and prompt i % P), once with one prompt per video and once with two (the colour
changes at the middle frame, as toy_quality's ``multi_prompt`` rows), and scores them with ``toyworld.metrics`` exactly
as toy_quality does (per video, so the report can compare rows video by video). Each batch of P videos is one API-format
prompt (context windows: P prompts of one video each, below) validated as POST /prompt does (the pack's on-prompt
handler first) and run by ``execution.PromptExecutor`` (no cache between prompts: every node runs every time, as in a
fresh queue); what is timed is that run, from the loader to the last node. Rows:

- ``MIGA (default profile)``: MigaSampler with the pack's default profile at the toy's size (:func:`default_profile`:
  the toy preset, window 16, zigzag 4, unified 6, MIGA Long-Range Guidance 4, MIGA Self-Reflection at threshold 0.01,
  with the official choices the nodes default to since issue 9: rotating borders, the official update rule and guidance
  positions, self-reflection during queue building; toy_quality's ``+official choices (wan21 default)``); two prompts
  through MigaPromptScheduleConditioning.
- ``MIGA (official profile)``: the same graph with the authors' released loop scaled to the toy (toy_quality's
  ``official profile`` row: uni_pc, rotating borders, official build/update rules, refinement pass, official
  reflection and guidance positions). The node has no widgets for these options, so the row's sampler node is
  ``PeerMigaProfileSampler``, MigaSampler with one more input: a JSON of option changes applied to the options its
  widgets and option nodes give (the run itself is MigaSampler's, ``runner.sample``).
- ``FIFO-Diffusion``: MigaSampler in ``fifo`` mode (zigzag 1, unified 0, no guidance or reflection).
- ``context windows (defaults)``: core ContextWindowsManual at its defaults (length 16, overlap 4, standard_static,
  stride 1, pyramid, FreeNoise off) on the frame axis (``dim`` 2: the toy latent is [B, 3, F, H, W]), then core
  KSampler (euler, simple) over the whole video, one video per prompt: core's handler indexes the ``[B]`` timestep with
  the window's frame indices when ``dim`` > 0 (``evaluate_context_windows``), so it cannot take a batch. Two prompts: ConditioningCombine of both prompts with the core
  handler's ``split_conds_to_windows`` (each window takes the prompt of its centre's half of the video). ComfyUI
  v0.8.0's node has that input commented out, so the two-prompt rows run ``PeerContextWindowsSplit``,
  ContextWindowsManual with that one input added (the handler is core's ``IndexListContextHandler``).
- ``context windows (best of sweep)``: the best of schedule (standard_static, standard_uniform) x fuse (pyramid,
  flat) x FreeNoise (off, on) x overlap (4, 8) at length 16, chosen on the sweep's videos (noise seed 0, one prompt,
  the first ``--sweep-prompts`` prompts) by :func:`best_config`: the lowest mean rank over the nine metrics. The sweep
  rows are in the JSON (group ``sweep``); the chosen one's videos already made are reused.
- ``chained clips``: what core nodes do without any windowing: KSampler makes a 16-frame clip; each next clip keeps the
  last ``--chain-known`` frames of the previous one and generates the rest (LatentCut, LatentConcat, and a temporal
  SetLatentNoiseMask built with SolidMask/RepeatImageBatch/ImageBatch/ImageToMask: KSampler's inpainting holds the known
  frames at the data, noised to each step's level, while the new frames are denoised from noise); the new frames are
  appended (LatentConcat) and the video cut to length. Clip k has noise seed ``1000 * seed + k``; with two prompts a
  clip takes the prompt scheduled at the middle of its new frames.

Batches: core ComfyUI has no node that stacks different prompts into one batch, so ``PeerToyPromptBatch`` encodes one
toy prompt per line (MigaToyPrompt's encoding, stacked: video v of the latent batch gets line v); every row uses it,
so every row's batch is the same P videos. Empty latents come from core EmptyHunyuanLatentVideo (its 16 channels are
cut to the toy's 3 by KSampler, its H/8 x W/8 is why it is asked for 256 x 256: the toy latent is the 32 x 32 frame).
The toy MODEL runs in float32 (its only ComfyUI dtype); on CUDA ``--tf32`` (default on) lets float32 matmuls use TF32,
on every row alike. Per row: every metric per video, seconds per frame (run time over frames made, of the graphs this
process ran alone), peak memory (CUDA: ``max_memory_allocated`` over those graphs; CPU: the process's ``ru_maxrss`` so
far, which never goes down) and the model's frame evaluations per output frame (sum over network calls of batch x
frames, over videos x frames: the compute, CFG included), counted by a forward hook on the toy network.

Time: context windows make one video per graph, about 500 small model calls each, so ``--workers N`` runs their
videos in N processes with their own ComfyUI (``--worker-gpus``: on other GPUs, while this process runs the other
rows; else on this GPU while this process waits). Their scores are kept; their times ran beside each other, so each
context-window row's time is that of its batches' first videos, run in this process alone (the sweep rows, all
from the pool, say ``contended``). The JSON is written after each row; ``--resume`` with the same options, code and
machine keeps the rows already written (record.resumable_rows). ``--part core`` / ``--part miga`` split the rows over two
runs (two device calls); benchmarks/report.py joins their files into one table (``merge_peer``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import logging
import math
import os
import pathlib
import resource
import sys
import tempfile
import time
import uuid

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import record  # noqa: E402
from benchmarks.toy_quality import DIGITS, METRICS, OFFICIAL_CHOICES, PROMPT_SEED_BASE, official_reflection  # noqa: E402
from benchmarks.toy_quality import rows as toy_quality_rows  # noqa: E402
from toyworld.metrics import COUNT_METRICS, OBJECT_METRICS, evaluate, object_measures, switch_error  # noqa: E402
from toyworld.sampling import toy_preset  # noqa: E402
from toyworld.world import COLOURS, ClipSpec, sample_spec  # noqa: E402

SCRIPT = "benchmarks/peer_comfy.py"
CODE = ("miga_core", "toyworld", "nodes", "__init__.py", "benchmarks/record.py", "benchmarks/toy_quality.py")
WINDOW = 16  # the toy model's clip length: MIGA's f0, the context window length and the chained clip length
CFG = 3.0  # toy_quality's (toyworld.sampling.generate_videos' cfg_scale)
SETTINGS = ("1 prompt", "2 prompts")

MIGA_DEFAULT = "MIGA (default profile)"
MIGA_OFFICIAL = "MIGA (official profile)"
FIFO = "FIFO-Diffusion"
CW_DEFAULTS = "context windows (defaults)"
CW_BEST = "context windows (best of sweep)"
CHAINED = "chained clips"
PEER_ROWS = (MIGA_DEFAULT, MIGA_OFFICIAL, FIFO, CW_DEFAULTS, CW_BEST, CHAINED)  # the peer table's order
PARTS = {"core": (CW_DEFAULTS, CW_BEST, CHAINED), "miga": (MIGA_DEFAULT, MIGA_OFFICIAL, FIFO)}  # --part: rows of core nodes / ours
RUN_ORDER = (MIGA_DEFAULT, CW_DEFAULTS, CW_BEST, CHAINED, FIFO, MIGA_OFFICIAL)  # most needed first: a stopped run keeps them

# core ContextWindowsManual's defaults (comfy_extras/nodes_context_windows.py, v0.8.0), dim 2 = the frame axis
CW_DEFAULT_CONFIG = {"schedule": "standard_static", "fuse": "pyramid", "freenoise": False, "overlap": 4}


# ---------------------------------------------------------------- pure helpers (no ComfyUI)


def sweep_configs() -> list[dict]:
    """The context-window sweep: schedule x fuse x FreeNoise x overlap at length 16 (16 configs, defaults first)."""
    out = [dict(schedule=s, fuse=f, freenoise=n, overlap=o) for s, f, n, o in
           itertools.product(("standard_static", "standard_uniform"), ("pyramid", "flat"), (False, True), (4, 8))]
    out.sort(key=lambda c: c != CW_DEFAULT_CONFIG)
    return out


def cw_name(config: dict) -> str:
    """``"standard_static, pyramid, FreeNoise off, overlap 4"``."""
    return f"{config['schedule']}, {config['fuse']}, FreeNoise {'on' if config['freenoise'] else 'off'}, overlap {config['overlap']}"


def specs_of(prompts: int, setting: str) -> list[list[ClipSpec]]:
    """Per video of a batch, its prompts: toy_quality's (the second one: the colour two places on in COLOURS)."""
    specs = [sample_spec(PROMPT_SEED_BASE + p) for p in range(prompts)]
    if setting == "1 prompt":
        return [[s] for s in specs]
    return [[s, s.with_(colour=COLOURS[(COLOURS.index(s.colour) + 2) % len(COLOURS)])] for s in specs]


def chain_clips(num_frames: int, known: int, clip: int = WINDOW) -> list[int]:
    """Start frame of each chained clip: the first at 0, each next ``clip - known`` later, until the clips cover
    ``num_frames`` (the last may run past the end; the video is cut to length).

    Raises:
        ValueError: ``known`` not in 1..clip-1 or ``num_frames < clip``.
    """
    if not 1 <= known < clip:
        raise ValueError(f"chain known frames={known}: allowed is 1..{clip - 1}. Fix: use 4.")
    if num_frames < clip:
        raise ValueError(f"num_frames={num_frames}: allowed is >= {clip} for chained clips. Fix: use {clip} or more.")
    step = clip - known
    return [k * step for k in range(1 + math.ceil((num_frames - clip) / step))]


def clip_prompt(start: int, known: int, switch: int, clip: int = WINDOW) -> int:
    """Prompt index (0 or 1) of the chained clip starting at ``start``: the one scheduled at the middle of its new frames
    (the first clip's new frames are all of it)."""
    first_new = start + known if start > 0 else 0
    return int((first_new + start + clip) / 2 >= switch)


def score_video(video: torch.Tensor, row: list[ClipSpec], mid: int) -> tuple[dict[str, float], int | None]:
    """toy_quality's scores of one video ``[F, 3, H, W]`` in [0, 1]: per-segment metrics averaged, object measures on the
    whole video; and, with two prompts, the switch error in frames (None: the switch never showed)."""
    segments = [(video[:mid], row[0]), (video[mid:], row[1])] if len(row) == 2 else [(video, row[0])]
    scores = [evaluate(v, s) for v, s in segments]
    whole = object_measures(video)
    values = {k: round(whole[k] if k in OBJECT_METRICS else sum(sc[k] for sc in scores) / len(scores), DIGITS) for k in METRICS}
    switch = switch_error(video, row, [0, mid])["errors"][0] if len(row) == 2 else None
    return values, switch


def best_config(runs: dict[str, dict[str, list[float]]]) -> str:
    """The name whose per-video metrics are best overall: per metric the configs are ranked by their mean (1 = best; higher
    is better but for COUNT_METRICS; tied configs share the mean of their ranks), and the lowest mean rank over the nine
    metrics wins (report.py's ``_mean_ranks`` shows the same numbers); a tie goes to the higher mean identity accuracy,
    then to the first name given.

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("best_config: no runs to choose from. Fix: run the sweep first.")
    names = list(runs)
    rank = {n: 0.0 for n in names}
    for key in METRICS:
        sign = -1.0 if key in COUNT_METRICS else 1.0
        score = {n: sign * sum(runs[n][key]) / len(runs[n][key]) for n in names}  # higher is better
        for n in names:
            better = sum(1 for m in names if score[m] > score[n])
            equal = sum(1 for m in names if score[m] == score[n])
            rank[n] += better + (equal + 1) / 2
    identity = {n: sum(runs[n]["identity_accuracy"]) / len(runs[n]["identity_accuracy"]) for n in names}
    return min(names, key=lambda n: (rank[n], -identity[n], names.index(n)))


# ---------------------------------------------------------------- API-format graphs (pure: dicts)


class Graph:
    """An API-format prompt under construction: ``add`` returns the new node's id."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}

    def add(self, class_type: str, **inputs) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id


def _prompts(g: Graph, specs: list[list[ClipSpec]]) -> tuple[list[str], str]:
    """PeerToyPromptBatch node(s), one per prompt index, and the negative (MigaToyPrompt of the empty text)."""
    count = len(specs[0])
    positives = [g.add("PeerToyPromptBatch", texts="\n".join(row[i].prompt() for row in specs)) for i in range(count)]
    return positives, g.add("MigaToyPrompt", text="")


def default_profile(steps: int):
    """The pack's default profile at the toy's size and T = ``steps``: the toy preset with the official choices the
    ``wan21`` preset and the nodes' defaults take since issue 9 (toy_quality's ``+official choices (wan21 default)`` row,
    its reflection geometry scaled to the toy). Returns (MigaConfig, GuidanceOptions, ReflectionOptions)."""
    config, guidance, reflection = toy_preset()
    changes = dict(OFFICIAL_CHOICES)
    guidance = dataclasses.replace(guidance, positions=changes.pop("guidance_positions"))
    if changes.pop("reflection_profile") == "official":
        reflection = dataclasses.replace(reflection, **official_reflection(steps))
    return config.with_(**changes), guidance, reflection


def miga_graph(row: str, specs: list[list[ClipSpec]], num_frames: int, steps: int, seed: int, window_batch: int, key: str) -> dict:
    """The MIGA / FIFO-Diffusion rows' prompt: loader, prompts, options, the sampler, PeerCollect."""
    config, guidance, reflection = default_profile(steps) if row == MIGA_DEFAULT else toy_preset()
    g = Graph()
    loader = g.add("MigaToyLoader")
    positives, negative = _prompts(g, specs)
    fifo = row == FIFO
    widgets = dict(width=32, height=32, num_pixel_frames=num_frames, batch_size=len(specs), seed=seed, steps=steps, cfg=CFG,
                   scheduler="simple", mode="fifo" if fifo else "miga", window_length=config.window_length,
                   zigzag_width=1 if fifo else config.zigzag_width, unified_steps=0 if fifo else config.unified_steps,
                   sampler=config.sampler, window_stride=0, update=config.update, window_batch=window_batch, resume_from="",
                   checkpoint_minutes=0.0, borders=config.borders)  # every widget set, at the toy's size
    links = dict(model=[loader, 0], positive=[positives[0], 0], negative=[negative, 0])
    if len(positives) == 2:
        links["prompts"] = [g.add("MigaPromptScheduleConditioning", conditioning_1=[positives[0], 0], conditioning_2=[positives[1], 0],
                                  start_frames=f"0, {num_frames // 2}", blend_latents=0), 0]
    if not fifo:
        links["guidance"] = [g.add("MigaGuidanceOptions", num_guidance=guidance.num_guidance, positions=guidance.positions), 0]
        links["reflection"] = [g.add("MigaReflectionOptions", threshold=reflection.threshold, num_eval=reflection.num_eval,
                                     num_ref=reflection.num_ref, num_candidates=reflection.num_candidates, score_on=reflection.score_on,
                                     num_guide=-1 if reflection.num_guide is None else reflection.num_guide,
                                     judge_position=-1 if reflection.judge_position is None else reflection.judge_position,
                                     phase=reflection.phase, candidate_guidance=reflection.candidate_guidance,
                                     **({"judge_from_tail": reflection.judge_from_tail} if reflection.phase == "build" else {})), 0]
    if row == MIGA_OFFICIAL:
        sampler = g.add("PeerMigaProfileSampler", **widgets, **links, profile=json.dumps(official_profile(steps), sort_keys=True))
    else:
        sampler = g.add("MigaSampler", **widgets, **links)
    g.add("PeerCollect", samples=[sampler, 0], key=key, report=[sampler, 1])
    return g.nodes


def official_profile(steps: int) -> dict:
    """toy_quality's ``official profile`` row at T = ``steps`` as changes to MigaConfig, GuidanceOptions and ReflectionOptions."""
    changes = dict(next(c for _, label, c in toy_quality_rows(steps) if label == "official profile"))
    guidance = {"positions": changes.pop("guidance_positions")}
    reflection = official_reflection(steps) if changes.pop("reflection_profile") == "official" else {}
    return {"config": changes, "guidance": guidance, "reflection": reflection}


def cw_graph(config: dict, specs: list[list[ClipSpec]], num_frames: int, steps: int, seed: int, key: str) -> dict:
    """Core context windows + core KSampler over the whole video; two prompts: ConditioningCombine and split conds."""
    g = Graph()
    loader = g.add("MigaToyLoader")
    positives, negative = _prompts(g, specs)
    widgets = dict(model=[loader, 0], context_length=WINDOW, context_overlap=config["overlap"], context_schedule=config["schedule"],
                   context_stride=1, closed_loop=False, fuse_method=config["fuse"], dim=2, freenoise=config["freenoise"])
    if len(positives) == 1:
        model, positive = g.add("ContextWindowsManual", **widgets), positives[0]
    else:
        model = g.add("PeerContextWindowsSplit", **widgets, split_conds_to_windows=True)
        positive = g.add("ConditioningCombine", conditioning_1=[positives[0], 0], conditioning_2=[positives[1], 0])
    latent = g.add("EmptyHunyuanLatentVideo", width=32 * 8, height=32 * 8, length=4 * num_frames - 3, batch_size=len(specs))
    out = g.add("KSampler", model=[model, 0], seed=seed, steps=steps, cfg=CFG, sampler_name="euler", scheduler="simple",
                positive=[positive, 0], negative=[negative, 0], latent_image=[latent, 0], denoise=1.0)
    g.add("PeerCollect", samples=[out, 0], key=key)
    return g.nodes


def chained_graph(specs: list[list[ClipSpec]], num_frames: int, steps: int, seed: int, known: int, key: str) -> dict:
    """Chained 16-frame KSampler clips, each continuing the last ``known`` frames of the previous one (see the module doc)."""
    g = Graph()
    loader = g.add("MigaToyLoader")
    positives, negative = _prompts(g, specs)
    new = WINDOW - known
    masks = [g.add("RepeatImageBatch", image=[g.add("MaskToImage", mask=[g.add("SolidMask", value=v, width=32, height=32), 0]), 0],
                   amount=n) for v, n in ((0.0, known), (1.0, new))]
    mask = g.add("ImageToMask", image=[g.add("ImageBatch", image1=[masks[0], 0], image2=[masks[1], 0]), 0], channel="red")
    video = clip = None
    for k, start in enumerate(chain_clips(num_frames, known)):
        positive = positives[clip_prompt(start, known, num_frames // 2) if len(positives) == 2 else 0]
        if clip is None:
            latent = g.add("EmptyHunyuanLatentVideo", width=32 * 8, height=32 * 8, length=4 * WINDOW - 3, batch_size=len(specs))
        else:
            kept = g.add("LatentCut", samples=[clip, 0], dim="t", index=-known, amount=known)
            blank = g.add("LatentMultiply", samples=[g.add("LatentCut", samples=[clip, 0], dim="t", index=0, amount=new), 0], multiplier=0.0)
            latent = g.add("SetLatentNoiseMask", samples=[g.add("LatentConcat", samples1=[kept, 0], samples2=[blank, 0], dim="t"), 0],
                           mask=[mask, 0])
        clip = g.add("KSampler", model=[loader, 0], seed=1000 * seed + k, steps=steps, cfg=CFG, sampler_name="euler", scheduler="simple",
                     positive=[positive, 0], negative=[negative, 0], latent_image=[latent, 0], denoise=1.0)
        if video is None:
            video = clip
        else:
            video = g.add("LatentConcat", samples1=[video, 0], samples2=[g.add("LatentCut", samples=[clip, 0], dim="t", index=known,
                                                                                amount=new), 0], dim="t")
    video = g.add("LatentCut", samples=[video, 0], dim="t", index=0, amount=num_frames)
    g.add("PeerCollect", samples=[video, 0], key=key)
    return g.nodes


# ---------------------------------------------------------------- ComfyUI in-process


COLLECTED: dict[str, tuple[torch.Tensor, str | None]] = {}
COUNTER = {"calls": 0, "frame_evals": 0}


class _Server:
    """What ``execution.PromptExecutor`` needs of a PromptServer (messages are dropped)."""

    client_id = None
    last_node_id = None
    last_prompt_id = None
    sockets_metadata: dict = {}

    def send_sync(self, event, data, sid=None) -> None:
        pass

    def send_progress_text(self, text, node_id, sid=None) -> None:
        pass

    def queue_updated(self) -> None:
        pass


class Comfy:
    """ComfyUI started in this process with its built-in nodes, the pack (loaded by ComfyUI's custom-node loader) and
    this benchmark's four helper nodes; :meth:`run` validates and executes one API-format prompt."""

    def __init__(self, comfyui: str, device: str, toy_weights: str | None) -> None:
        base = tempfile.mkdtemp(prefix="peer_comfy_")  # output/temp/user folders: never the checkout's
        sys.path.insert(0, str(pathlib.Path(comfyui).resolve()))
        from comfy.cli_args import args

        args.cpu = device == "cpu"
        args.base_directory = base
        args.database_url = f"sqlite:///{base}/db.sqlite"
        args.disable_api_nodes = True
        import utils.extra_config  # noqa: F401  as main.py does, before nodes.py reorders sys.path
        import execution
        import nodes

        logging.getLogger().setLevel(logging.WARNING)  # context windows log one line per step
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
        if not asyncio.run(nodes.load_custom_node(str(ROOT))):
            raise RuntimeError(f"ComfyUI could not load the pack at {ROOT} (see the log above)")
        import importlib

        pack = str(ROOT).replace(".", "_x_")  # the module name ComfyUI gives a custom node folder
        self.host = importlib.import_module(f"{pack}.nodes.host")
        self.graph = importlib.import_module(f"{pack}.nodes.graph")  # its on-prompt handler: no PromptServer runs here
        self.pack = pack
        _count_toy_forwards(self.host, toy_weights)
        nodes.NODE_CLASS_MAPPINGS.update(helper_nodes(importlib.import_module(f"{pack}.nodes.nodes_sampler").MigaSampler,
                                                      self.host, importlib.import_module(f"{pack}.nodes.runner")))
        self.execution = execution
        self.executor = execution.PromptExecutor(_Server(), cache_type=execution.CacheType.NONE,
                                                  cache_args={"lru": args.cache_lru, "ram": args.cache_ram})

    def run(self, prompt: dict) -> None:
        """Validate ``prompt`` as POST /prompt does, then execute it.

        Raises:
            RuntimeError: validation refused it or a node raised (the message names the node and the error).
        """
        prompt_id = str(uuid.uuid4())

        async def post() -> tuple:  # POST /prompt: the on-prompt handlers (the pack's keeps the prompt for its checks), then validation
            data = self.graph.remember({"prompt": prompt, "prompt_id": prompt_id})
            return await self.execution.validate_prompt(prompt_id, data["prompt"], None)

        ok, error, outputs, node_errors = asyncio.run(post())
        if not ok:
            raise RuntimeError(f"prompt refused: {json.dumps(error)}; {json.dumps(node_errors)[:2000]}")
        self.executor.execute(prompt, prompt_id, {}, outputs)
        if not self.executor.success:
            failed = next((d for e, d in self.executor.status_messages if e == "execution_error"), None)
            raise RuntimeError(f"execution failed: {json.dumps(failed)[:4000]}")


def _count_toy_forwards(host, toy_weights: str | None) -> None:
    """Make MigaToyLoader's model count its network calls (and load ``toy_weights`` instead of the shipped ones if given)."""
    load = host.load_toy_model

    def hook(module, args) -> None:
        x = args[0]
        COUNTER["calls"] += 1
        COUNTER["frame_evals"] += int(x.shape[0]) * int(x.shape[2])

    def counted():
        patcher = load(toy_weights) if toy_weights else load()
        patcher.model.diffusion_model.register_forward_pre_hook(hook)
        return patcher

    host.load_toy_model = counted


def helper_nodes(MigaSampler, host, runner) -> dict:
    """The benchmark's nodes (module doc): PeerToyPromptBatch, PeerCollect, PeerContextWindowsSplit, PeerMigaProfileSampler."""
    from comfy_api.latest import io
    from comfy_extras.nodes_context_windows import ContextWindowsManualNode

    class PeerToyPromptBatch:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"texts": ("STRING", {"multiline": True})}}

        RETURN_TYPES = ("CONDITIONING",)
        FUNCTION = "encode"
        CATEGORY = "benchmark"

        def encode(self, texts):
            toy = sys.modules[f"{host.__name__.rsplit('.', 1)[0]}.nodes_toy"]
            world = host.toyworld("world")
            vocab = (len(world.SHAPES), len(world.COLOURS), len(world.BACKGROUNDS), len(world.MOTIONS))
            hots = [host.toy_prompt_conditioning(toy.parse_toy_prompt(t), vocab)[0][0] for t in texts.splitlines()]
            return ([[torch.cat(hots), {}]],)

    class PeerCollect:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"samples": ("LATENT",), "key": ("STRING", {})}, "optional": {"report": ("STRING", {"forceInput": True})}}

        RETURN_TYPES = ()
        FUNCTION = "collect"
        OUTPUT_NODE = True
        CATEGORY = "benchmark"

        def collect(self, samples, key, report=None):
            COLLECTED[key] = (samples["samples"].detach().float().cpu(), report)
            return {}

    class PeerContextWindowsSplit(ContextWindowsManualNode):
        @classmethod
        def define_schema(cls) -> io.Schema:
            schema = super().define_schema()
            schema.node_id = "PeerContextWindowsSplit"
            schema.inputs = [*schema.inputs, io.Boolean.Input("split_conds_to_windows", default=False)]
            return schema

    class PeerMigaProfileSampler(MigaSampler):
        @classmethod
        def define_schema(cls) -> io.Schema:
            schema = super().define_schema()
            schema.node_id = "PeerMigaProfileSampler"
            schema.inputs = [*schema.inputs, io.String.Input("profile", default="{}")]
            return schema

        @classmethod
        def execute(cls, model, positive, negative, width, height, num_pixel_frames, batch_size, seed, steps, cfg, scheduler, mode,
                    window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch, initial_clip=None,
                    prompts=None, guidance=None, reflection=None, resume_from="", checkpoint_minutes=0.0, profile="{}",
                    borders=None) -> io.NodeOutput:
            from importlib import import_module

            widgets = import_module(f"{host.__name__.rsplit('.', 1)[0]}.widgets")
            changes = json.loads(profile)
            run = runner.model_run(model, positive, negative, cfg, scheduler, steps, seed, prompts)
            config = widgets.config_from(mode, window_length, zigzag_width, unified_steps, sampler, window_stride, update, window_batch, seed,
                                         borders)
            config = config.with_(**changes.get("config", {}))
            if guidance is not None:
                guidance = dataclasses.replace(guidance, **changes.get("guidance", {}))
            if reflection is not None:
                reflection = dataclasses.replace(reflection, **changes.get("reflection", {}))
            return io.NodeOutput(*runner.sample(run, config, runner.VideoRequest(num_pixel_frames, batch_size, height, width, initial_clip),
                                                guidance, reflection, resume_from or "", checkpoint_minutes))

    return {"PeerToyPromptBatch": PeerToyPromptBatch, "PeerCollect": PeerCollect, "PeerContextWindowsSplit": PeerContextWindowsSplit,
            "PeerMigaProfileSampler": PeerMigaProfileSampler}


# ---------------------------------------------------------------- the benchmark


def peak_memory(device: torch.device) -> float:
    """GiB: CUDA ``max_memory_allocated`` since the last reset; CPU: the process's peak resident size so far."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 3)  # Linux: KiB


def job_key(method: dict, setting: str, seed: int, videos: list[int]) -> str:
    return json.dumps([method, setting, seed, videos], sort_keys=True)


def jobs_of(method: dict, setting: str, seed: int, videos: list[int]) -> list[dict]:
    """The graph runs of one batch (noise seed ``seed``, prompts ``videos``): one for all of them, or one per video for
    context windows (core's handler indexes the ``[B]`` timestep with the window's frame indices when ``dim`` > 0, so it
    runs batch 1 only: ComfyUI v0.8.0 comfy/context_windows.py ``evaluate_context_windows``)."""
    groups = [[p] for p in videos] if method["kind"] == "context_windows" else [list(videos)]
    return [{"method": method, "setting": setting, "seed": seed, "videos": g, "key": job_key(method, setting, seed, g)} for g in groups]


def run_job(comfy: Comfy, job: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Build, run and score one graph: every video's metrics, the network calls, the run time and the peak memory."""
    specs_all = specs_of(args.prompts, job["setting"])
    specs = [specs_all[p] for p in job["videos"]]
    method, seed, key = job["method"], job["seed"], job["key"]
    if method["kind"] == "miga":
        prompt = miga_graph(method["row"], specs, args.num_frames, args.steps, seed, args.window_batch, key)
    elif method["kind"] == "context_windows":
        prompt = cw_graph(method["config"], specs, args.num_frames, args.steps, seed, key)
    else:
        prompt = chained_graph(specs, args.num_frames, args.steps, seed, method["known"], key)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    calls, evals = COUNTER["calls"], COUNTER["frame_evals"]
    t0 = time.perf_counter()
    comfy.run(prompt)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    latents, report = COLLECTED.pop(key)
    want = (len(specs), 3, args.num_frames, 32, 32)
    if tuple(latents.shape) != want:
        raise RuntimeError(f"{method} gave a latent of shape {tuple(latents.shape)}, not {want}")
    videos = ((latents.clamp(-1, 1) + 1) / 2).permute(0, 2, 1, 3, 4).to(device)  # [V, F, 3, H, W]: the toy VAE's decode
    per_video: dict[str, list] = {k: [] for k in METRICS}
    switch = []
    for video, row in zip(videos, specs):
        values, err = score_video(video, row, args.num_frames // 2)
        for k in METRICS:
            per_video[k].append(values[k])
        switch.append(err)
    out = {"seed": seed, "videos": job["videos"], "per_video": per_video, "switch": switch, "network_calls": COUNTER["calls"] - calls,
           "frame_evals": COUNTER["frame_evals"] - evals, "timing": {"seconds": round(seconds, 3), "peak_memory_gib": peak_memory(device)}}
    if report is not None:
        rep = json.loads(report)
        out["windows"] = rep["windows"]
        out["reflection"] = {k: rep["reflection"][k] for k in ("n_all", "n_eval", "n_corr")}
    return out


# ---------------------------------------------------------------- worker processes (--workers)

_WORKER: dict = {}


def _init_worker(argv: list[str], gpus) -> None:
    """A pool process: its own ComfyUI, on the GPU it takes from the queue ``gpus`` when given (CUDA_VISIBLE_DEVICES is set
    before CUDA starts)."""
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    args = _parse(argv)
    torch.set_num_threads(args.worker_threads)
    device = _setup_device(args)
    _WORKER.update(args=args, device=device, comfy=Comfy(args.comfyui, device.type, args.toy_weights))


def _worker_run(job: dict) -> dict:
    with torch.inference_mode():
        out = run_job(_WORKER["comfy"], job, _WORKER["args"], _WORKER["device"])
    out["contended"] = True  # run beside other pool processes: its time is not a solo time
    return out


def worker_gpus(text: str | None) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``; None or empty -> ``[]``.

    Raises:
        ValueError: an entry that is not a non-negative integer.
    """
    out = []
    for part in (text or "").split(","):
        if part.strip():
            if not part.strip().isdigit():
                raise ValueError(f"--worker-gpus={text!r}: allowed are GPU indices separated by commas, e.g. 1,2. Fix: use 1.")
            out.append(int(part))
    return out


class Runner:
    """Runs jobs in this process (timed alone) or in the pool (for their scores; their times ran beside each other)."""

    def __init__(self, args: argparse.Namespace, argv: list[str], comfy: Comfy, device: torch.device) -> None:
        self.args, self.comfy, self.device = args, comfy, device
        self.results: dict[str, dict] = {}
        self.pending: dict[str, object] = {}
        self.pool = None
        self.gpus = worker_gpus(args.worker_gpus)
        if args.workers:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            queue = None
            if self.gpus:
                queue = ctx.Queue()
                for i in range(args.workers):
                    queue.put(self.gpus[i % len(self.gpus)])
            self.pool = ctx.Pool(args.workers, _init_worker, (argv, queue))

    @property
    def concurrent(self) -> bool:
        """Whether pool jobs run on other GPUs than this process's (GPU 0): then they run while this process times its own."""
        return self.pool is not None and self.device.type == "cuda" and bool(self.gpus) and 0 not in self.gpus

    def here(self, job: dict) -> dict:
        """Run ``job`` in this process, timed (again, if only a pool result exists)."""
        done = self.results.get(job["key"])
        if done is None or done.get("contended"):
            with torch.inference_mode():
                self.results[job["key"]] = run_job(self.comfy, job, self.args, self.device)
        return self.results[job["key"]]

    def submit(self, jobs: list[dict]) -> None:
        """Queue ``jobs`` in the pool (in this process when there is none)."""
        for job in jobs:
            if job["key"] in self.results or job["key"] in self.pending:
                continue
            if self.pool is None:
                self.here(job)
            else:
                self.pending[job["key"]] = self.pool.apply_async(_worker_run, (job,))

    def collect(self, wait: bool) -> None:
        for key, res in list(self.pending.items()):
            if wait or res.ready():
                self.results.setdefault(key, res.get())
                del self.pending[key]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


# ---------------------------------------------------------------- rows


def make_row(labels: list[str], group: str, method: dict, setting: str, results: list[dict], args: argparse.Namespace) -> dict:
    """A row of the JSON from its jobs' results (videos in seed-major order): per-video metrics, costs and timing.

    Timing: seconds per frame over the jobs timed alone (``contended`` false), else over all (then ``contended``)."""
    results = sorted(results, key=lambda r: (r["seed"], r["videos"]))
    frames = args.num_frames
    out = {"labels": labels, "group": group, "setting": setting, "method": method,
           "per_video": {k: [v for r in results for v in r["per_video"][k]] for k in METRICS}}
    videos = sum(len(r["videos"]) for r in results)
    if setting == "2 prompts":
        out["switch_error_frames"] = [e for r in results for e in r["switch"]]
    out["network_calls"] = sum(r["network_calls"] for r in results)
    out["frame_evals_per_frame"] = round(sum(r["frame_evals"] for r in results) / (videos * frames), 3)
    out["videos_per_graph"] = len(results[0]["videos"])
    if "reflection" in results[0]:
        out["reflection"] = {k: sum(r["reflection"][k] for r in results) for k in ("n_all", "n_eval", "n_corr")}
        out["windows"] = sum(r["windows"] for r in results)
    out["jobs"] = [{k: v for k, v in r.items() if k not in ("per_video", "switch")} for r in results]
    timed = [r for r in results if not r.get("contended")] or results
    seconds = sum(r["timing"]["seconds"] for r in timed)
    timed_videos = sum(len(r["videos"]) for r in timed)
    out["timing"] = {"seconds_per_frame": round(seconds / (timed_videos * frames), 6), "timed_videos": timed_videos,
                     "contended": timed is results and any(r.get("contended") for r in results),
                     "peak_memory_gib": max(r["timing"]["peak_memory_gib"] for r in timed),
                     "seconds": round(sum(r["timing"]["seconds"] for r in results), 3)}
    print(json.dumps({"row": labels[0], "setting": setting, **out["timing"],
                      "identity": round(sum(out["per_video"]["identity_accuracy"]) / videos, 4)}), flush=True)
    return out


def methods(best: dict | None, known: int) -> dict[str, dict]:
    """Each peer row's method (its options: the key of its jobs)."""
    out = {MIGA_DEFAULT: {"kind": "miga", "row": MIGA_DEFAULT}, MIGA_OFFICIAL: {"kind": "miga", "row": MIGA_OFFICIAL},
           FIFO: {"kind": "miga", "row": FIFO}, CW_DEFAULTS: {"kind": "context_windows", "config": CW_DEFAULT_CONFIG},
           CHAINED: {"kind": "chained", "known": known}}
    if best is not None:
        out[CW_BEST] = {"kind": "context_windows", "config": best}
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", required=True, help="a ComfyUI v0.8.0 checkout")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="benchmarks/results/peer_comfy_cuda.json")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--num-frames", type=int, default=256)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--window-batch", type=int, default=8, help="MIGA/FIFO windows per model call (results are identical for any value)")
    ap.add_argument("--chain-known", type=int, default=4, help="frames of the previous clip each chained clip keeps")
    ap.add_argument("--sweep", choices=("full", "tiny"), default="full", help="tiny: the defaults and one other config (smoke test)")
    ap.add_argument("--sweep-prompts", type=int, default=None, help="prompts of the sweep's videos (noise seed 0); default all")
    ap.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True, help="TF32 float32 matmuls on CUDA (all rows)")
    ap.add_argument("--tiny", action="store_true", help="smoke-test size: 2 prompts, 1 seed, 24 frames, 16 steps, tiny sweep")
    ap.add_argument("--toy-weights", default=None, help="another ToyDiT safetensors for MigaToyLoader (smoke tests); default the shipped one")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of this process (default: torch's)")
    ap.add_argument("--workers", type=int, default=0,
                    help="pool processes for the context-window videos (batch 1 each); their scores are kept, their times "
                         "are not: each context-window batch's first video runs in this process, alone, for the time")
    ap.add_argument("--worker-gpus", default=None, help="GPU indices of the pool, comma separated, shared round robin (default: this "
                                                         "process's GPU 0; the pool then runs only while this process waits)")
    ap.add_argument("--worker-threads", type=int, default=1, help="torch CPU threads per pool process")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out when its record matches this one's")
    ap.add_argument("--part", choices=("all", *PARTS), default="all",
                    help="core: the sweep, context-window and chained rows (core nodes only); miga: the MIGA and FIFO rows. Two "
                         "files of the two parts with the same options make one table (benchmarks/report.py merges them), so "
                         "the benchmark fits two device calls")
    return ap


def _parse(argv: list[str]) -> argparse.Namespace:
    args = parser().parse_args(argv)
    if args.tiny:
        args.prompts, args.seeds, args.num_frames, args.steps, args.window_batch, args.sweep = 2, 1, 24, 16, 4, "tiny"
    args.sweep_prompts = min(args.sweep_prompts or args.prompts, args.prompts)
    return args


def _setup_device(args: argparse.Namespace) -> torch.device:
    device = torch.device(args.device)
    record.deterministic(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    return device


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _setup_device(args)
    t_start, date = time.perf_counter(), record.now()
    comfy = Comfy(args.comfyui, args.device, args.toy_weights)
    runner = Runner(args, argv, comfy, device)
    try:
        return _run(args, runner, device, [a for a in argv if a != "--resume"], t_start, date)
    finally:
        runner.close()


def _run(args: argparse.Namespace, runner: Runner, device: torch.device, argv: list[str], t_start: float, date: str) -> int:
    from benchmarks.wan_node_gpu import comfyui_version

    opts = {k: v for k, v in vars(args).items() if k not in ("out", "resume", "comfyui", "threads", "workers", "worker_gpus", "worker_threads")}
    head = record.header(SCRIPT, opts, device, code=CODE, dtype=torch.float32, argv=argv)
    head["comfyui"] = comfyui_version(args.comfyui)
    head["videos"] = {"prompt_seeds": [PROMPT_SEED_BASE + p for p in range(args.prompts)], "noise_seeds": list(range(args.seeds)),
                      "order": "seed-major: video i has noise seed i // prompts and prompt i % prompts"}
    head["peer_rows"] = list(PEER_ROWS)
    configs = sweep_configs() if args.sweep == "full" else _tiny_sweep()
    head["sweep"] = {"configs": [cw_name(c) for c in configs], "videos": f"noise seed 0, 1 prompt, prompts 0..{args.sweep_prompts - 1}",
                     "rule": "lowest mean rank over the nine metrics (best_config)"}
    head["official_profile"] = official_profile(args.steps)
    head["default_profile"] = dict(zip(("config", "guidance", "reflection"), map(dataclasses.asdict, default_profile(args.steps))))
    head["parallel"] = {"workers": args.workers, "worker_gpus": args.worker_gpus}  # where the scores were computed; times: see rows
    out_path = record.resolve_out(args.out)
    rows: list[dict] = record.resumable_rows(out_path, head) if args.resume else []
    _restore(runner, rows, args)

    def write() -> None:
        record.write(out_path, "peer_comfy", head, rows, {"date": date, "seconds": round(time.perf_counter() - t_start, 1)})

    def have(label: str, setting: str) -> dict | None:
        return next((r for r in rows if label in r["labels"] and r["setting"] == setting), None)

    wanted = set(PEER_ROWS) if args.part == "all" else set(PARTS[args.part])
    core = CW_BEST in wanted
    seeds, everyone, some = list(range(args.seeds)), list(range(args.prompts)), list(range(args.sweep_prompts))
    sweep_jobs = {cw_name(c): jobs_of({"kind": "context_windows", "config": c}, "1 prompt", 0, some) for c in configs} if core else {}
    runner.submit([j for name, jobs in sweep_jobs.items() if have(name, "1 prompt") is None for j in jobs])
    state = {"best": None}

    def sweep_done() -> bool:
        if not core:
            return False
        runner.collect(wait=False)
        if state["best"] is None and all(j["key"] in runner.results for jobs in sweep_jobs.values() for j in jobs):
            for name, jobs in sweep_jobs.items():
                if have(name, "1 prompt") is None:
                    rows.append(make_row([name], "sweep", jobs[0]["method"], "1 prompt", [runner.results[j["key"]] for j in jobs], args))
            sweep = {name: have(name, "1 prompt")["per_video"] for name in sweep_jobs}
            state["best"] = next(c for c in configs if cw_name(c) == best_config(sweep))
            write()
            by_row = methods(state["best"], args.chain_known)
            for setting in SETTINGS:  # the context-window rows' videos after each batch's first: to the pool
                for label in (CW_DEFAULTS, CW_BEST):
                    if have(label, setting) is None:
                        runner.submit([j for s in seeds for j in jobs_of(by_row[label], setting, s, everyone)[1:]])
        return state["best"] is not None

    def batched_rows() -> None:  # one graph per batch, timed here
        by_row = methods(None, args.chain_known)
        for setting in SETTINGS:
            for label in (MIGA_DEFAULT, CHAINED, FIFO, MIGA_OFFICIAL):
                if label in wanted and have(label, setting) is None:
                    results = [runner.here(j) for s in seeds for j in jobs_of(by_row[label], setting, s, everyone)]
                    rows.append(make_row([label], "peer", by_row[label], setting, results, args))
                    write()
                sweep_done()

    def window_rows() -> None:  # each batch's first video timed here, the others from the pool
        if not core:
            return
        runner.collect(wait=True)
        sweep_done()
        runner.collect(wait=True)
        by_row = methods(state["best"], args.chain_known)
        for setting in SETTINGS:
            for label in (CW_DEFAULTS, CW_BEST):
                if have(label, setting) is not None:
                    continue
                same = next((r for r in rows if r["group"] == "peer" and r["setting"] == setting and r["method"] == by_row[label]), None)
                if same is not None:  # the best config is the defaults: one run, both labels
                    same["labels"].append(label)
                    write()
                    continue
                results = []
                for s in seeds:
                    first, *rest = jobs_of(by_row[label], setting, s, everyone)
                    results.append(runner.here(first))
                    runner.submit(rest)
                    runner.collect(wait=True)
                    results += [runner.results[j["key"]] for j in rest]
                rows.append(make_row([label], "peer", by_row[label], setting, results, args))
                write()

    if runner.concurrent:  # the pool has its own GPUs: it works while this process times its rows
        batched_rows()
        window_rows()
    else:  # the pool shares this process's device: it finishes before anything here is timed
        window_rows()
        batched_rows()
    rows.sort(key=_row_order)
    write()
    return 0


def _row_order(row: dict) -> tuple:
    if row["group"] == "sweep":
        return (0, 0, 0)
    return (1, SETTINGS.index(row["setting"]), min(PEER_ROWS.index(x) for x in row["labels"]))


def _tiny_sweep() -> list[dict]:
    return [CW_DEFAULT_CONFIG, dict(CW_DEFAULT_CONFIG, schedule="standard_uniform", freenoise=True, overlap=8)]


def _restore(runner: Runner, rows: list[dict], args: argparse.Namespace) -> None:
    """Refill the job results from resumed rows (each job's videos are a slice of its row's per-video lists)."""
    for row in rows:
        at = 0
        for job in row["jobs"]:
            sl = slice(at, at + len(job["videos"]))
            at = sl.stop
            switch = row["switch_error_frames"][sl] if "switch_error_frames" in row else [None] * len(job["videos"])
            key = job_key(row["method"], row["setting"], job["seed"], job["videos"])
            runner.results[key] = {**job, "per_video": {k: v[sl] for k, v in row["per_video"].items()}, "switch": switch}


if __name__ == "__main__":
    sys.exit(main())
