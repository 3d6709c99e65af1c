// Miga.FrameCount: next to num_pixel_frames, how many Wan2.1 latent frames the video is, and a visible
// warning when the value is not 4n+1 (the node refuses it at queue time; this says so while editing).
import { app } from "../../scripts/app.js";
import { findWidget, isQueueNode, onLoaded, watch } from "./miga_widgets.js";

const KEY = "frames";

// Wan2.1's VAE packs 4 video frames per latent after the first: 4n+1 frames = n+1 latents.
export function describeFrames(frames) {
  if (!Number.isInteger(frames) || frames < 1) return "⚠ not a frame count";
  if ((frames - 1) % 4 !== 0) {
    const lower = Math.floor((frames - 1) / 4) * 4 + 1;
    return `⚠ not 4n+1: use ${lower} or ${lower + 4}`;
  }
  return `= ${(frames - 1) / 4 + 1} latents`;
}

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
