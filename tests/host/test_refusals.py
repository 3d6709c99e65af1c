"""Every cross-input refusal of the MIGA nodes is a ComfyUI validation error (HTTP 400 with node_errors) before
the prompt is queued, and the progress a run reports never goes backwards (ComfyUI v0.8.0, issue 8).

The prompts are the shipped API twins with one widget changed. ComfyUI validates a node with None for every linked
input; the pack rebuilds the option nodes' values from the submitted prompt (nodes/graph.py), so refusals that
involve guidance, reflection or the prompt schedule are validation errors too.
"""

from __future__ import annotations

import json
import pathlib

import pytest

import harness
from test_workflows_host import load, shrink

API = pathlib.Path(__file__).resolve().parents[2] / "workflows" / "api"
LONG, FIFO, STORY, CONTINUE = (next(API.glob(f"{title} - *.api.json")) for title in
                               ("MIGA infinite long video", "FIFO-Diffusion baseline", "MIGA story", "MIGA continue a clip"))


def _set(path, node, **inputs):
    def change(prompt):
        prompt[node]["inputs"].update(inputs)
        return prompt
    return path, change


def _fifo_with(link):
    """The FIFO baseline with the long video's option node ``link`` ("guidance" or "reflection") connected."""
    def change(prompt):
        long = load(LONG)
        node = {"guidance": "12", "reflection": "13"}[link]
        prompt[node] = long[node]
        prompt["7"]["inputs"][link] = [node, 0]
        return prompt
    return FIFO, change


def _conditioning_schedule(start_frames):
    """The story with its text schedule replaced by a two-conditioning schedule starting at ``start_frames``."""
    def change(prompt):
        prompt["14"] = {"class_type": "MigaPromptScheduleConditioning",
                        "inputs": {"conditioning_1": ["5", 0], "conditioning_2": ["5", 0], "start_frames": start_frames,
                                   "blend_latents": 0}}
        return prompt
    return STORY, change


# (case id, (workflow, change), node that must carry the error, substrings of its message)
CASES = [
    ("width_not_16n", _set(LONG, "7", width=40), "7", ["width=40", "multiple of 16", "use 32 or 48"]),
    ("height_not_16n", _set(LONG, "7", height=40), "7", ["height=40", "multiple of 16"]),
    ("frames_not_4n1", _set(LONG, "7", num_pixel_frames=482), "7", ["4n+1", "481 or 485"]),
    ("window_vs_guidance", _set(LONG, "7", window_length=8), "7", ["window_length=8", "num_guidance", "9"]),
    ("window_vs_guidance_fix_works", _set(LONG, "7", window_length=4), "7", ["window_length=4", "window_length to 9"]),
    ("window_vs_stride", _set(LONG, "7", window_stride=21), "7", ["window_length=21", "window_stride"]),
    ("steps_vs_unified", _set(LONG, "7", steps=10), "7", ["unified_steps"]),
    ("fifo_zigzag_width", _set(FIFO, "7", zigzag_width=7), "7", ["zigzag_width=7", "mode 'fifo'", "set zigzag_width to 1"]),
    ("fifo_unified_steps", _set(FIFO, "7", unified_steps=9), "7", ["unified_steps=9", "mode 'fifo'", "set unified_steps to 0"]),
    ("fifo_guidance", _fifo_with("guidance"), "7", ["fifo", "guidance"]),
    ("fifo_reflection", _fifo_with("reflection"), "7", ["fifo", "reflection"]),
    ("zigzag_reflection_position", _set(CONTINUE, "13", judge_position=5000), "18", ["judge_position"]),
    ("keyframe_past_the_end", _set(STORY, "7", num_pixel_frames=241), "7", ["keyframe=480", "241 pixel frames (61 latents)", "at least 481 frames"]),
    ("keyframes_bad_json", _set(STORY, "14", keyframes='{"0": "a fox", "240": }'), "14", ["keyframes", "JSON"]),
    ("start_frames_count", _conditioning_schedule("0, 240, 480"), "14", ["start_frames", "2 non-negative pixel frames"]),
    ("conditioning_past_the_end", _conditioning_schedule("0, 800"), "7", ["keyframe=800", "181 latents"]),
    ("option_widget_range", _set(LONG, "12", num_guidance=65), "12", ["num_guidance"]),
    ("devices_unknown", _set(LONG, "7", devices="cpu, cuda:9"), "7", ["devices='cpu, cuda:9'", "'cuda:9', which torch does not see",
                                                                       "devices torch sees here (cpu", "leave devices empty"]),
    ("devices_without_index", _set(LONG, "7", devices="cuda"), "7", ["devices='cuda'", "without an index", "Fix: name the index: cuda:0"]),
]


def _prompt(case):
    path, change = case[1]
    return change(load(path))


def test_each_shipped_workflow_passes_validation_as_is(comfy):
    for path in (LONG, FIFO, STORY, CONTINUE):
        result = comfy.validate(load(path))
        assert result.ok, (path.name, result.node_errors)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refusal_is_a_validation_error_in_process(comfy, case):
    _, _, node, needles = case
    result = comfy.validate(_prompt(case))
    assert not result.ok, "ComfyUI accepted the prompt"
    text = json.dumps(result.node_errors[node]["errors"]) if node in result.node_errors else ""
    assert node in result.node_errors, result.node_errors
    assert len(result.node_errors[node]["errors"]) == 1, result.node_errors[node]  # one message, not one per input
    assert all(n in text for n in needles), (needles, text)


