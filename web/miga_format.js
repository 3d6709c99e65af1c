// What the Miga extensions show, as pure functions of plain values (no app import, so node's test runner loads this
// module alone: web/tests/miga_format.test.mjs). No sampling algorithm lives here: planned calls come from the run plan
// (GET /miga/plan, nodes/preview.py), progress from the node's messages (nodes/host.py), the frame rule from its twin.
import { DEFAULT_FAMILY, FAMILIES, numLatentFrames, nearestFrameCounts, ruleOf } from "./miga_frame_rule.js";

// ---------------------------------------------------------------------------------------------------- durations
// "45 s", "3.2 min", "23 min", "1 h 05 min": seconds (>= 0) as a person reads them.
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = seconds / 60;
  if (minutes < 10) return `${minutes.toFixed(1)} min`;
  if (minutes < 60) return `${Math.round(minutes)} min`;
  const h = Math.floor(minutes / 60);
  const m = Math.round(minutes - 60 * h);
  return m === 60 ? `${h + 1} h 00 min` : `${h} h ${String(m).padStart(2, "0")} min`;
}

// ---------------------------------------------------------------------------------------------------- model family
// The family (a key of FAMILIES, nodes/families.py) of the MODEL reaching `node`'s "model" input, told from the loader it
// comes from, following nodes in between (ModelSamplingSD3, LoRA loaders) through their own "model" input, as the
// node's validation does (nodes/graph.py model_family); DEFAULT_FAMILY (Wan2.1) for any other loader or no link.
// `node` is a LiteGraph node (inputs [{name, link}], graph with links as a Map or an object, getNodeById or _nodes).
export function modelFamily(node) {
  const byLoader = Object.fromEntries(Object.entries(FAMILIES).filter(([, f]) => f.loader).map(([name, f]) => [f.loader, name]));
  let current = node;
  for (let hops = 0; hops < 256 && current; hops++) {
    const graph = current.graph ?? node.graph;
    const input = (current.inputs ?? []).find((i) => i?.name === "model");
    if (input?.link == null || !graph) break;
    const link = typeof graph.links?.get === "function" ? graph.links.get(input.link) : graph.links?.[input.link];
    const origin = link?.origin_id ?? (Array.isArray(link) ? link[1] : undefined);
    if (origin == null) break;
    current = graph.getNodeById?.(origin) ?? (graph._nodes ?? graph.nodes ?? []).find((n) => n?.id === origin);
    const type = current?.comfyClass ?? current?.type;
    if (type in byLoader) return byLoader[type];
  }
  return DEFAULT_FAMILY;
}

// ---------------------------------------------------------------------------------------------------- frame count
// The note under num_pixel_frames: {text, warning}; a wrong count names the two valid neighbours (never truncated:
// the panel wraps it). `family` picks the frame rule (Wan2.1 4n+1; VC2 and the toy model one latent per frame).
export function framesNote(frames, fps = 16, family = DEFAULT_FAMILY) {
  const rule = ruleOf(family);
  const latents = numLatentFrames(frames, rule);
  if (latents !== null) {
    return { text: `${frames} frames = ${latents} latents = ${(frames / fps).toFixed(1)} s at ${fps} fps`, warning: false };
  }
  const near = nearestFrameCounts(frames, rule);
  if (near) {
    return { text: `⚠ num_pixel_frames ${frames} is not 4n+1 (Wan2.1 packs 4 frames per latent): use ${near[0]} or ${near[1]}. ` +
                   "The node refuses it when queued.", warning: true };
  }
  const form = rule === "wan21" ? " of the form 4n+1 (e.g. 481)" : "";
  return { text: `⚠ num_pixel_frames ${frames} is not a frame count: use an integer >= 1${form}.`, warning: true };
}

// ---------------------------------------------------------------------------------------------------- progress
const STAGE_NAMES = { initial_clip: "queue building", init: "queue building", zigzag: "zigzag", reflection: "zigzag", unified: "unified" };

export function stageName(stage) {
  return STAGE_NAMES[stage] ?? String(stage);
}

