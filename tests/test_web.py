"""The web extensions, run under node (no browser, no ComfyUI): the JS frame rule agrees with the Python one, and
the fifo-mode extension sets, shows and restores zigzag_width / unified_steps (issue 8) and update / borders (issue 9).

Skipped where ``node`` is not installed.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess

import pytest

from miga_core import MigaError
from miga_core.frames import num_latent_frames

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node (JavaScript) is not installed")
MAX = 10_000


def run_node(script: str, cwd: pathlib.Path) -> object:
    out = subprocess.run([NODE, "--input-type=module", "-e", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def python_rule(frames: int) -> tuple[int | None, list[int] | None]:
    """(latents, the two counts the refusal suggests) from miga_core.frames."""
    try:
        return num_latent_frames(frames, "wan21"), None
    except MigaError as exc:
        found = re.search(r"use (\d+) or (\d+)", str(exc))
        return None, [int(found[1]), int(found[2])] if found else None


def test_js_and_python_frame_rules_agree_on_0_to_10000_frames():
    script = (f"import {{ numLatentFrames, nearestFrameCounts }} from {json.dumps((WEB / 'miga_frame_rule.js').as_uri())};\n"
              f"const out = []; for (let f = 0; f <= {MAX}; f++) out.push([numLatentFrames(f), nearestFrameCounts(f)]);\n"
              "console.log(JSON.stringify(out));")
    js = run_node(script, ROOT)
    py = [list(python_rule(f)) for f in range(MAX + 1)]
    assert len(js) == MAX + 1
    mismatches = [(f, js[f], py[f]) for f in range(MAX + 1) if js[f] != py[f]]
    assert not mismatches, mismatches[:10]
    assert sum(j[0] is not None for j in js) == MAX // 4  # 1, 5, ..., 9997


def python_families() -> dict[str, dict]:
    """nodes/families.py's table (name -> latent rule, loader node, default fps), read with ast: the nodes package needs ComfyUI."""
    import ast

    out = {}
    for call in ast.walk(ast.parse((ROOT / "nodes" / "families.py").read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "ModelFamily":
            kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if isinstance(k.value, ast.Constant)}
            out[kw["name"]] = {"rule": kw["latent_rule"], "loader": kw.get("loader_node"), "fps": kw.get("default_fps")}
    return out


def test_the_js_family_table_and_vc2_rule_agree_with_python():
    script = (f"import {{ FAMILIES, numLatentFrames, nearestFrameCounts }} from {json.dumps((WEB / 'miga_frame_rule.js').as_uri())};\n"
              "const out = []; for (let f = 0; f <= 1000; f++) out.push([numLatentFrames(f, 'vc2'), nearestFrameCounts(f, 'vc2')]);\n"
              "console.log(JSON.stringify({ families: FAMILIES, vc2: out }));")
    js = run_node(script, ROOT)
    py = python_families()
    assert set(py) == set(js["families"]) == {"wan21", "vc2", "toy"}, (py, js["families"])
    for name, fam in py.items():
        assert js["families"][name]["rule"] == fam["rule"] and js["families"][name]["loader"] == fam["loader"], name
        if fam["fps"] is not None:
            assert js["families"][name]["fps"] == fam["fps"], name
    assert js["vc2"] == [[num_latent_frames(f, "vc2"), None] if f >= 1 else [None, None] for f in range(1001)]


def test_the_frame_rule_module_loads_without_the_app():
    text = (WEB / "miga_frame_rule.js").read_text()
    assert not re.search(r"^\s*import\b", text, re.M), "the rule module must import nothing (node loads it alone)"


FIFO_DRIVER = """
import { calls } from "./scripts/app.js";
await import("./extensions/miga/miga_mode.js");
const ext = calls[0];
function widget(name, value) { return { name, value, callback: null }; }
function makeNode(mode, zig, uni, properties) {
  return { comfyClass: "MigaSampler", properties,
           widgets: [widget("mode", mode), widget("zigzag_width", zig), widget("unified_steps", uni)] };
}
const view = (n) => ({ mode: n.widgets[0].value, zig: n.widgets[1].value, uni: n.widgets[2].value,
                       disabled: n.widgets[1].disabled, label: n.widgets[1].label, saved: n.properties?.miga_values_before_fifo ?? null });
const steps = [];
const a = makeNode("miga", 7, 9, {});
ext.nodeCreated(a); steps.push(view(a));
a.widgets[0].value = "fifo"; a.widgets[0].callback("fifo"); steps.push(view(a));
a.widgets[0].value = "miga"; a.widgets[0].callback("miga"); steps.push(view(a));
const b = makeNode("miga", 7, 9, {});               // a saved fifo workflow with the old values 7 / 9
ext.nodeCreated(b); b.widgets[0].value = "fifo"; ext.loadedGraphNode(b); steps.push(view(b));
b.widgets[0].value = "miga"; b.widgets[0].callback("miga"); steps.push(view(b));
console.log(JSON.stringify(steps));
"""


def test_fifo_mode_sets_the_fifo_values_visibly_and_restores_the_previous_ones(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text("export const calls = []; export const app = { registerExtension(e) { calls.push(e); } };\n")
    shutil.copytree(WEB, tmp_path / "extensions" / "miga")
    created, to_fifo, back, loaded, loaded_back = run_node(FIFO_DRIVER, tmp_path)
    assert (created["zig"], created["uni"], created["disabled"]) == (7, 9, False)
    assert (to_fifo["zig"], to_fifo["uni"], to_fifo["disabled"]) == (1, 0, True)
    assert "fifo" in to_fifo["label"] and to_fifo["saved"] == {"zigzag_width": 7, "unified_steps": 9}
    assert (back["zig"], back["uni"], back["disabled"], back["saved"]) == (7, 9, False, None)
    assert (loaded["zig"], loaded["uni"], loaded["disabled"]) == (1, 0, True)
    assert (loaded_back["zig"], loaded_back["uni"]) == (7, 9)


FIFO_PROFILE_DRIVER = """
import { calls } from "./scripts/app.js";
await import("./extensions/miga/miga_mode.js");
const ext = calls[0];
function widget(name, value) { return { name, value, callback: null }; }
const names = ["mode", "zigzag_width", "unified_steps", "update", "borders"];
const n = { comfyClass: "MigaSampler", properties: {},
            widgets: [widget("mode", "miga"), widget("zigzag_width", 7), widget("unified_steps", 9), widget("update", "official"),
                      widget("borders", "rotating")] };
const view = () => Object.fromEntries(n.widgets.map((w) => [w.name, [w.value, Boolean(w.disabled)]]));
ext.nodeCreated(n);
const steps = [view()];
n.widgets[0].value = "fifo"; n.widgets[0].callback("fifo"); steps.push(view());
steps.push(n.properties.miga_values_before_fifo);
n.widgets[0].value = "miga"; n.widgets[0].callback("miga"); steps.push(view());
console.log(JSON.stringify(steps));
"""


def test_fifo_mode_also_sets_update_lookahead_and_fixed_borders_and_restores_the_wan21_defaults(tmp_path):
    """The wan21 defaults (update official, rotating borders, issue 9) are refused / not FIFO-Diffusion's in fifo mode."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text("export const calls = []; export const app = { registerExtension(e) { calls.push(e); } };\n")
    shutil.copytree(WEB, tmp_path / "extensions" / "miga")
    created, to_fifo, saved, back = run_node(FIFO_PROFILE_DRIVER, tmp_path)
    assert created == {"mode": ["miga", False], "zigzag_width": [7, False], "unified_steps": [9, False], "update": ["official", False],
                       "borders": ["rotating", False]}
    assert to_fifo == {"mode": ["fifo", False], "zigzag_width": [1, True], "unified_steps": [0, True], "update": ["lookahead", True],
                       "borders": ["fixed", True]}
    assert saved == {"zigzag_width": 7, "unified_steps": 9, "update": "official", "borders": "rotating"}
    assert back == created
