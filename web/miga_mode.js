// Miga.FifoMode: in fifo mode the queue uses L_zig = 1 and no unified stage (nodes/widgets.py config_from),
// so zigzag_width and unified_steps are greyed out and labelled unused; their values are kept and still saved.
import { app } from "../../scripts/app.js";
import { findWidget, isQueueNode, onLoaded, watch } from "./miga_widgets.js";

const KEY = "mode";

function install(node) {
  const mode = findWidget(node, "mode");
  const unused = [findWidget(node, "zigzag_width"), findWidget(node, "unified_steps")].filter(Boolean);
  if (!mode || unused.length === 0) return;
  const names = new Map(unused.map((widget) => [widget, widget.label ?? widget.name]));
  watch(node, KEY, [mode], () => {
    const fifo = mode.value === "fifo";
    for (const [widget, name] of names) {
      widget.disabled = fifo;
      widget.label = fifo ? `${name} (unused in fifo)` : name;
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