// The next progress state of a node from its previous one and a miga.progress message (nodes/host.py progress_message).
// A new prompt starts afresh; within a prompt the fraction never goes back (and neither do the frames).
export function nextProgress(previous, message) {
  const fresh = !previous || previous.promptId !== message.prompt_id;
  const fraction = Math.min(1, Math.max(0, message.window / Math.max(1, message.total_windows)));
  return {
    promptId: message.prompt_id,
    stage: stageName(message.stage),
    window: message.window,
    totalWindows: message.total_windows,
    fraction: fresh ? fraction : Math.max(previous.fraction, fraction),
    framesDone: fresh ? message.pixel_frames_done : Math.max(previous.framesDone, message.pixel_frames_done),
    framesTotal: message.num_pixel_frames,
    searchWindows: message.search_windows ?? 0,
    checks: message.reflection_checks ?? 0,
    corrections: message.reflection_corrections ?? 0,
    eta: message.eta_seconds ?? null,
    done: false,
  };
}

// The lines drawn under the bar.
export function progressLines(state) {
  const eta = state.eta === null ? "estimating time left…" : `about ${formatDuration(state.eta)} left`;
  const search = state.checks > 0 ? `self-reflection: ${state.corrections} of ${state.checks} checks corrected the tail · ` : "";
  return [
    `${state.stage} · ${state.framesDone} of ${state.framesTotal} frames finished · ${Math.round(100 * state.fraction)}%`,
    `${search}${eta}`,
  ];
}

// ---------------------------------------------------------------------------------------------------- report
// "481 frames in 23 min · 3 of 6 checks corrected the tail · 2.1 s per frame" from the node's report JSON.
export function reportSummary(report) {
  const frames = report.num_pixel_frames;
  const r = report.reflection ?? {};
  const checks = (r.n_all ?? 0) > 0 ? `${r.n_corr} of ${r.n_all} checks corrected the tail` : "no self-reflection checks";
  const perFrame = report.seconds_per_pixel_frame;
  const rate = perFrame >= 0.1 ? `${perFrame.toFixed(1)} s per frame` : `${(1 / Math.max(perFrame, 1e-9)).toFixed(1)} frames per s`;
  return `${frames} frames in ${formatDuration(report.seconds)} · ${checks} · ${rate} · ${report.model_calls} model calls (${report.mode})`;
}

// What stands in the report's place after a cancel or an error (the previous run's report must not stay). `resumable`:
// the node checkpoints its run on cancel and error (MIGA Long Video Sampler's resume_from, nodes/runner.py).
export function stoppedSummary(state, reason, resumable = false) {
  const what = reason === "interrupted" ? "Cancelled" : "Failed";
  const kept = resumable
    ? "the run was saved to output/miga_checkpoints: put that file in resume_from to continue it."
    : "nothing was saved from this run.";
  if (!state) return `${what} before the first window: no frames were finished.`;
  return `${what} during ${state.stage} at window ${state.window} of ${state.totalWindows}: ` +
         `${state.framesDone} of ${state.framesTotal} frames had left the queue; ${kept}`;
}

// ---------------------------------------------------------------------------------------------------- cost preview
// Lines of the sampler's cost preview (the duration and latents are the frames note's line, framesNote). `plan` is GET /miga/plan's answer (nodes/preview.py), `v` the widget values.
// The estimate scales the measured seconds per model call by the latent area and batch (and halves it without CFG):
// an estimate, said so, with its source.
export function costLines(v, plan, fps = 16, family = DEFAULT_FAMILY) {
  const lines = [];
  const latents = numLatentFrames(v.num_pixel_frames, ruleOf(family));
  if (latents === null || !plan) return lines;
  const calls = plan.model_calls;
  const per = plan.window_batch > 1 ? ` (${plan.total_windows} windows, ${plan.window_batch} per call)` : "";
  lines.push(`planned model calls: ${calls}${per}, plus self-reflection's search if connected`);
  const m = plan.measured;
  if (!m) {
    lines.push(family === DEFAULT_FAMILY ? "no measured table: time and VRAM not estimated"
                                         : "no measured table for this model (the table is Wan2.1's): time and VRAM not estimated");
    return lines;
  }
  const area = (v.width * v.height) / (m.width * m.height);
  const cfgFactor = v.cfg === 1 ? 0.5 : 1;
  const seconds = calls * m.s_per_model_call * area * (v.batch_size ?? 1) * cfgFactor;
  const same = v.width === m.width && v.height === m.height && (v.batch_size ?? 1) === 1;
  const vram = same ? `${m.peak_vram_gib} GiB VRAM` : `VRAM measured only at ${m.width}×${m.height} (${m.peak_vram_gib} GiB)`;
  lines.push(`estimate: ${formatDuration(seconds)} on ${m.device}, ${vram}`);
  lines.push(`from ${m.source} (${m.model}, ${m.width}×${m.height}, ${m.s_per_model_call} s per call${same ? "" : ", scaled by area"})`);
  return lines;
}

