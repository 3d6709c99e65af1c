// Miga.Advanced: the expert widgets (window_stride, update, window_batch, borders) stay hidden behind an "advanced" toggle
// at the bottom of the node; their defaults suit Wan2.1. The toggle is not a node input (never serialized); whether
// it is open is kept in the node's properties, saved with the workflow.
import { app } from "../../scripts/app.js";
import { findWidget, isQueueNode, onLoaded, watch } from "./miga_widgets.js";

const KEY = "advanced";
export const EXPERT_WIDGETS = ["window_stride", "update", "window_batch", "borders"];

function apply(node, open) {
  for (const widget of [findWidget(node, "window_stride"), findWidget(node, "update"), findWidget(node, "window_batch"),
                        findWidget(node, "borders")]) { // EXPERT_WIDGETS
    if (widget) widget.hidden = !open;
  }
  const size = node.computeSize?.();
  if (size && node.size) node.setSize?.([node.size[0], size[1]]);
  node.setDirtyCanvas?.(true, true);
}

function install(node) {
  if (!findWidget(node, "window_stride")) return;
  node.properties ??= {};
  const toggle = node.addWidget?.("toggle", "advanced", Boolean(node.properties.miga_advanced), (value) => {
    node.properties.miga_advanced = Boolean(value);
    apply(node, Boolean(value));
  }, { on: "shown", off: "hidden", serialize: false });
  if (!toggle) return;
  toggle.serialize = false;
  toggle.tooltip = `Show the expert queue settings (${EXPERT_WIDGETS.join(", ")}); their defaults suit Wan2.1.`;
  watch(node, KEY, [toggle], () => {
    toggle.value = Boolean(node.properties?.miga_advanced);
    apply(node, toggle.value);
  });
}

app.registerExtension({
  name: "Miga.Advanced",
  nodeCreated(node) {
    if (isQueueNode(node)) install(node);
  },
  loadedGraphNode(node) {
    if (isQueueNode(node)) onLoaded(node, KEY);
  },
});
