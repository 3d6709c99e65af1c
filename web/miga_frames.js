// Miga.FrameCount: under the node's widgets, how many latent frames and seconds the video is, by the frame rule of the
// model family the sampler's model comes from (modelFamily: Wan2.1 4n+1, VC2 and the toy model one latent per frame),
// and a warning in the warning colour, never cut off, when num_pixel_frames breaks the rule (the node refuses it).
import { app } from "../../scripts/app.js";
import { FAMILIES } from "./miga_frame_rule.js";
import { framesNote, modelFamily } from "./miga_format.js";
import { COLORS, setSection } from "./miga_panel.js";
import { findWidget, isQueueNode, onConnectionsChange, onLoaded, videoFps, watch } from "./miga_widgets.js";

const KEY = "frames";

function install(node) {
  const widget = findWidget(node, "num_pixel_frames");
  if (!widget) return;
  const update = () => {
    const family = modelFamily(node);
    const note = framesNote(Number(widget.value), videoFps(node, FAMILIES[family].fps), family);
    setSection(node, "frames", [{ text: note.text, color: note.warning ? COLORS.warning : COLORS.dim }]);
  };
  watch(node, KEY, [widget], update);
  onConnectionsChange(node, KEY, update);
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
