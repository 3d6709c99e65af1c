// Miga.Timeline: on the prompt-schedule nodes, the video's length as a bar with the keyframes on it (pixel frame and
// seconds at the video's fps), each prompt's span, and keyframes at or past the end in red as errors. Dragging a
// keyframe (not the first, which stays at 0) writes the node's keyframes / start_frames widget. The video's length is
// the num_pixel_frames of the MIGA node the schedule feeds. No scheduling logic here: the node checks when queued.
import { app } from "../../scripts/app.js";
import { frameAt, layoutKeyframes, moveKeyframe } from "./miga_format.js";
import { COLORS } from "./miga_panel.js";
import { QUEUE_NODE_TYPES, findWidget, videoFps, watch } from "./miga_widgets.js";

const SCHEDULE_TYPES = { MigaPromptSchedule: { widget: "keyframes", kind: "json" },
                         MigaPromptScheduleConditioning: { widget: "start_frames", kind: "list" } };
const SPAN_COLORS = ["#4a78c2", "#c27a4a", "#5aa05a", "#a05aa0", "#a0a05a", "#5aa0a0"];
const HEIGHT = 74;

// The MIGA node the schedule's output feeds (through its first link), or null.
function target(node) {
  const links = node.outputs?.[0]?.links ?? [];
  for (const id of links) {
    const link = node.graph?.links?.[id] ?? node.graph?.links?.get?.(id);
    const other = link ? node.graph.getNodeById(link.target_id) : null;
    if (QUEUE_NODE_TYPES.includes(other?.comfyClass ?? other?.type)) return other;
  }
  return null;
}

// {frames, fps, spec, layout} of the node now.
export function timelineOf(node) {
  const type = SCHEDULE_TYPES[node.comfyClass ?? node.type];
  const widget = findWidget(node, type.widget);
  const spec = { kind: type.kind, text: String(widget?.value ?? "") };
  const sink = target(node);
  const frames = Number(findWidget(sink, "num_pixel_frames")?.value) || null;
  const fps = videoFps(node);
  const layout = layoutKeyframes(spec, frames ?? 1 + Math.max(0, ...layoutKeyframes(spec, 2).keys.map((k) => k.frame)), fps);
  const errors = [];
  if (layout.error) errors.push(layout.error);
  if (frames) for (const key of layout.keys.filter((k) => k.past)) errors.push(`keyframe ${key.frame} is past the end of the video (${frames} frames)`);
  return { frames, fps, spec, widget, layout, errors, linked: sink != null };
}

function install(node) {
  const type = SCHEDULE_TYPES[node.comfyClass ?? node.type];
  const source = findWidget(node, type.widget);
  if (!source) return;
  let drag = null;
  const timeline = {
    name: "miga_timeline",
    type: "miga_timeline",
    value: "",
    serialize: false,
    options: { serialize: false },
    computeSize(width) {
      return [width, HEIGHT + 16 * Math.max(0, (node.__miga?.timeline?.errors.length ?? 0))];
    },
    draw(ctx, _node, width, y) {
      const t = timelineOf(node);
      node.__miga.timeline = t;
      const left = 12;
      const right = width - 12;
      const span = right - left;
      ctx.save();
      ctx.font = "11px sans-serif";
      ctx.textBaseline = "middle";
      ctx.fillStyle = "#222";
      ctx.fillRect(left, y + 18, span, 16);
      t.layout.keys.forEach((key, i) => {
        if (key.past) return;
        ctx.fillStyle = SPAN_COLORS[i % SPAN_COLORS.length];
        ctx.fillRect(left + key.x * span, y + 18, Math.max(1, (key.endX - key.x) * span), 16);
      });
      for (const key of t.layout.keys) {
        const x = left + key.x * span;
        ctx.fillStyle = key.past ? COLORS.error : "#fff";
        ctx.fillRect(x - 1.5, y + 14, 3, 24);
        ctx.fillText(`${key.frame}${key.past ? " ⚠" : ""}`, Math.min(x, right - 30), y + 8);
        ctx.fillStyle = key.past ? COLORS.error : COLORS.dim;
        ctx.fillText(`${key.seconds.toFixed(1)} s`, Math.min(x, right - 30), y + 46);
      }
      ctx.fillStyle = COLORS.dim;
      const end = t.frames ? `${t.frames} frames = ${(t.frames / t.fps).toFixed(1)} s at ${t.fps} fps` :
        "not linked to a MIGA node: video length unknown";
      ctx.fillText(end, left, y + 62);
      let row = y + HEIGHT + 4;
      ctx.fillStyle = COLORS.error;
      for (const error of t.errors) {
        ctx.fillText(`⚠ ${error}`, left, row);
        row += 16;
      }
      ctx.restore();
      timeline.geometry = { left, span, y };
    },
    mouse(event, pos) {
      const t = node.__miga?.timeline;
      const g = timeline.geometry;
      if (!t || !g || !t.frames) return false;
      const frame = frameAt((pos[0] - g.left) / g.span, t.frames);
      const kind = String(event.type);
      if (kind.endsWith("down")) {
        const hit = t.layout.keys.find((k) => !k.past && Math.abs(g.left + k.x * g.span - pos[0]) < 6);
        drag = hit && hit.frame !== 0 ? hit.frame : null;
        return drag !== null;
      }
      if (kind.endsWith("up") && drag !== null) {
        const text = moveKeyframe(t.spec, drag, frame);
        drag = null;
        if (text !== null) {
          source.value = text;
          source.callback?.(text);
          node.setDirtyCanvas?.(true, true);
        }
        return true;
      }
      return drag !== null;
    },
  };
  node.addCustomWidget?.(timeline);
  node.__miga ??= {};
  node.__miga.timeline = timelineOf(node);
  watch(node, "timeline", [source], () => {
    node.__miga.timeline = timelineOf(node);
    const size = node.computeSize?.();
    if (size && node.size && size[1] > node.size[1]) node.setSize?.([node.size[0], size[1]]);
  });
}

app.registerExtension({
  name: "Miga.Timeline",
  nodeCreated(node) {
    if (SCHEDULE_TYPES[node.comfyClass ?? node.type]) install(node);
  },
  loadedGraphNode(node) {
    if (SCHEDULE_TYPES[node.comfyClass ?? node.type]) node.__miga?.timeline && (node.__miga.timeline = timelineOf(node));
  },
});
