// Unit tests of the extension's pure logic (node --test web/tests/): the frame rule, the notes and summaries the
// nodes show, the cost estimate's arithmetic and formatting, and the timeline's keyframe layout and editing.
import assert from "node:assert/strict";
import { test } from "node:test";

import { numLatentFrames, nearestFrameCounts } from "../miga_frame_rule.js";
import { costLines, formatDuration, frameAt, framesNote, layoutKeyframes, modelFamily, moveKeyframe, nextProgress, progressLines,
         reportSummary, stoppedSummary, wrapText } from "../miga_format.js";

test("frame rule: 4n+1 frames are n+1 latents, anything else is refused with its two neighbours", () => {
  assert.equal(numLatentFrames(481), 121);
  assert.equal(numLatentFrames(1), 1);
  assert.equal(numLatentFrames(482), null);
  assert.equal(numLatentFrames(0), null);
  assert.equal(numLatentFrames(4.5), null);
  assert.deepEqual(nearestFrameCounts(482), [481, 485]);
  assert.equal(nearestFrameCounts(481), null);
});

test("frames note: latents and seconds for a good count, a full warning naming the fix for a bad one", () => {
  assert.deepEqual(framesNote(481, 16), { text: "481 frames = 121 latents = 30.1 s at 16 fps", warning: false });
  const bad = framesNote(482, 16);
  assert.equal(bad.warning, true);
  assert.match(bad.text, /482 is not 4n\+1.*use 481 or 485/);
  assert.equal(framesNote(0).warning, true);
});

test("wrapped text keeps every character", () => {
  const text = "⚠ num_pixel_frames 482 is not 4n+1 (Wan2.1 packs 4 frames per latent): use 481 or 485. The node refuses it.";
  const lines = wrapText(text, 20);
  assert.ok(lines.length > 3 && lines.every((line) => line.length <= 20));
  assert.equal(lines.join(" "), text);
  assert.deepEqual(wrapText("abcdefghijkl", 8), ["abcdefgh", "ijkl"]);
});

test("durations read as a person reads them", () => {
  assert.equal(formatDuration(45), "45 s");
  assert.equal(formatDuration(192), "3.2 min");
  assert.equal(formatDuration(23 * 60 + 10), "23 min");
  assert.equal(formatDuration(3900), "1 h 05 min");
  assert.equal(formatDuration(-1), "?");
});

const msg = (window, done, extra = {}) => ({ prompt_id: "p1", node: "7", stage: "zigzag", window, total_windows: 10,
  pixel_frames_done: done, num_pixel_frames: 161, search_windows: 0, eta_seconds: 30, ...extra });

test("progress only moves forward within a run and starts afresh for a new one", () => {
  let s = nextProgress(null, msg(4, 41));
  assert.equal(s.fraction, 0.4);
  s = nextProgress(s, msg(3, 21)); // a late or repeated message must not move the bar back
  assert.equal(s.fraction, 0.4);
  assert.equal(s.framesDone, 41);
  s = nextProgress(s, msg(10, 161, { stage: "unified" }));
  assert.equal(s.fraction, 1);
  assert.equal(s.stage, "unified");
  const fresh = nextProgress(s, msg(1, 0, { prompt_id: "p2", stage: "init" }));
  assert.equal(fresh.fraction, 0.1);
  assert.equal(fresh.stage, "queue building");
});

test("progress lines name the stage, frames of total, self-reflection and the time left", () => {
  const [first, second] = progressLines(nextProgress(null, msg(4, 41, { search_windows: 72, reflection_checks: 6, reflection_corrections: 2, eta_seconds: 150 })));
  assert.equal(first, "zigzag · 41 of 161 frames finished · 40%");
  assert.equal(second, "self-reflection: 2 of 6 checks corrected the tail · about 2.5 min left");
  assert.match(progressLines(nextProgress(null, msg(1, 0, { eta_seconds: null })))[1], /estimating/);
});

