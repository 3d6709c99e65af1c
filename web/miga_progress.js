// Miga.Progress: the run as an artist follows it, on the MIGA node itself. nodes/host.py sends one miga.progress
// message per window (stage, frames finished of total, self-reflection search, ETA from measured time per window);
// the bar only moves forward. When the node finishes, miga.report brings the report: a summary line, the JSON one
// click away ("report JSON"). A cancelled or failed run replaces the previous report with what happened.
import { app } from "../../scripts/app.js";
import { nextProgress, progressLines, reportSummary, stoppedSummary } from "./miga_format.js";
import { COLORS, setSection } from "./miga_panel.js";
import { QUEUE_NODE_TYPES } from "./miga_widgets.js";

// Nodes that run windows (each sends its own progress) and the node types whose report the pack sends.
const RUNNING_TYPES = [...QUEUE_NODE_TYPES, "MigaZigzagStage", "MigaUnifiedStage"];
const isRunning = (node) => RUNNING_TYPES.includes(node?.comfyClass ?? node?.type);

function nodeById(id) {
  return id == null ? null : app.graph?.getNodeById?.(Number(String(id).split(":").pop())) ?? null;
}

function runningNodes() {
  return (app.graph?._nodes ?? app.graph?.nodes ?? []).filter(isRunning);
}

function state(node) {
  node.__miga ??= {};
  return node.__miga;
}

function showJson(node) {
  const report = state(node).report;
  if (!report) return;
  const overlay = document.createElement("div");
  overlay.className = "miga-report-dialog";
  overlay.style.cssText = "position:fixed;inset:0;background:#0009;z-index:10000;display:flex;align-items:center;justify-content:center";
  const box = document.createElement("pre");
  box.style.cssText = "background:#1e1e1e;color:#ddd;padding:16px;max-width:80vw;max-height:80vh;overflow:auto;border:1px solid #555";
  box.textContent = JSON.stringify(report, null, 2);
  overlay.append(box);
  overlay.addEventListener("click", () => overlay.remove());
  document.body.append(overlay);
}

function install(node) {
  const button = node.addWidget?.("button", "report JSON", null, () => showJson(node), { serialize: false });
  if (button) {
    button.serialize = false;
    button.tooltip = "The last run's full report (model calls, time, self-reflection counts) as JSON.";
    button.disabled = true;
  }
  state(node).button = button;
}

function onProgress(event) {
  const message = event.detail;
  const node = nodeById(message.node);
  if (!node) return;
  const s = state(node);
  s.progress = nextProgress(s.progress, message);
  s.shown ??= [];
  s.shown.push(s.progress.fraction);
  setSection(node, "report", null);
  setSection(node, "run", progressLines(s.progress).map((text) => ({ text })), s.progress.fraction);
}

function onReport(event) {
  const node = nodeById(event.detail.node);
  if (!node) return;
  const s = state(node);
  s.report = event.detail.report;
  s.reportPrompt = event.detail.prompt_id;
  if (s.progress) s.progress.done = true;
  if (s.button) s.button.disabled = false;
  setSection(node, "run", null);
  setSection(node, "report", [{ text: reportSummary(s.report), color: COLORS.good }]);
}

function onStart(event) {
  for (const node of runningNodes()) {
    const s = state(node);
    s.prompt = event.detail.prompt_id;
    s.progress = null;
    s.shown = [];
    s.waiting = true;
    setSection(node, "run", null);
    if (s.report) setSection(node, "report", [{ text: "Previous report kept until this run ends (report JSON).", color: COLORS.dim }]);
  }
}

function onCached(event) {
  for (const id of event.detail.nodes ?? []) {
    const node = nodeById(id);
    if (node && isRunning(node) && state(node).report) {
      state(node).waiting = false;
      setSection(node, "report", [{ text: `${reportSummary(state(node).report)} (cached)`, color: COLORS.good }]);
    }
  }
}

function onStopped(reason) {
  return (event) => {
    for (const node of runningNodes()) {
      const s = state(node);
      if (s.prompt !== event.detail.prompt_id || !s.waiting || (s.progress?.done)) continue;
      s.waiting = false;
      s.report = null;
      if (s.button) s.button.disabled = true;
      setSection(node, "run", null);
      const resumable = node.comfyClass === "MigaSampler";
      setSection(node, "report", [{ text: stoppedSummary(s.progress, reason, resumable), color: COLORS.error }]);
    }
  };
}

function onExecuting(event) {
  const detail = event.detail;
  const id = detail && typeof detail === "object" ? detail.node : detail;
  const executing = nodeById(id);
  const decoding = String(executing?.comfyClass ?? "").includes("VAEDecode");
  for (const node of runningNodes()) {
    const s = state(node);
    if (s.progress?.done && s.report && s.waiting !== false) {
      const lines = [{ text: reportSummary(s.report), color: COLORS.good }];
      if (decoding) lines.push({ text: "decode · VAE Decode is turning the latents into frames…", color: COLORS.text });
      setSection(node, "report", lines);
      if (id == null) s.waiting = false;
    }
  }
}

app.registerExtension({
  name: "Miga.Progress",
  setup() {
    const api = app.api;
    if (!api?.addEventListener) return;
    api.addEventListener("miga.progress", onProgress);
    api.addEventListener("miga.report", onReport);
    api.addEventListener("execution_start", onStart);
    api.addEventListener("execution_cached", onCached);
    api.addEventListener("execution_interrupted", onStopped("interrupted"));
    api.addEventListener("execution_error", onStopped("error"));
    api.addEventListener("executing", onExecuting);
  },
  nodeCreated(node) {
    if (isRunning(node)) install(node);
  },
});
