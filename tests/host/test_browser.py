"""The web extension in a real browser: Debian's chromium driven by Playwright against a ComfyUI v0.8.0 server with
the pack (issue 14). Skipped without ``COMFYUI_PATH`` (conftest), Playwright for Python or a ``chromium`` binary
(never ``playwright install``: the tests use the system browser).

Screenshots go to ``$MIGA_SHOTS`` (default ``/tmp/miga_shots``), outside the repository.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
PACK = "comfyui-miga"
SHOTS = pathlib.Path(os.environ.get("MIGA_SHOTS", "/tmp/miga_shots"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Page:
    """A ComfyUI page with the pack's console errors and 404s recorded."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 1600, "height": 1000})
        self.errors: list[str] = []
        self.missing: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", lambda r: self.missing.append(r.url) if r.status == 404 else None)
        # a new user's first visit opens the template browser over the canvas (frontend 1.35: Comfy.TutorialCompleted)
        self.page.request.post(f"{url}/settings/Comfy.TutorialCompleted", data="true", headers={"Content-Type": "application/json"})
        self.page.goto(url)
        self.page.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=60_000)
        self.page.wait_for_timeout(1500)

    def pack_problems(self) -> list[str]:
        pack = [e for e in self.errors if "miga" in e.lower()]
        return pack + [u for u in self.missing if "miga" in u.lower()]

    def load(self, name: str) -> None:
        self.page.evaluate(
            """async (name) => {
                 const r = await fetch(`/api/workflow_templates/comfyui-miga/${encodeURIComponent(name)}.json`);
                 await window.app.loadGraphData(await r.json(), true, true, name);
               }""", name)
        self.page.wait_for_timeout(800)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def focus(self, node_type: str) -> None:
        self.page.keyboard.press("Escape")  # the first visit may open the template browser: close it
        self.page.evaluate("() => document.querySelectorAll('.p-dialog button[aria-label=\"Close\"], .p-dialog-close-button')"
                           ".forEach((b) => b.click())")
        self.page.wait_for_timeout(300)
        self.page.evaluate("""(t) => { const n = app.graph._nodes.find((n) => n.comfyClass === t);
                                       app.canvas.ds.scale = 1; app.canvas.centerOnNode?.(n); app.graph.setDirtyCanvas(true, true); }""",
                           node_type)
        self.page.wait_for_timeout(500)


@pytest.fixture
def page(browser, comfy_server):
    p = Page(browser, comfy_server.url)
    yield p
    p.page.close()


def test_every_template_loads_with_its_thumbnail_and_no_missing_node_or_pack_error(page, comfy_server):
    listed = comfy_server.get_json("/workflow_templates")[PACK]
    assert sorted(listed) == TEMPLATES
    for name in TEMPLATES:
        status = page.page.request.get(f"{comfy_server.url}/api/workflow_templates/{PACK}/{urllib.parse.quote(name)}.jpg").status
        assert status == 200, f"thumbnail of {name}: HTTP {status}"
    page.page.evaluate("() => app.extensionManager?.command?.execute?.('Comfy.BrowseTemplates')")
    page.page.wait_for_timeout(1500)
    search = page.page.get_by_placeholder("Search")
    for alias, expected in (("fifo", "FIFO-Diffusion baseline"), ("infinite", "MIGA infinite long video"), ("long video", "MIGA")):
        search.fill(alias)
        page.page.wait_for_timeout(800)
        assert expected in page.page.inner_text(".p-dialog"), f"searching {alias!r} does not find {expected!r}"
    search.fill("")
    page.page.get_by_text(PACK, exact=True).last.click()  # the pack's category: its five cards with their thumbnails
    page.page.wait_for_timeout(1500)
    page.shot("templates_dialog")
    page.page.keyboard.press("Escape")
    for name in TEMPLATES:
        page.load(name)
        unknown = page.page.evaluate("() => app.graph._nodes.filter((n) => !LiteGraph.registered_node_types[n.type]).map((n) => n.type)")
        assert unknown == [], (name, unknown)
        dialogs = page.page.evaluate("() => [...document.querySelectorAll('.p-dialog')].map((d) => d.innerText)")
        assert not any("missing" in d.lower() for d in dialogs), (name, dialogs)
    assert page.pack_problems() == []


def test_fifo_mode_marks_the_guidance_and_reflection_sockets(page):
    page.load("MIGA infinite long video - Wan2.1 text to video 481 frames")
    marked = page.page.evaluate("""() => { const n = app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler');
        const mode = n.widgets.find((w) => w.name === 'mode'); mode.value = 'fifo'; mode.callback?.('fifo');
        return { incompatible: n.__miga.incompatible, labels: n.inputs.filter((i) => ['guidance', 'reflection'].includes(i.name)).map((i) => i.label),
                 zig: n.widgets.find((w) => w.name === 'zigzag_width').value }; }""")
    assert sorted(i["name"] for i in marked["incompatible"]) == ["guidance", "reflection"]
    assert all(i["linked"] for i in marked["incompatible"])
    assert all("not in fifo" in label for label in marked["labels"])
    assert marked["zig"] == 1
    page.focus("MigaSampler")
    page.shot("fifo_sockets")


