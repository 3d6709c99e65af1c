// Miga.CostPreview: on the sampler, before queueing: duration at the video's fps, latents, the planned model calls
// (from the run plan: GET /miga/plan, nodes/preview.py; JS re-derives nothing) and an estimated time and VRAM
// scaled from the pack's measured table (benchmarks/results/wan_node_cuda.json), labelled "estimate" with its source.
import { app } from "../../scripts/app.js";
import { FAMILIES } from "./miga_frame_rule.js";
import { costLines, modelFamily } from "./miga_format.js";
import { COLORS, setSection } from "./miga_panel.js";
import { findWidget, isQueueNode, onConnectionsChange, onLoaded, videoFps, watch } from "./miga_widgets.js";

const KEY = "cost";
export const PLAN_WIDGETS = ["num_pixel_frames", "steps", "mode", "window_length", "zigzag_width", "unified_steps", "sampler",
                             "window_stride", "update", "window_batch", "width", "height", "batch_size", "cfg", "borders"];

function values(node) {
  return Object.fromEntries(PLAN_WIDGETS.map((name) => [name, node.widgets?.find((w) => w?.name === name)?.value]));
}

async function refresh(node) {
  const v = values(node);
  const family = modelFamily(node); // the frame rule and parameterisation the route plans with (nodes/families.py)
  const clip = (node.inputs ?? []).find((input) => input.name === "initial_clip");
  const query = new URLSearchParams({ ...Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)])),
                                      has_initial_clip: clip?.link != null ? "1" : "0", family });
  const asked = query.toString();
  node.__miga.costQuery = asked;
  let answer;
  try {
    const response = await app.api.fetchApi(`/miga/plan?${asked}`);
    answer = { ok: response.ok, body: await response.json() };
  } catch (error) {
    answer = { ok: false, body: { error: `cost preview unavailable: ${error}` } };
  }
  if (node.__miga.costQuery !== asked) return; // a newer edit is on its way
  node.__miga.plan = answer.ok ? answer.body : null;
  const lines = answer.ok
    ? costLines(v, answer.body, videoFps(node, FAMILIES[family].fps), family).map((text) => ({ text, color: text.startsWith("estimate") ? COLORS.text : COLORS.dim }))
    : [{ text: `⚠ ${answer.body.error}`, color: COLORS.warning }];
  setSection(node, "cost", lines);
}

function install(node) {
  if (!findWidget(node, "steps")) return;
  let timer = null;
  const widgets = PLAN_WIDGETS.map((name) => node.widgets?.find((w) => w?.name === name));
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(() => refresh(node), 250);
  };
  watch(node, KEY, widgets, later);
  onConnectionsChange(node, KEY, later);
}

app.registerExtension({
  name: "Miga.CostPreview",
  nodeCreated(node) {
    if (isQueueNode(node)) install(node);
  },
  loadedGraphNode(node) {
    if (isQueueNode(node)) onLoaded(node, KEY);
  },
});
