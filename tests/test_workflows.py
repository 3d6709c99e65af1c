"""The shipped ComfyUI workflows and web extensions agree with the node schemas (no ComfyUI needed).

The node modules import ``comfy_api``, so their schemas are read with :mod:`ast`: each
``io.Schema(node_id=..., inputs=..., outputs=...)`` call, with the list-returning helpers of
``nodes/widgets.py`` (``start_inputs(...)`` = ``model_inputs() + queue_inputs() + [...]``) expanded. Core ComfyUI nodes are
described by the small ``CORE`` table below (ComfyUI v0.8.0).
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
API_DIR = WORKFLOWS / "api"  # API twins live one folder down so ComfyUI's template menu lists only UI files
WEB = ROOT / "web"

# short id (the saved video's filename prefix) -> template file name, which frontend 1.35 shows as the template's title,
# description and search text (so it carries the aliases: long video, infinite, fifo, wan)
TEMPLATES = {
    "miga_wan21_t2v_long": "MIGA infinite long video - Wan2.1 text to video 481 frames",
    "miga_wan21_story": "MIGA story - Wan2.1 prompt schedule 721 frames",
    "miga_wan21_fifo_baseline": "FIFO-Diffusion baseline - Wan2.1 fifo mode 481 frames",
    "miga_wan21_continue_clip": "MIGA continue a clip - Wan2.1 KSampler clip to 481 frames",
    "miga_quick_test": "MIGA quick test - Wan2.1 32x32 161 frames",
    "miga_toy_cpu_demo": "MIGA toy CPU demo - no download 257 frames",
    "miga_vc2_t2v_long": "MIGA long video - VideoCrafter2 VC2 text to video 257 frames",
}
TOY = {"miga_toy_cpu_demo"}  # the shipped toy model: no Wan2.1 files
NAMES = list(TEMPLATES)
VC2_NAMES = ["miga_vc2_t2v_long"]
WAN_NAMES = [n for n in NAMES if n not in VC2_NAMES]
LONG_VIDEO = ["miga_wan21_t2v_long", "miga_wan21_story", "miga_wan21_fifo_baseline"]
VIRTUAL = {"Note", "MarkdownNote"}  # frontend-only nodes: never in API format
MODEL_FILES = {"UNETLoader": "wan2.1_t2v_1.3B_fp16.safetensors", "CLIPLoader": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
               "VAELoader": "wan_2.1_vae.safetensors"}
VC2_FILE = "videocrafter2_t2v_512.ckpt"  # VideoCrafter2's released model.ckpt, saved under this name in models/checkpoints

WIDGET_KINDS = {"Int": "INT", "Float": "FLOAT", "String": "STRING", "Combo": "COMBO", "Boolean": "BOOLEAN"}
SOCKET_KINDS = {"Model": "MODEL", "Conditioning": "CONDITIONING", "Latent": "LATENT", "Clip": "CLIP", "Vae": "VAE",
                "Image": "IMAGE"}


@dataclass
class Widget:
    name: str
    kind: str  # INT, FLOAT, STRING, COMBO, BOOLEAN
    control: bool = False  # control_after_generate: one extra UI value ("fixed", "randomize", ...) after it
    options: list | None = None
    low: float | None = None
    high: float | None = None


@dataclass
class Spec:
    """One node type as a workflow sees it: socket inputs, widgets (frontend order) and outputs."""

    sockets: list[tuple[str, str, bool]] = field(default_factory=list)  # (name, type, optional)
    widgets: list[Widget] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def ui_slots(self) -> list[str]:
        """Names of the UI widgets_values entries, in order ("<seed>.control" for control_after_generate)."""
        return [n for w in self.widgets for n in ([w.name, w.name + ".control"] if w.control else [w.name])]

    def input_names(self) -> set[str]:
        return {s[0] for s in self.sockets} | {w.name for w in self.widgets}


def _core(sockets=(), widgets=(), outputs=(), control=()) -> Spec:
    return Spec([(n, t, opt) for n, t, *o in sockets for opt in [bool(o and o[0])]],
                [Widget(n, "ANY", control=n in control) for n in widgets], list(outputs))


CORE: dict[str, Spec] = {
    "UNETLoader": _core(widgets=["unet_name", "weight_dtype"], outputs=["MODEL"]),
    "ModelSamplingSD3": _core([("model", "MODEL")], ["shift"], ["MODEL"]),
    "CLIPLoader": _core(widgets=["clip_name", "type", "device"], outputs=["CLIP"]),
    "VAELoader": _core(widgets=["vae_name"], outputs=["VAE"]),
    "CLIPTextEncode": _core([("clip", "CLIP")], ["text"], ["CONDITIONING"]),
    "EmptyHunyuanLatentVideo": _core(widgets=["width", "height", "length", "batch_size"], outputs=["LATENT"]),
    "KSampler": _core([("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent_image", "LATENT")],
                      ["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"], ["LATENT"], control=["seed"]),
    "VAEDecode": _core([("samples", "LATENT"), ("vae", "VAE")], outputs=["IMAGE"]),
    "CreateVideo": _core([("images", "IMAGE"), ("audio", "AUDIO", True)], ["fps"], ["VIDEO"]),
    "SaveVideo": _core([("video", "VIDEO")], ["filename_prefix", "format", "codec"]),
    "PreviewAny": _core([("source", "*")]),
    "MarkdownNote": _core(widgets=["text"]),
    "Note": _core(widgets=["text"]),
}


# --- node schemas, read from nodes/*.py with ast ------------------------------------------------------------------------

def _dotted(expr: ast.AST) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return _dotted(expr.value) + "." + expr.attr
    return ""


def _literal(expr: ast.AST | None) -> Any:
    try:
        return ast.literal_eval(expr) if expr is not None else None
    except ValueError:
        return None  # a name such as MAX_FRAMES or WAN.window_length: not checked


def _keywords(call: ast.Call) -> dict[str, ast.AST]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _parse_nodes() -> dict[str, Spec]:
    helpers: dict[str, ast.AST] = {}  # function name -> the list expression it returns
    customs: dict[str, str] = {}  # QUEUE -> "MIGA_QUEUE"
    schemas: list[ast.Call] = []
    for path in sorted((ROOT / "nodes").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef):
                returns = [r.value for r in ast.walk(stmt) if isinstance(r, ast.Return) and isinstance(r.value, (ast.List, ast.BinOp))]
                if returns:
                    helpers[stmt.name] = returns[0]
            elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call) and _dotted(stmt.value.func) == "io.Custom":
                customs.update({t.id: stmt.value.args[0].value for t in stmt.targets if isinstance(t, ast.Name)})
        schemas += [c for c in ast.walk(tree) if isinstance(c, ast.Call) and _dotted(c.func) == "io.Schema"]

    def items(expr: ast.AST) -> list[ast.AST]:
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return items(expr.left) + items(expr.right)
        if isinstance(expr, ast.List):
            return list(expr.elts)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in helpers:
            return items(helpers[expr.func.id])
        raise AssertionError(f"cannot read schema list {ast.dump(expr)[:200]}: keep inputs as literals and helper calls")

    def type_of(call: ast.Call) -> tuple[str, str]:  # ("widget" | "socket", type)
        owner = call.func.value  # io.Int in io.Int.Input(...), QUEUE in QUEUE.Input(...)
        if isinstance(owner, ast.Name) and owner.id in customs:
            return "socket", customs[owner.id]
        kind = _dotted(owner).removeprefix("io.")
        if kind in WIDGET_KINDS:
            return "widget", WIDGET_KINDS[kind]
        return "socket", SOCKET_KINDS.get(kind, kind.upper())

    specs: dict[str, Spec] = {}
    for schema in schemas:
        kw = _keywords(schema)
        node_id = _literal(kw["node_id"])
        spec, optional_sockets, optional_widgets = Spec(), [], []
        for call in items(kw.get("inputs", ast.List(elts=[]))):
            assert isinstance(call, ast.Call) and _dotted(call.func).endswith(".Input"), f"{node_id}: unreadable input"
            name, ikw = _literal(call.args[0]), _keywords(call)
            role, kind = type_of(call)
            optional = bool(_literal(ikw.get("optional")))
            if role == "socket":
                (optional_sockets if optional else spec.sockets).append((name, kind, optional))
            else:
                widget = Widget(name, kind, bool(_literal(ikw.get("control_after_generate"))), _literal(ikw.get("options")),
                                _literal(ikw.get("min")), _literal(ikw.get("max")))
                (optional_widgets if optional else spec.widgets).append(widget)
        spec.sockets += optional_sockets  # the frontend lists required inputs first, then optional ones
        spec.widgets += optional_widgets
        for call in items(kw.get("outputs", ast.List(elts=[]))):
            spec.outputs.append(type_of(call)[1])
        specs[node_id] = spec
    return specs


MIGA = _parse_nodes()


def spec_of(class_type: str) -> Spec:
    return MIGA[class_type] if class_type.startswith("Miga") else CORE[class_type]


# --- the workflow files ---------------------------------------------------------------------------------------------------

def ui_files() -> list[pathlib.Path]:
    return sorted(WORKFLOWS.glob("*.json"))


def api_files() -> list[pathlib.Path]:
    return sorted(API_DIR.glob("*.json"))


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def ui(name: str) -> dict:
    return load(WORKFLOWS / f"{TEMPLATES[name]}.json")


def api(name: str) -> dict:
    return load(API_DIR / f"{TEMPLATES[name]}.api.json")


def ui_widgets(node: dict) -> dict[str, Any]:
    """A UI node's widgets_values by input name."""
    slots = spec_of(node["type"]).ui_slots()
    assert len(node["widgets_values"]) == len(slots), (node["id"], node["type"], slots, node["widgets_values"])
    return dict(zip(slots, node["widgets_values"]))