def test_the_cost_preview_shows_planned_calls_and_a_labelled_estimate(page):
    page.load("MIGA infinite long video - Wan2.1 text to video 481 frames")
    page.page.wait_for_function("""() => { const n = app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler');
                                           return n.__miga?.panel?.sections.get('cost'); }""", timeout=15_000)
    cost = page.page.evaluate("""() => app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler').__miga.panel.sections.get('cost')
                                 .lines.map((l) => l.text)""")
    plan = page.page.evaluate("() => app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler').__miga.plan")
    frames = page.page.evaluate("""() => app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler').__miga.panel.sections
                                   .get('frames').lines.map((l) => l.text)""")
    assert frames == ["481 frames = 121 latents = 30.1 s at 16 fps"]
    assert f"planned model calls: {plan['model_calls']}" in cost[0] and plan["model_calls"] > 121
    assert cost[1].startswith("estimate:") and "wan_node_cuda.json" in cost[2], cost
    page.focus("MigaSampler")
    page.shot("cost_preview")


@pytest.mark.parametrize("template, note", [
    ("MIGA toy CPU demo - no download 257 frames", "257 frames = 257 latents = 16.1 s at 16 fps"),
    ("MIGA long video - VideoCrafter2 VC2 text to video 257 frames", "257 frames = 257 latents = 32.1 s at 8 fps"),
])
def test_the_frame_note_and_cost_preview_follow_the_loaders_family(page, template, note):
    """The toy and VC2 templates' samplers have one latent per frame (Wan2.1's rule would say 65 latents): the family is
    told from the loader linked to the model input, for the note and for the plan the route makes."""
    page.load(template)
    page.page.wait_for_function("""() => { const n = app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler');
                                           return n.__miga?.plan?.num_latents === 257; }""", timeout=15_000)
    frames = page.page.evaluate("""() => app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler').__miga.panel.sections
                                   .get('frames').lines.map((l) => l.text)""")
    assert frames == [note], frames
    assert page.pack_problems() == [], page.pack_problems()


def test_the_timeline_shows_a_keyframe_past_the_end_as_an_error(page):
    page.load("MIGA story - Wan2.1 prompt schedule 721 frames")
    errors = page.page.evaluate("""async () => { const n = app.graph._nodes.find((n) => n.comfyClass === 'MigaPromptSchedule');
        const w = n.widgets.find((w) => w.name === 'keyframes');
        const kf = JSON.parse(w.value); kf['9000'] = 'past the end'; w.value = JSON.stringify(kf); w.callback?.(w.value);
        app.canvas.centerOnNode?.(n); app.graph.setDirtyCanvas(true, true);
        await new Promise((r) => setTimeout(r, 600));
        return { errors: n.__miga.timeline.errors, frames: n.__miga.timeline.frames,
                 past: n.__miga.timeline.layout.keys.filter((k) => k.past).map((k) => k.frame) }; }""")
    assert errors["past"] == [9000]
    assert any("keyframe 9000 is past the end" in e for e in errors["errors"]), errors
    page.shot("timeline_past_end")


def test_the_quick_test_runs_with_forward_only_progress_that_ends_at_the_total(page):
    page.load("MIGA quick test - Wan2.1 32x32 161 frames")
    page.page.evaluate("() => app.queuePrompt(0)")
    page.page.wait_for_function("() => app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler').__miga?.shown?.length > 3",
                                timeout=240_000)
    page.focus("MigaSampler")
    page.shot("progress_mid_run")
    page.page.wait_for_function("() => app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler').__miga?.report", timeout=400_000)
    page.page.wait_for_timeout(1000)
    got = page.page.evaluate("""() => { const m = app.graph._nodes.find((n) => n.comfyClass === 'MigaSampler').__miga;
        return { shown: m.shown, progress: m.progress, report: m.report, text: m.panel.sections.get('report').lines.map((l) => l.text) }; }""")
    shown = got["shown"]
    assert all(b >= a for a, b in zip(shown, shown[1:])), shown
    assert shown[-1] == 1
    assert got["progress"]["framesDone"] == got["progress"]["framesTotal"] == 161
    assert len(set(shown)) == got["report"]["windows_planned"]  # one step per planned window; search windows keep the value
    assert got["text"][0].startswith("161 frames in "), got["text"]
    page.shot("report_after_run")
    assert page.pack_problems() == [], json.dumps(page.pack_problems())


def test_the_plan_route_answers_from_the_run_plan_and_refuses_bad_values(comfy_server):
    from miga_core import MigaConfig, plan_run

    query = ("num_pixel_frames=481&steps=54&mode=miga&window_length=21&zigzag_width=7&unified_steps=9&sampler=euler"
             "&window_stride=0&update=lookahead&window_batch=1&width=832&height=480&has_initial_clip=0&borders=fixed")
    got = comfy_server.get_json(f"/miga/plan?{query}")
    plan = plan_run(MigaConfig(window_length=21, zigzag_width=7, unified_steps=9), 54, 121)
    assert got["calls"] == dict(plan.calls) and got["model_calls"] == plan.total_calls
    assert got["measured"]["source"] == "benchmarks/results/wan_node_cuda.json"
    status, body = comfy_server.request(f"/miga/plan?{query.replace('unified_steps=9', 'unified_steps=999')}")
    assert status == 400 and "unified_steps" in body["error"]
