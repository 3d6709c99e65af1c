// Miga.FifoMode: fifo mode needs zigzag_width 1, unified_steps 0 and update lookahead (the node refuses anything else;
// nothing is overwritten on the server), and FIFO-Diffusion has fixed borders. Switching mode to fifo sets those widgets
// to those values, visibly, greys them out and keeps the previous values in the node's properties (saved with the
// workflow); switching back to miga restores them.
// A saved workflow in fifo mode with other values is shown with 1 and 0 when loaded, its values kept the same way.
// In fifo mode the guidance and reflection sockets are marked incompatible (red, "not in fifo"; the node refuses
// them when queued). With initial_clip connected, width/height/batch_size are greyed: the clip sets them.
import { app } from "../../scripts/app.js";
import { findWidget, isQueueNode, onLoaded, watch } from "./miga_widgets.js";

const KEY = "mode";
const SAVED = "miga_values_before_fifo";
const FIFO_VALUES = { zigzag_width: 1, unified_steps: 0, update: "lookahead", borders: "fixed" };
const MIGA_ONLY_INPUTS = ["guidance", "reflection"];
const CLIP_SIZED = ["width", "height", "batch_size"];
const INCOMPATIBLE = "#ff5a5a";

// Marks the miga-only sockets (fifo) and greys the size widgets (initial_clip connected); state kept in node.__miga.
export function markSockets(node) {
  const fifo = findWidget(node, "mode")?.value === "fifo";
  node.__miga ??= {};
  node.__miga.incompatible = [];
  for (const input of node.inputs ?? []) {
    if (!MIGA_ONLY_INPUTS.includes(input.name)) continue;
    input.__migaLabel ??= input.label ?? input.name;
    input.label = fifo ? `${input.__migaLabel} (not in fifo)` : input.__migaLabel;
    input.color_on = fifo ? INCOMPATIBLE : undefined;
    input.color_off = fifo ? INCOMPATIBLE : undefined;
    if (fifo) node.__miga.incompatible.push({ name: input.name, linked: input.link != null });
  }
  const clip = (node.inputs ?? []).find((input) => input.name === "initial_clip");
  const fromClip = clip?.link != null;
  for (const name of CLIP_SIZED) {
    const widget = findWidget(node, name);
    if (!widget) continue;
    widget.__migaLabel ??= widget.label ?? widget.name;
    widget.disabled = fromClip;
    widget.label = fromClip ? `${widget.__migaLabel} (from initial_clip)` : widget.__migaLabel;
  }
  node.updateComputedDisabled?.();
  node.setDirtyCanvas?.(true, true);
}

function install(node) {
  const mode = findWidget(node, "mode");
  const widgets = [findWidget(node, "zigzag_width"), findWidget(node, "unified_steps"), findWidget(node, "update"),
                   findWidget(node, "borders")].filter(Boolean); // the keys of FIFO_VALUES
  if (!mode || widgets.length === 0) return;
  const names = new Map(widgets.map((widget) => [widget, widget.label ?? widget.name]));
  watch(node, KEY, [mode], () => {
    const fifo = mode.value === "fifo";
    node.properties ??= {};
    if (fifo && widgets.some((w) => w.value !== FIFO_VALUES[w.name])) {
      node.properties[SAVED] = Object.fromEntries(widgets.map((w) => [w.name, w.value]));
      for (const w of widgets) w.value = FIFO_VALUES[w.name];
    } else if (!fifo && node.properties[SAVED]) {
      for (const w of widgets) {
        const kept = node.properties[SAVED][w.name];
        if (kept !== undefined && w.value === FIFO_VALUES[w.name]) w.value = kept;
      }
      delete node.properties[SAVED];
    }
    for (const [widget, name] of names) {
      widget.disabled = fifo;
      widget.label = fifo ? `${name} (fifo: ${FIFO_VALUES[widget.name]})` : name;
    }
    markSockets(node);
  });
  const original = node.onConnectionsChange;
  node.onConnectionsChange = function (...args) {
    const result = original?.apply(this, args);
    markSockets(node);
    return result;
  };
}

app.registerExtension({
  name: "Miga.FifoMode",
  nodeCreated(node) {
    if (isQueueNode(node)) install(node);
  },
  loadedGraphNode(node) {
    if (isQueueNode(node)) onLoaded(node, KEY);
  },
});