def nodes_of(workflow: dict, class_type: str) -> list[dict]:
    return [n for n in workflow["nodes"] if n["type"] == class_type]


def the(workflow: dict, class_type: str) -> dict:
    found = nodes_of(workflow, class_type)
    assert len(found) == 1, f"expected one {class_type}, found {len(found)}"
    return found[0]


def upstream(workflow: dict, node: dict, input_name: str) -> dict | None:
    """The node whose output feeds ``input_name`` of ``node`` in a UI workflow, or None."""
    link_id = next(i["link"] for i in node["inputs"] if i["name"] == input_name)
    if link_id is None:
        return None
    link = next(link for link in workflow["links"] if link[0] == link_id)
    return next(n for n in workflow["nodes"] if n["id"] == link[1])


# --- tests ----------------------------------------------------------------------------------------------------------------

def test_the_node_schemas_were_read():
    assert {"MigaSampler", "MigaQueueInit", "MigaZigzagStage", "MigaUnifiedStage", "MigaGuidanceOptions",
            "MigaReflectionOptions", "MigaPromptSchedule", "MigaPromptScheduleConditioning", "MigaSaveVideo"} <= set(MIGA)
    sampler = MIGA["MigaSampler"]
    assert [w.name for w in sampler.widgets][:3] == ["width", "height", "num_pixel_frames"]
    assert [s[0] for s in sampler.sockets] == ["model", "positive", "negative", "initial_clip", "prompts", "guidance", "reflection"]
    assert sampler.outputs == ["LATENT", "STRING"]
    assert "seed.control" in sampler.ui_slots()
    assert MIGA["MigaZigzagStage"].sockets[0] == ("queue", "MIGA_QUEUE", False)
    save = MIGA["MigaSaveVideo"]
    assert [s[0] for s in save.sockets] == ["samples", "vae"] and save.outputs == ["IMAGE", "VIDEO"]
    assert [w.name for w in save.widgets] == ["filename_prefix", "fps", "codec", "crf", "decode_chunk", "image_frames"]