def test_every_refusal_is_an_http_400_with_node_errors(comfy_server):
    failures = []
    for case in CASES:
        name, _, node, needles = case
        status, body = comfy_server.request("/prompt", {"prompt": _prompt(case)})
        text = json.dumps(body.get("node_errors", {}).get(node, {})) if isinstance(body, dict) else ""
        if status != 400 or not all(n in text for n in needles):
            failures.append((name, status, needles, text[:600] or body))
    assert not failures, failures


def test_the_server_still_queues_the_shipped_workflows(comfy_server):
    """The on-prompt handler that lets validation see linked options keeps valid prompts valid (validation only)."""
    for path in (LONG, STORY, CONTINUE):
        prompt = load(path)
        prompt["9999"] = {"class_type": "MigaUnknownNode", "inputs": {}}  # refused before anything runs
        status, body = comfy_server.request("/prompt", {"prompt": prompt})
        assert status == 400 and "MigaUnknownNode" in json.dumps(body)
        status, body = comfy_server.request("/prompt", {"prompt": load(path), "prompt_id": "kept-id", "front": True})
        assert status == 200 and body["prompt_id"] == "kept-id", body
        comfy_server.request("/queue", {"clear": True})
        comfy_server.request("/interrupt", {})


@pytest.mark.parametrize("loader", ["UNETLoader", "MigaVC2Loader"])
def test_the_frame_rule_follows_the_model_family_of_the_loader(comfy, loader):
    """20 video frames are 20 VC2 latents but not a Wan2.1 4n+1 count: validation tells the family from the loader the
    sampler's model comes from (through the ModelSamplingSD3 node in between)."""
    prompt = load(LONG)
    if loader == "MigaVC2Loader":
        prompt["1"] = {"class_type": "MigaVC2Loader", "inputs": {"ckpt_name": "model.ckpt", "fps": 8}}
    prompt["7"]["inputs"].update(num_pixel_frames=20, window_length=16, zigzag_width=4, unified_steps=9)
    errors = comfy.validate(prompt).node_errors
    if loader == "UNETLoader":
        assert "4n+1" in json.dumps(errors.get("7", {})), errors
    else:
        assert "7" not in errors, errors["7"]  # (the loader itself may be refused here: no model.ckpt in this test's folders)


def test_a_keyframe_past_the_end_of_a_vc2_video_is_refused_with_the_vc2_frame_rule(comfy):
    """250 VC2 frames are 250 latents: keyframe 480 lies past the end (with Wan2.1's rule it would map to latent 120)."""
    prompt = load(STORY)
    prompt["1"] = {"class_type": "MigaVC2Loader", "inputs": {"ckpt_name": "model.ckpt", "fps": 8}}
    prompt["7"]["inputs"].update(num_pixel_frames=250, window_length=16, zigzag_width=4, unified_steps=9)
    errors = comfy.validate(prompt).node_errors
    assert "keyframe=480" in json.dumps(errors.get("7", {})), errors


def test_a_connected_initial_clip_of_another_size_is_refused_at_execution(comfy):
    prompt = shrink(load(CONTINUE))
    prompt["17"]["inputs"]["width"] = 48  # the KSampler clip is 32x32
    with pytest.raises(harness.PromptExecutionError) as info:
        comfy.execute(prompt)
    message = info.value.error.get("exception_message", "")
    assert "initial_clip" in message and "32x32" in message and "width=48" in message and "width=32" in message, message


def test_progress_with_reflection_searching_never_goes_backwards(comfy):
    """Self-reflection with threshold -1 searches at every check; ComfyUI's progress hook must see one fixed total
    for the sampler node and values that never decrease, ending at that total."""
    import comfy.utils as comfy_utils
    from comfy_execution.utils import get_executing_context

    prompt = shrink(load(LONG))
    prompt["13"]["inputs"]["threshold"] = -1.0
    prompt["7"]["inputs"]["seed"] = 12345  # not cached by another test
    seen = []
    previous = comfy_utils.PROGRESS_BAR_HOOK

    def record(value, total, preview, prompt_id=None, node_id=None):
        context = get_executing_context()
        seen.append((node_id or (context.node_id if context else None), value, total))
        if previous is not None:
            previous(value, total, preview, prompt_id=prompt_id, node_id=node_id)

    comfy_utils.set_progress_bar_global_hook(record)
    try:
        run = comfy.execute(prompt)
    finally:
        comfy_utils.set_progress_bar_global_hook(previous)
    report = json.loads(run.outputs["11"]["text"][0])
    assert report["reflection"]["n_corr"] > 0, report  # the searches happened
    sampler = [(v, t) for node, v, t in seen if node == "7"]
    assert len(sampler) > 10, seen[:20]
    totals = {t for _, t in sampler}
    values = [v for v, _ in sampler]
    assert len(totals) == 1, sorted(totals)
    assert values == sorted(values) and values[-1] == totals.pop(), values[-20:]