test("the report summary reads like the issue's example", () => {
  const report = { mode: "miga", num_pixel_frames: 481, seconds: 23 * 60, seconds_per_pixel_frame: 2.1, model_calls: 845,
                   reflection: { n_all: 6, n_corr: 3 } };
  assert.equal(reportSummary(report), "481 frames in 23 min · 3 of 6 checks corrected the tail · 2.1 s per frame · 845 model calls (miga)");
  const quick = { ...report, seconds: 4, seconds_per_pixel_frame: 0.025, reflection: { n_all: 0, n_corr: 0 } };
  assert.match(reportSummary(quick), /no self-reflection checks · 40\.0 frames per s/);
});

test("a stopped run says where it stopped instead of showing an old report", () => {
  const s = nextProgress(null, msg(4, 41));
  assert.match(stoppedSummary(s, "interrupted"), /^Cancelled during zigzag at window 4 of 10: 41 of 161 frames.*nothing was saved/);
  assert.match(stoppedSummary(s, "interrupted", true), /saved to output\/miga_checkpoints: put that file in resume_from/);
  assert.match(stoppedSummary(null, "error"), /^Failed before the first window/);
});

const MEASURED = { model: "Wan2.1 T2V 1.3B", width: 832, height: 480, device: "NVIDIA H200", s_per_model_call: 1.185,
                   peak_vram_gib: 5.6, source: "benchmarks/results/wan_node_cuda.json" };
const PLAN = { num_latents: 121, model_calls: 600, total_windows: 600, window_batch: 1, measured: MEASURED };
const V = { num_pixel_frames: 481, width: 832, height: 480, batch_size: 1, cfg: 6 };

test("cost preview: duration, latents, the plan's calls and a labelled estimate from the measured table", () => {
  const lines = costLines(V, PLAN, 16);
  assert.match(lines[0], /^planned model calls: 600,/);
  assert.equal(lines[1], "estimate: 12 min on NVIDIA H200, 5.6 GiB VRAM"); // 600 * 1.185 s = 711 s
  assert.match(lines[2], /benchmarks\/results\/wan_node_cuda\.json/);
});

test("cost preview scales the measured time by area, batch and CFG, and says VRAM was measured elsewhere", () => {
  const lines = costLines({ ...V, width: 416, height: 240, batch_size: 2, cfg: 1 }, PLAN, 16); // 1/4 area, x2, /2
  assert.equal(lines[1], "estimate: 3.0 min on NVIDIA H200, VRAM measured only at 832×480 (5.6 GiB)");
  assert.match(lines[2], /scaled by area/);
  assert.match(costLines(V, { ...PLAN, model_calls: 300, window_batch: 2 }, 16)[0], /300 \(600 windows, 2 per call\)/);
  assert.deepEqual(costLines({ ...V, num_pixel_frames: 482 }, PLAN, 16), []);
  assert.match(costLines(V, { ...PLAN, measured: null })[1], /no measured table/);
});

const SPEC = { kind: "json", text: JSON.stringify({ 0: "a fox", 240: "a lake", 600: "night" }) };

test("timeline layout: keyframes in pixel frames and seconds, spans to the next keyframe, past the end flagged", () => {
  const { error, keys } = layoutKeyframes(SPEC, 481, 16);
  assert.equal(error, null);
  assert.deepEqual(keys.map((k) => [k.frame, k.past]), [[0, false], [240, false], [600, true]]);
  assert.equal(keys[1].seconds, 15);
  assert.equal(keys[1].x, 0.5);
  assert.equal(keys[0].end, 240);
  assert.equal(keys[1].end, 481);
  assert.equal(keys[2].x, 1);
  assert.equal(layoutKeyframes({ kind: "json", text: "{" }, 481).keys.length, 0);
  assert.match(layoutKeyframes({ kind: "json", text: "{" }, 481).error, /not JSON/);
  const list = layoutKeyframes({ kind: "list", text: "0, 240" }, 221);
  assert.deepEqual(list.keys.map((k) => [k.label, k.past]), [["conditioning_1", false], ["conditioning_2", true]]);
});

