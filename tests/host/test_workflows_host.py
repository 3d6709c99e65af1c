"""Every shipped workflow runs in ComfyUI v0.8.0: validated and executed in-process and over HTTP.

The API twins in ``workflows/api/`` are run as shipped, with the tiny model files (same names) in place
of the real ones and the video shrunk (32x32 pixels, 64x64 for VideoCrafter2, fewer frames and steps) so
the workflows finish in a minute or two on two CPU cores: :func:`shrink` changes only size/steps widgets,
never the graph.
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TWINS = sorted((ROOT / "workflows" / "api").glob("*.api.json"))
MIGA_NODES = {"MigaSampler", "MigaQueueInit"}


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def shrink(prompt: dict) -> dict:
    """The same graph at test size: 32x32 pixels, 85 frames (22 latents), 24 MIGA steps, 2 KSampler steps; prompt
    schedule keyframes scaled by the same factor as the video, so they stay inside it (keyframes past the end are
    refused). A VideoCrafter2 graph (a MigaVC2Loader in it) gets 64x64 pixels (VC2: multiples of 64) and 40 frames
    (40 latents, one per frame)."""
    out = copy.deepcopy(prompt)
    vc2 = any(n["class_type"] == "MigaVC2Loader" for n in out.values())
    frames, size = (40, 64) if vc2 else (85, 32)
    original = next((n["inputs"]["num_pixel_frames"] for n in out.values() if n["class_type"] in MIGA_NODES), frames)
    for node in out.values():
        inputs, kind = node["inputs"], node["class_type"]
        for key in ("width", "height"):
            if isinstance(inputs.get(key), int):
                inputs[key] = size
        if kind in MIGA_NODES:
            inputs["num_pixel_frames"] = frames
            inputs["steps"] = 24  # FIFO needs steps >= window_length (21)
        if kind == "KSampler":
            inputs["steps"] = 2
        if kind == "MigaPromptSchedule":
            keyframes = json.loads(inputs["keyframes"])
            inputs["keyframes"] = json.dumps({str(int(k) * (frames - 1) // (original - 1)): v for k, v in keyframes.items()})
        if kind == "MigaPromptScheduleConditioning":
            starts = [int(p) for p in inputs["start_frames"].replace(",", " ").split()]
            inputs["start_frames"] = ", ".join(str(p * (frames - 1) // (original - 1)) for p in starts)
    return out


def node_of(prompt: dict, class_type: str) -> tuple[str, dict]:
    return next((k, v) for k, v in prompt.items() if v["class_type"] == class_type)


def test_there_are_seven_workflows_and_each_node_type_is_registered(comfy):
    assert len(TWINS) == 7, TWINS
    used = {node["class_type"] for path in TWINS for node in load(path).values()}
    missing = used - set(comfy.node_types)
    assert not missing, f"node types used by workflows but not registered: {missing}"
    assert {t for t in used if t.startswith("Miga")} <= set(comfy.pack_node_types)


@pytest.mark.parametrize("path", TWINS, ids=lambda p: p.name.split(".")[0])
def test_workflow_validates_and_executes_in_process(comfy, vc2_checkpoint, path):
    prompt = shrink(load(path))
    assert comfy.validate(load(path)).ok, "the workflow as shipped must validate"
    run = comfy.execute(prompt)
    assert run.success
    assert run.outputs, "the workflow's output node produced nothing"


def test_workflows_execute_over_http(comfy_server, vc2_checkpoint):
    for path in TWINS:
        prompt_id = comfy_server.post_prompt(shrink(load(path)))
        history = comfy_server.wait_history(prompt_id, timeout=600)
        assert history["status"]["status_str"] == "success", (path.name, comfy_server.log_tail())
        assert history["outputs"], path.name


def test_a_wrong_link_gets_a_validation_error_not_a_crash(comfy):
    prompt = load(TWINS[0])
    sampler_id, sampler = next((k, v) for k, v in prompt.items() if v["class_type"] in MIGA_NODES)
    clip_loader, _ = node_of(prompt, "CLIPLoader")
    sampler["inputs"]["model"] = [clip_loader, 0]  # a CLIP into a MODEL socket
    result = comfy.validate(prompt)
    assert not result.ok
    errors = result.node_errors[sampler_id]["errors"]
    assert any(e["type"] == "return_type_mismatch" for e in errors), errors


@pytest.mark.parametrize("key, value, error_type", [("cfg", 1000.0, "value_bigger_than_max"),
                                                     ("window_length", 1, "value_smaller_than_min"),
                                                     ("num_pixel_frames", 482, "custom_validation_failed")])
def test_an_out_of_range_widget_gets_a_validation_error_not_a_crash(comfy, key, value, error_type):
    prompt = load(TWINS[0])
    sampler_id, sampler = next((k, v) for k, v in prompt.items() if v["class_type"] in MIGA_NODES)
    sampler["inputs"][key] = value
    result = comfy.validate(prompt)
    assert not result.ok
    errors = result.node_errors[sampler_id]["errors"]
    assert any(e["type"] == error_type for e in errors), errors
    if key == "num_pixel_frames":
        assert "4n+1" in json.dumps(errors) and "481 or 485" in json.dumps(errors)


def test_the_server_rejects_an_out_of_range_widget_with_node_errors(comfy_server):
    prompt = load(TWINS[0])
    sampler_id, sampler = next((k, v) for k, v in prompt.items() if v["class_type"] in MIGA_NODES)
    sampler["inputs"]["cfg"] = 1000.0
    status, body = comfy_server.request("/prompt", {"prompt": prompt})
    assert status == 400
    assert sampler_id in body["node_errors"]
