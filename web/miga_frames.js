// Miga.FrameCount: under the node's widgets, how many Wan2.1 latent frames and seconds the video is, and a warning in
// the warning colour, never cut off, when num_pixel_frames is not 4n+1 (the node refuses it at queue time).
import { app } from "../../scripts/app.js";
import { framesNote } from "./miga_format.js";
import { COLORS, setSection } from "./miga_panel.js";
import { findWidget, isQueueNode, onLoaded, videoFps, watch } from "./miga_widgets.js";

const KEY = "frames";

function install(node) {
  const widget = findWidget(node, "num_pixel_frames");
  if (!widget) return;
  watch(node, KEY, [widget], () => {
    const note = framesNote(Number(widget.value), videoFps(node));
    setSection(node, "frames", [{ text: note.text, color: note.warning ? COLORS.warning : COLORS.dim }]);
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