test("timeline editing writes the widget's text; the first keyframe and collisions are refused", () => {
  const moved = JSON.parse(moveKeyframe(SPEC, 240, 300));
  assert.deepEqual(moved, { 0: "a fox", 300: "a lake", 600: "night" });
  assert.deepEqual(Object.keys(JSON.parse(moveKeyframe(SPEC, 600, 100))), ["0", "100", "240"]);
  assert.equal(moveKeyframe(SPEC, 0, 10), null);
  assert.equal(moveKeyframe(SPEC, 240, 600), null);
  assert.equal(moveKeyframe({ kind: "list", text: "0, 240" }, 240, 120), "0, 120");
  assert.equal(frameAt(0.5, 481), 240);
  assert.equal(frameAt(2, 481), 480);
});

// A LiteGraph-like graph: nodes by id, links as a Map (frontend 1.35) or an object of serialized arrays (older saves).
function graphOf(nodes, links, asMap = true) {
  const graph = { _nodes: nodes, links: asMap ? new Map(links.map((l) => [l.id, l])) : Object.fromEntries(links.map((l) => [l.id, [l.id, l.origin_id]])) };
  graph.getNodeById = (id) => nodes.find((n) => n.id === id);
  for (const n of nodes) n.graph = graph;
  return graph;
}

function samplerFrom(loaderType, { through = false, asMap = true } = {}) {
  const loader = { id: 1, comfyClass: loaderType, inputs: [] };
  const shift = { id: 2, comfyClass: "ModelSamplingSD3", inputs: [{ name: "model", link: 10 }] };
  const sampler = { id: 3, comfyClass: "MigaSampler", inputs: [{ name: "model", link: through ? 11 : 10 }, { name: "positive", link: null }] };
  const links = through ? [{ id: 10, origin_id: 1 }, { id: 11, origin_id: 2 }] : [{ id: 10, origin_id: 1 }];
  graphOf(through ? [loader, shift, sampler] : [loader, sampler], links, asMap);
  return sampler;
}

test("model family: told from the loader linked to the sampler's model, through patch nodes; Wan2.1 otherwise", () => {
  assert.equal(modelFamily(samplerFrom("MigaVC2Loader")), "vc2");
  assert.equal(modelFamily(samplerFrom("MigaToyLoader", { through: true })), "toy");
  assert.equal(modelFamily(samplerFrom("MigaToyLoader", { asMap: false })), "toy");
  assert.equal(modelFamily(samplerFrom("UNETLoader", { through: true })), "wan21");
  assert.equal(modelFamily({ comfyClass: "MigaSampler", inputs: [{ name: "model", link: null }] }), "wan21");
});

test("frames note and cost preview follow the family's frame rule (VC2 and the toy model: one latent per frame)", () => {
  assert.deepEqual(framesNote(256, 8, "vc2"), { text: "256 frames = 256 latents = 32.0 s at 8 fps", warning: false });
  assert.deepEqual(framesNote(20, 16, "toy"), { text: "20 frames = 20 latents = 1.3 s at 16 fps", warning: false });
  assert.equal(framesNote(20, 16, "wan21").warning, true); // 20 is not 4n+1
  assert.match(framesNote(0, 8, "vc2").text, /not a frame count: use an integer >= 1\.$/);
  assert.equal(numLatentFrames(257, "vc2"), 257);
  assert.equal(nearestFrameCounts(256, "vc2"), null);
  const plan = { model_calls: 40, total_windows: 40, window_batch: 1, measured: null };
  assert.equal(costLines({ num_pixel_frames: 256 }, plan, 8, "wan21").length, 0); // not a Wan2.1 count: no preview
  const lines = costLines({ num_pixel_frames: 256 }, plan, 8, "vc2");
  assert.match(lines[0], /planned model calls: 40/);
  assert.match(lines[1], /no measured table for this model/);
});