def test_every_workflow_file_parses_and_the_six_workflows_ship():
    files = ui_files() + api_files()
    assert all(isinstance(load(p), dict) for p in files)
    assert sorted(p.stem for p in ui_files()) == sorted(TEMPLATES.values())


def test_every_ui_workflow_has_an_api_twin_and_vice_versa():
    assert sorted(p.name for p in api_files()) == sorted(p.stem + ".api.json" for p in ui_files())
    for path in ui_files():
        assert "nodes" in load(path) and load(path)["version"] == 0.4, f"{path.name} is not a UI-format workflow"
    for path in api_files():
        assert all(set(n) <= {"class_type", "inputs", "_meta"} for n in load(path).values()), f"{path.name} is not API format"


@pytest.mark.parametrize("name", NAMES)
def test_twins_have_the_same_node_ids_and_class_types(name):
    workflow, prompt = ui(name), api(name)
    real = {str(n["id"]): n["type"] for n in workflow["nodes"] if n["type"] not in VIRTUAL}
    assert real == {k: v["class_type"] for k, v in prompt.items()}
    ids = [n["id"] for n in workflow["nodes"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and 0 < i < 100 for i in ids)
    assert workflow["last_node_id"] >= max(ids)


@pytest.mark.parametrize("name", NAMES)
def test_every_ui_link_joins_existing_nodes_and_slots_of_one_type(name):
    workflow = ui(name)
    by_id = {n["id"]: n for n in workflow["nodes"]}
    link_ids = [link[0] for link in workflow["links"]]
    assert len(link_ids) == len(set(link_ids)) and workflow["last_link_id"] >= max(link_ids)
    for link_id, src, src_slot, dst, dst_slot, kind in workflow["links"]:
        assert src in by_id and dst in by_id, (name, link_id)
        out, inp = by_id[src]["outputs"][src_slot], by_id[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id, (name, link_id)
        assert out["type"] == kind and inp["type"] in (kind, "*"), (name, link_id, out["type"], inp["type"], kind)
        assert spec_of(by_id[src]["type"]).outputs[src_slot] == kind, (name, link_id)
    for node in workflow["nodes"]:
        for inp in node["inputs"]:
            assert inp["link"] is None or inp["link"] in link_ids, (name, node["id"], inp["name"])
        for out in node["outputs"]:
            assert all(i in link_ids for i in out["links"] or []), (name, node["id"], out["name"])


@pytest.mark.parametrize("name", NAMES)
def test_ui_sockets_and_outputs_follow_the_node_schemas(name):
    for node in ui(name)["nodes"]:
        spec = spec_of(node["type"])
        assert [(i["name"], i["type"]) for i in node["inputs"]] == [(n, t) for n, t, _ in spec.sockets], (name, node["id"])
        assert [o["type"] for o in node["outputs"]] == spec.outputs, (name, node["id"])
        for inp, (_, _, optional) in zip(node["inputs"], spec.sockets):
            assert optional or inp["link"] is not None, f"{name}: required input {inp['name']} of node {node['id']} is unconnected"


@pytest.mark.parametrize("name", NAMES)
def test_ui_links_match_the_api_links(name):
    workflow, prompt = ui(name), api(name)
    by_id = {n["id"]: n for n in workflow["nodes"]}
    expected: dict[tuple[str, str], list] = {}
    for _, src, src_slot, dst, dst_slot, _ in workflow["links"]:
        expected[(str(dst), by_id[dst]["inputs"][dst_slot]["name"])] = [str(src), src_slot]
    found = {(k, i): v for k, node in prompt.items() for i, v in node["inputs"].items() if isinstance(v, list)}
    assert found == expected


@pytest.mark.parametrize("name", NAMES)
def test_every_miga_class_type_is_a_declared_node(name):
    used = {n["type"] for n in ui(name)["nodes"]} | {n["class_type"] for n in api(name).values()}
    assert {t for t in used if t.startswith("Miga")} <= set(MIGA)
    assert {t for t in used if not t.startswith("Miga")} <= set(CORE)


@pytest.mark.parametrize("name", NAMES)
def test_widget_values_line_up_with_the_schemas_and_match_the_api_twin(name):
    workflow, prompt = ui(name), api(name)
    for node in workflow["nodes"]:
        spec, values = spec_of(node["type"]), ui_widgets(node)
        for widget in spec.widgets:
            value = values[widget.name]
            if widget.kind == "INT":
                assert isinstance(value, int) and not isinstance(value, bool), (name, node["id"], widget.name, value)
            elif widget.kind == "FLOAT":
                assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, node["id"], widget.name, value)
            elif widget.kind in ("STRING", "COMBO"):
                assert isinstance(value, str), (name, node["id"], widget.name, value)
            if widget.options is not None:
                assert value in widget.options, (name, node["id"], widget.name, value)
            if widget.low is not None:
                assert value >= widget.low, (name, node["id"], widget.name, value)
            if widget.high is not None:
                assert value <= widget.high, (name, node["id"], widget.name, value)
            if widget.control:
                assert values[widget.name + ".control"] in ("fixed", "increment", "decrement", "randomize")
        if node["type"] in VIRTUAL:
            continue
        api_widgets = {k: v for k, v in prompt[str(node["id"])]["inputs"].items() if not isinstance(v, list)}
        assert api_widgets == {w.name: values[w.name] for w in spec.widgets}, (name, node["id"])


@pytest.mark.parametrize("name", NAMES)
def test_api_inputs_name_only_declared_inputs_and_every_required_one(name):
    for node_id, node in api(name).items():
        spec = spec_of(node["class_type"])
        assert set(node["inputs"]) <= spec.input_names(), (name, node_id, set(node["inputs"]) - spec.input_names())
        required = {n for n, _, optional in spec.sockets if not optional} | {w.name for w in spec.widgets}
        if node["class_type"] == "CLIPLoader":
            required.discard("device")  # optional in core
        assert required <= set(node["inputs"]), (name, node_id, required - set(node["inputs"]))


@pytest.mark.parametrize("name", [n for n in WAN_NAMES if n not in TOY])
def test_workflows_load_the_standard_wan21_files_and_save_16_fps_video_with_the_streaming_save_node(name):
    prompt = api(name)
    for class_type, filename in MODEL_FILES.items():
        loaders = [n["inputs"] for n in prompt.values() if n["class_type"] == class_type]
        assert loaders and all(filename in inputs.values() for inputs in loaders), (name, class_type)
    assert [n["inputs"]["type"] for n in prompt.values() if n["class_type"] == "CLIPLoader"] == ["wan"]
    assert [n["inputs"]["shift"] for n in prompt.values() if n["class_type"] == "ModelSamplingSD3"] == [8.0]
    saves = [n["inputs"] for n in prompt.values() if n["class_type"] == "MigaSaveVideo"]
    assert [s["fps"] for s in saves] == [16.0] and saves[0]["filename_prefix"] == f"video/{name}"
    assert saves[0]["samples"][0] in {k for k, n in prompt.items() if n["class_type"] in ("MigaSampler", "MigaUnifiedStage")}
    assert not {"VAEDecode", "CreateVideo", "SaveVideo"} & {n["class_type"] for n in prompt.values()}  # no full-video decode


@pytest.mark.parametrize("name", NAMES)
def test_every_ui_workflow_explains_itself_in_a_note(name):
    notes = [n for n in ui(name)["nodes"] if n["type"] in VIRTUAL]
    assert notes and all(len(n["widgets_values"][0]) > 200 for n in notes)
    text = notes[0]["widgets_values"][0]
    files = [VC2_FILE, "model.ckpt", "models/checkpoints"] if name in VC2_NAMES else [] if name in TOY else MODEL_FILES.values()
    assert all(filename in text for filename in files), name


@pytest.mark.parametrize("name", VC2_NAMES)
def test_vc2_workflows_load_vc2_with_its_loader_and_save_8_fps_video(name):
    prompt = api(name)
    loaders = [n["inputs"] for n in prompt.values() if n["class_type"] == "MigaVC2Loader"]
    assert loaders == [{"ckpt_name": VC2_FILE, "fps": 8}]
    assert not {"UNETLoader", "CLIPLoader", "VAELoader", "ModelSamplingSD3"} & {n["class_type"] for n in prompt.values()}
    saves = [n["inputs"] for n in prompt.values() if n["class_type"] == "MigaSaveVideo"]
    assert [s["fps"] for s in saves] == [8.0] and saves[0]["filename_prefix"] == f"video/{name}"  # VC2's frame rate
    assert not {"VAEDecode", "CreateVideo", "SaveVideo"} & {n["class_type"] for n in prompt.values()}


def test_the_vc2_long_video_uses_the_paper_vc2_preset_and_the_empty_prompt_as_negative():
    from miga_core import preset

    config, guidance, reflection = preset("vc2")
    workflow = ui("miga_vc2_t2v_long")
    node = the(workflow, "MigaSampler")
    sampler = ui_widgets(node)
    assert (sampler["mode"], sampler["steps"], sampler["cfg"]) == ("miga", 64, 12.0)  # docs/algorithm.md "Paper defaults": T 64, CFG 12
    assert (sampler["window_length"], sampler["zigzag_width"], sampler["unified_steps"], sampler["sampler"]) == \
        (config.window_length, config.zigzag_width, config.unified_steps, config.sampler)
    assert sampler["width"] % 64 == 0 and sampler["height"] % 64 == 0  # VC2's UNet halves the latent 3 times
    assert sampler["num_pixel_frames"] >= 16 * config.window_length and (sampler["num_pixel_frames"] - 1) % 4 == 0  # the UI's step-4 grid
    loader = upstream(workflow, node, "model")
    assert loader["type"] == "MigaVC2Loader"
    assert upstream(workflow, node, "positive")["type"] == upstream(workflow, node, "negative")["type"] == "CLIPTextEncode"
    assert ui_widgets(upstream(workflow, node, "negative"))["text"] == ""  # VC2's unconditional input
    assert ui_widgets(upstream(workflow, node, "positive"))["text"].strip()
    assert upstream(workflow, upstream(workflow, node, "negative"), "clip") is loader
    assert ui_widgets(upstream(workflow, node, "guidance"))["num_guidance"] == guidance.num_guidance
    options = ui_widgets(upstream(workflow, node, "reflection"))
    assert (options["threshold"], options["num_eval"], options["num_ref"], options["num_candidates"], options["score_on"]) == \
        (reflection.threshold, reflection.num_eval, reflection.num_ref, reflection.num_candidates, reflection.score_on)
    # the vc2 preset stays the paper's (issue 9 changed wan21 only)
    assert (sampler["update"], sampler["borders"]) == (config.update, config.borders) == ("lookahead", "fixed")
    assert ui_widgets(upstream(workflow, node, "guidance"))["positions"] == guidance.positions == "even"
    assert (options["phase"], options["candidate_guidance"]) == (reflection.phase, reflection.candidate_guidance)
    assert upstream(workflow, the(workflow, "MigaSaveVideo"), "vae") is loader


@pytest.mark.parametrize("name", LONG_VIDEO)
def test_long_video_workflows_ask_for_at_least_481_frames_of_the_form_4n_plus_1(name):
    sampler = ui_widgets(the(ui(name), "MigaSampler"))
    assert sampler["num_pixel_frames"] >= 481 and (sampler["num_pixel_frames"] - 1) % 4 == 0


def test_the_long_video_uses_the_wan21_defaults_with_guidance_and_reflection():
    workflow = ui("miga_wan21_t2v_long")
    node = the(workflow, "MigaSampler")
    sampler = ui_widgets(node)
    assert (sampler["mode"], sampler["steps"], sampler["window_length"], sampler["zigzag_width"], sampler["unified_steps"]) == \
        ("miga", 54, 21, 7, 9)
    assert upstream(workflow, node, "guidance")["type"] == "MigaGuidanceOptions"
    assert upstream(workflow, node, "reflection")["type"] == "MigaReflectionOptions"
    assert ui_widgets(the(workflow, "MigaGuidanceOptions"))["num_guidance"] == 4
    assert ui_widgets(the(workflow, "MigaReflectionOptions"))["threshold"] == 0.01


# the Wan2.1 MIGA workflows (not the FIFO baseline, the toy demo or VC2) show the wan21 preset (issue 9)
WAN_MIGA = [n for n in WAN_NAMES if n not in TOY and n != "miga_wan21_fifo_baseline"]


@pytest.mark.parametrize("name", WAN_MIGA)
def test_wan_miga_workflows_use_the_wan21_preset_choices_of_the_released_code(name):
    from miga_core import preset

    config, guidance, reflection = preset("wan21")
    workflow = ui(name)
    start = next(n for n in workflow["nodes"] if n["type"] in ("MigaSampler", "MigaQueueInit"))
    s = ui_widgets(start)
    assert (s["update"], s["borders"]) == (config.update, config.borders) == ("official", "rotating")
    assert ui_widgets(the(workflow, "MigaGuidanceOptions"))["positions"] == guidance.positions == "official"
    r = ui_widgets(the(workflow, "MigaReflectionOptions"))
    values = (r["threshold"], r["num_eval"], r["num_ref"], r["num_candidates"], r["num_guide"], r["phase"], r["candidate_guidance"])
    if name == "miga_wan21_continue_clip":
        # on MIGA Zigzag Stage the queue is already built: phase build cannot check there (refused), the paper's stage1 can
        assert values == (0.01, 4, 8, 4, -1, "stage1", True)
    else:
        assert values == (reflection.threshold, reflection.num_eval, reflection.num_ref, reflection.num_candidates, reflection.num_guide,
                          reflection.phase, reflection.candidate_guidance) == (0.01, 7, 14, 3, 14, "build", False)
        assert r["judge_from_tail"] == reflection.judge_from_tail == 10


def test_widgets_added_after_the_first_release_come_last_in_their_nodes():
    """Widget order is part of every saved workflow: inputs are appended, never inserted (issue 9 appended these)."""
    assert [w.name for w in MIGA["MigaSampler"].widgets][-4:] == ["resume_from", "checkpoint_minutes", "devices", "borders"]
    assert [w.name for w in MIGA["MigaQueueInit"].widgets][-3:] == ["update", "window_batch", "borders"]
    assert [w.name for w in MIGA["MigaGuidanceOptions"].widgets] == ["num_guidance", "positions"]
    assert [w.name for w in MIGA["MigaReflectionOptions"].widgets] == [
        "threshold", "num_eval", "num_ref", "num_candidates", "score_on", "num_guide", "judge_position", "phase", "judge_from_tail",
        "candidate_guidance"]
    update = next(w for w in MIGA["MigaSampler"].widgets if w.name == "update")
    assert update.options == ["lookahead", "former", "official"]


def test_the_fifo_baseline_differs_from_the_long_video_only_in_mode_and_options():
    miga, fifo = ui("miga_wan21_t2v_long"), ui("miga_wan21_fifo_baseline")
    a, b = ui_widgets(the(miga, "MigaSampler")), ui_widgets(the(fifo, "MigaSampler"))
    assert b["mode"] == "fifo" and a["mode"] == "miga"
    assert (b["zigzag_width"], b["unified_steps"], b["update"]) == (1, 0, "lookahead")  # what fifo mode needs (never overwritten silently)
    assert b["borders"] == "fixed"  # FIFO-Diffusion's
    fifo_only = {"mode", "zigzag_width", "unified_steps", "update", "borders"}
    assert {k: v for k, v in a.items() if k not in fifo_only} == {k: v for k, v in b.items() if k not in fifo_only}
    fifo_sampler = the(fifo, "MigaSampler")
    assert upstream(fifo, fifo_sampler, "guidance") is None and upstream(fifo, fifo_sampler, "reflection") is None
    texts = [sorted(ui_widgets(n)["text"] for n in nodes_of(w, "CLIPTextEncode")) for w in (miga, fifo)]
    assert texts[0] == texts[1]


def test_the_story_schedules_three_prompts_inside_the_video():
    workflow = ui("miga_wan21_story")
    node = the(workflow, "MigaSampler")
    frames = ui_widgets(node)["num_pixel_frames"]
    schedule = upstream(workflow, node, "prompts")
    assert schedule["type"] == "MigaPromptSchedule"
    keyframes = json.loads(ui_widgets(schedule)["keyframes"])
    starts = sorted(int(k) for k in keyframes)
    assert len(keyframes) == 3 and starts[0] == 0 and starts[-1] < frames
    assert all(isinstance(text, str) and text.strip() for text in keyframes.values())
    assert upstream(workflow, schedule, "clip")["type"] == "CLIPLoader"


def test_the_continuation_feeds_an_81_frame_ksampler_clip_through_the_composable_chain():
    workflow = ui("miga_wan21_continue_clip")
    init, zigzag, unified = (the(workflow, t) for t in ("MigaQueueInit", "MigaZigzagStage", "MigaUnifiedStage"))
    ksampler = upstream(workflow, init, "initial_clip")
    assert ksampler["type"] == "KSampler"
    empty = upstream(workflow, ksampler, "latent_image")
    size = ui_widgets(empty)
    settings = ui_widgets(init)
    assert (size["width"], size["height"], size["length"]) == (settings["width"], settings["height"], 81)
    assert (size["length"] - 1) // 4 + 1 == settings["window_length"] == 21
    assert upstream(workflow, zigzag, "queue") is init and upstream(workflow, unified, "queue") is zigzag
    assert upstream(workflow, zigzag, "reflection")["type"] == "MigaReflectionOptions"
    assert upstream(workflow, the(workflow, "MigaSaveVideo"), "samples") is unified
    assert settings["num_pixel_frames"] >= 481


def test_the_toy_demo_uses_the_toy_preset_at_18_steps_and_switches_colour_at_the_middle():
    """The toy preset but 18 steps instead of its 48: its 257 frames then take about a minute on 2 CPU cores
    (benchmarks/results/toy_demo_cpu.json)."""
    workflow = ui("miga_toy_cpu_demo")
    node = the(workflow, "MigaSampler")
    s = ui_widgets(node)
    assert (s["num_pixel_frames"], s["window_length"], s["zigzag_width"], s["unified_steps"], s["steps"], s["cfg"], s["sampler"],
            s["width"], s["height"], s["update"], s["borders"]) == (257, 16, 4, 6, 18, 3.0, "euler", 32, 32, "lookahead", "fixed")
    assert upstream(workflow, node, "model")["type"] == "MigaToyLoader"
    schedule = upstream(workflow, node, "prompts")
    assert schedule["type"] == "MigaPromptScheduleConditioning"
    assert [int(p) for p in ui_widgets(schedule)["start_frames"].split(",")] == [0, (s["num_pixel_frames"] - 1) // 2]
    texts = [ui_widgets(upstream(workflow, schedule, f"conditioning_{i}"))["text"] for i in (1, 2)]
    assert texts[0] != texts[1] and texts[0].split()[2:] == texts[1].split()[2:]  # only the colour changes
    assert ui_widgets(upstream(workflow, node, "negative"))["text"] == ""  # the null prompt
    save = the(workflow, "MigaSaveVideo")
    assert upstream(workflow, save, "vae")["type"] == "MigaToyLoader" and upstream(workflow, save, "samples") is node


# --- web extensions -------------------------------------------------------------------------------------------------------

def web_files() -> list[pathlib.Path]:
    return sorted(WEB.glob("*.js"))


def test_web_extensions_register_under_the_miga_prefix():
    names = [m for p in web_files() for m in re.findall(r"registerExtension\(\s*\{\s*name:\s*\"([^\"]+)\"", p.read_text())]
    assert len(names) >= 2 and len(set(names)) == len(names)
    assert all(re.fullmatch(r"Miga\.[A-Z]\w+", n) for n in names), names
    for path in web_files():
        calls = path.read_text().count("registerExtension(")
        assert calls <= 1, f"{path.name}: one concern (extension) per file"


def test_web_extensions_import_only_the_app_and_their_siblings():
    for path in web_files():
        for target in re.findall(r"^import .* from \"([^\"]+)\";", path.read_text(), re.M):
            assert target == "../../scripts/app.js" or (target.startswith("./") and (WEB / target[2:]).exists()), (path.name, target)


def test_web_extensions_reference_only_existing_node_types_widgets_and_options():
    text = "\n".join(p.read_text() for p in web_files())
    node_types = set(re.findall(r"\"(Miga[A-Z]\w*)\"", text))
    assert {"MigaSampler", "MigaQueueInit"} <= node_types <= set(MIGA), node_types
    widgets = set(re.findall(r"findWidget\(\s*\w+\s*,\s*\"(\w+)\"\s*\)", text))
    assert {"num_pixel_frames", "mode", "zigzag_width", "unified_steps"} <= widgets
    every = {w.name for node_type in node_types for w in MIGA[node_type].widgets} | {"fps"}  # CreateVideo's fps
    assert widgets <= every, widgets - every
    for node_type in ("MigaSampler", "MigaQueueInit"):
        mode = next(w for w in MIGA[node_type].widgets if w.name == "mode")
        assert set(re.findall(r"\.value\s*===\s*\"(\w+)\"", text)) <= set(mode.options)  # mode compared to its options only


def test_every_node_input_and_output_has_a_tooltip():
    """Every io.<Type>.Input(...) / .Output(...) in the node modules passes a non-empty tooltip (issue 8)."""
    missing = []
    for path in sorted((ROOT / "nodes").glob("*.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in ("Input", "Output")):
                continue
            tooltip = next((k.value for k in call.keywords if k.arg == "tooltip"), None)
            empty = isinstance(tooltip, ast.Constant) and not str(tooltip.value).strip()
            if tooltip is None or empty:
                name = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else \
                    next((k.value.value for k in call.keywords if k.arg == "display_name"), "?")
                missing.append(f"{path.name}:{call.lineno} {name}")
    assert not missing, missing
