"""The nodes' defaults are the ``wan21`` preset inside ComfyUI v0.8.0 (issue 9): the shipped quick-test workflow runs the
preset's plan (rotating borders, the official update rule and guidance positions, self-reflection while the queue is
built); a prompt saved before the new widgets existed still validates and runs, with the new defaults for what it lacks
(fifo mode: FIFO-Diffusion's fixed borders); bad values of the new widgets are refused before the run.

The plan each run used is read by wrapping ``nodes.runner.run_plan`` (the node's one call into miga_core.run).
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
API = ROOT / "workflows" / "api"
QUICK = API / "MIGA quick test - Wan2.1 32x32 161 frames.api.json"
FIFO = API / "FIFO-Diffusion baseline - Wan2.1 fifo mode 481 frames.api.json"
CONTINUE = API / "MIGA continue a clip - Wan2.1 KSampler clip to 481 frames.api.json"
FRAMES, STEPS = 85, 24  # 22 latents, as tests/host/test_workflows_host.py shrinks the workflows

#: The inputs issue 9 appended, per node type; a prompt saved before it has none of them.
APPENDED = {"MigaSampler": ("borders",), "MigaQueueInit": ("borders",), "MigaGuidanceOptions": ("positions",),
            "MigaReflectionOptions": ("phase", "judge_from_tail", "candidate_guidance")}
#: The values the shipped workflows had before issue 9 (the paper's), for the widgets that existed then.
BEFORE = {"MigaSampler": {"update": "lookahead"},
          "MigaReflectionOptions": {"num_eval": 4, "num_ref": 8, "num_candidates": 4, "num_guide": -1}}


def load(path: pathlib.Path, frames: int = FRAMES) -> dict:
    prompt = json.loads(path.read_text())
    for node in prompt.values():
        if node["class_type"] in ("MigaSampler", "MigaQueueInit"):
            node["inputs"].update(num_pixel_frames=frames, steps=STEPS, width=32, height=32)
    return prompt


def saved_before_issue_9(prompt: dict) -> dict:
    out = copy.deepcopy(prompt)
    for node in out.values():
        for name in APPENDED.get(node["class_type"], ()):
            node["inputs"].pop(name)
        node["inputs"].update(BEFORE.get(node["class_type"], {}))
    return out


@pytest.fixture()
def plans(comfy, monkeypatch):
    """The RunPlan of every MigaSampler run while the test runs."""
    runner = comfy.pack_submodule("nodes.runner")
    seen = []
    original = runner.run_plan

    def spy(denoiser, sigmas, plan, **kwargs):
        seen.append(plan)
        return original(denoiser, sigmas, plan, **kwargs)

    monkeypatch.setattr(runner, "run_plan", spy)
    comfy.reset_cache()
    return seen


def report_of(comfy, run, prompt: dict) -> dict:
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "MigaSampler")
    preview = next(k for k, n in prompt.items() if n["class_type"] == "PreviewAny" and n["inputs"]["source"][0] == sampler)
    return json.loads(run.outputs[preview]["text"][0])


def test_the_shipped_quick_test_runs_the_wan21_preset(comfy, plans):
    core = comfy.pack_submodule("miga_core")
    config, guidance, reflection = core.preset("wan21")
    prompt = load(QUICK)
    run = comfy.execute(prompt)
    (plan,) = plans
    assert (plan.config.borders, plan.config.update, plan.guidance.positions) == ("rotating", "official", "official")
    assert plan.reflection == reflection  # phase build, 7 vs 14, guide 14, judge 10 groups from the tail, 3 candidates unguided
    assert (plan.config.window_length, plan.config.zigzag_width, plan.config.unified_steps, plan.config.sampler) == \
        (config.window_length, config.zigzag_width, config.unified_steps, config.sampler)
    expected = core.plan_run(config, STEPS, 22, guidance=guidance, reflection=reflection)
    assert plan.calls == expected.calls and plan.check_passes == expected.check_passes == (9, 10)
    paper_config, paper_guidance, paper_reflection = core.preset("wan21-paper")
    paper = core.plan_run(paper_config, STEPS, 22, guidance=paper_guidance, reflection=paper_reflection)
    report = report_of(comfy, run, prompt)
    assert report["windows_planned"] == expected.total_calls < paper.total_calls  # the official update rule: fewer windows
    assert report["reflection"]["n_all"] == len(expected.check_passes)  # one check per listed build pass (the paper: per stage-1 pass)


def test_a_prompt_saved_before_the_new_widgets_runs_with_the_new_defaults(comfy, plans):
    old = saved_before_issue_9(load(QUICK))
    assert "borders" not in next(n for n in old.values() if n["class_type"] == "MigaSampler")["inputs"]
    run = comfy.execute(old)  # validates (nothing required is missing) and runs
    (plan,) = plans
    assert plan.config.update == "lookahead"  # saved, so kept
    assert (plan.config.borders, plan.guidance.positions) == ("rotating", "official")  # not saved: the new defaults
    r = plan.reflection
    assert (r.num_eval, r.num_ref, r.num_candidates, r.num_guide) == (4, 8, 4, None)  # saved
    assert (r.phase, r.judge_from_tail, r.candidate_guidance) == ("build", 10, False)  # not saved: the new defaults
    assert report_of(comfy, run, old)["windows_planned"] == plan.total_calls


def test_a_fifo_prompt_saved_before_the_borders_widget_keeps_fifo_diffusions_fixed_borders(comfy, plans):
    old = saved_before_issue_9(load(FIFO))
    comfy.execute(old)
    (plan,) = plans
    assert (plan.variant, plan.config.mode, plan.config.borders, plan.config.update) == ("fifo", "fifo", "fixed", "lookahead")


@pytest.mark.parametrize("node_type, changes, words", [
    # the judged group of phase build is judge_from_tail * zigzag_width = 7 latents: 8 scored latents do not fit
    ("MigaReflectionOptions", {"judge_from_tail": 1, "num_eval": 8}, ["num_eval=8", "judge_from_tail * zigzag_width = 7"]),
    ("MigaSampler", {"update": "official"}, ["mode", "fifo", "mode 'miga'"]),  # fifo mode refuses the official rule
])
def test_new_values_the_run_cannot_take_are_refused_before_it(comfy, node_type, changes, words):
    prompt = load(FIFO if node_type == "MigaSampler" else QUICK)
    node_id = next(k for k, n in prompt.items() if n["class_type"] == node_type)
    prompt[node_id]["inputs"].update(changes)
    result = comfy.validate(prompt)
    assert not result.ok
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "MigaSampler")
    messages = json.dumps(result.node_errors[sampler])
    assert all(w in messages for w in words), messages


@pytest.mark.parametrize("node_type, name, value", [("MigaSampler", "borders", "diagonal"), ("MigaGuidanceOptions", "positions", "odd"),
                                                    ("MigaReflectionOptions", "phase", "stage2")])
def test_an_unknown_option_of_a_new_combo_is_comfyuis_own_validation_error(comfy, node_type, name, value):
    prompt = load(QUICK)
    node_id = next(k for k, n in prompt.items() if n["class_type"] == node_type)
    prompt[node_id]["inputs"][name] = value
    result = comfy.validate(prompt)
    assert not result.ok and node_id in result.node_errors
    assert any(e["type"] == "value_not_in_list" for e in result.node_errors[node_id]["errors"]), result.node_errors


def test_the_zigzag_stage_refuses_phase_build_before_the_run(comfy):
    """MIGA Queue Initialization has built the queue when the zigzag stage gets it: a phase build check would never run."""
    prompt = load(CONTINUE)
    zigzag = next(k for k, n in prompt.items() if n["class_type"] == "MigaZigzagStage")
    assert comfy.validate(prompt).ok  # as shipped: phase stage1
    options = next(n for n in prompt.values() if n["class_type"] == "MigaReflectionOptions")
    options["inputs"].update(phase="build")
    result = comfy.validate(prompt)
    assert not result.ok
    message = json.dumps(result.node_errors[zigzag])
    assert "phase='build'" in message and "stage1" in message and "MIGA Long Video Sampler" in message, message
