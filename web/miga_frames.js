// Miga.FrameCount: next to num_pixel_frames, how many Wan2.1 latent frames the video is, and a visible
// warning when the value is not 4n+1 (the node refuses it at queue time; this says so while editing).
import { app } from "../../scripts/app.js";
import { describeFrames } from "./miga_frame_rule.js";
import { findWidget, isQueueNode, onLoaded, watch } from "./miga_widgets.js";

const KEY = "frames";

function install(node) {
  const widget = findWidget(node, "num_pixel_frames");
  if (!widget) return;
  const name = widget.label ?? widget.name;
  watch(node, KEY, [widget], () => {
    widget.label = `${name} ${describeFrames(Number(widget.value))}`;
  });
}

app.registerExtension({
  name: "Miga.FrameCount",
  nodeCreated(node) {
    if (isQueueNode(node)) install(node);
  },
  loadedGraphNode(node) {
    if (isQueueNode(node)) onLoaded(node, KEY);
  },
});
