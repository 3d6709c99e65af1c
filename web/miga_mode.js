// Miga.FifoMode: fifo mode needs zigzag_width 1 and unified_steps 0 (the node refuses anything else; nothing is
// overwritten on the server). Switching mode to fifo sets both widgets to those values, visibly, greys them out and
// keeps the previous values in the node's properties (saved with the workflow); switching back to miga restores them.
// A saved workflow in fifo mode with other values is shown with 1 and 0 when loaded, its values kept the same way.
import { app } from "../../scripts/app.js";
import { findWidget, isQueueNode, onLoaded, watch } from "./miga_widgets.js";

const KEY = "mode";
const SAVED = "miga_values_before_fifo";
const FIFO_VALUES = { zigzag_width: 1, unified_steps: 0 };

function install(node) {
  const mode = findWidget(node, "mode");
  const widgets = [findWidget(node, "zigzag_width"), findWidget(node, "unified_steps")].filter(Boolean);
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
    node.updateComputedDisabled?.();
  });
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