// ---------------------------------------------------------------------------------------------------- timeline
// The keyframes of a prompt schedule node as a timeline. `spec` is {kind: "json", text} (MigaPromptSchedule's
// keyframes) or {kind: "list", text} (MigaPromptScheduleConditioning's start_frames). Returns
// {error, keys: [{frame, label, seconds, x, end, endX, past}]} with x in 0..1 of the video's `frames` (pixel frames);
// a keyframe at or past the end has past: true. Display only: the node checks the schedule when queued.
export function parseKeyframes(spec) {
  if (spec.kind === "list") {
    const parts = String(spec.text).split(/[,\s]+/).filter(Boolean);
    if (!parts.every((p) => /^\d+$/.test(p))) return { error: `start_frames "${spec.text}" is not a list of frames`, entries: [] };
    return { error: null, entries: parts.map((p, i) => ({ frame: Number(p), label: `conditioning_${i + 1}` })) };
  }
  let obj;
  try {
    obj = JSON.parse(spec.text);
  } catch (error) {
    return { error: `keyframes is not JSON: ${error.message}`, entries: [] };
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return { error: "keyframes must be a JSON object", entries: [] };
  const entries = [];
  for (const [key, prompt] of Object.entries(obj)) {
    if (!/^\d+$/.test(key)) return { error: `keyframe "${key}" is not a pixel frame`, entries: [] };
    entries.push({ frame: Number(key), label: String(prompt) });
  }
  entries.sort((a, b) => a.frame - b.frame);
  return { error: null, entries };
}

export function layoutKeyframes(spec, frames, fps = 16) {
  const { error, entries } = parseKeyframes(spec);
  const last = Math.max(1, frames - 1);
  const keys = entries.map((entry, i) => {
    const end = i + 1 < entries.length ? Math.min(entries[i + 1].frame, frames) : frames;
    const past = entry.frame >= frames;
    return { ...entry, seconds: entry.frame / fps, x: Math.min(entry.frame, last) / last, end, endX: Math.min(end, last) / last, past };
  });
  return { error, keys };
}

// The spec's text with the keyframe at `from` moved to `to` (both pixel frames): the text the widget gets when a
// keyframe is dragged. Refuses (returns null) moving the first keyframe (it must stay at 0), onto another one, or
// to a negative frame.
export function moveKeyframe(spec, from, to) {
  const { error, entries } = parseKeyframes(spec);
  if (error || !Number.isInteger(to) || to < 0 || from === 0 || from === to) return null;
  if (!entries.some((e) => e.frame === from) || entries.some((e) => e.frame === to)) return null;
  if (spec.kind === "list") {
    return entries.map((e) => (e.frame === from ? to : e.frame)).join(", ");
  }
  const moved = entries.map((e) => (e.frame === from ? { ...e, frame: to } : e)).sort((a, b) => a.frame - b.frame);
  return JSON.stringify(Object.fromEntries(moved.map((e) => [String(e.frame), e.label])), null, 2);
}

// The pixel frame under a horizontal position x (0..1 of the bar) of a video of `frames` pixel frames.
export function frameAt(x, frames) {
  const last = Math.max(1, frames - 1);
  return Math.round(Math.min(1, Math.max(0, x)) * last);
}

// ---------------------------------------------------------------------------------------------------- text
// `text` cut into lines of at most `maxChars` characters at spaces (a longer word is cut): nothing is truncated.
export function wrapText(text, maxChars) {
  const width = Math.max(8, Math.floor(maxChars));
  const lines = [];
  let line = "";
  for (const word of String(text).split(/\s+/).filter(Boolean)) {
    let w = word;
    while (w.length > width) {
      if (line) { lines.push(line); line = ""; }
      lines.push(w.slice(0, width));
      w = w.slice(width);
    }
    if (!line) line = w;
    else if (line.length + 1 + w.length <= width) line += ` ${w}`;
    else { lines.push(line); line = w; }
  }
  if (line) lines.push(line);
  return lines;
}
