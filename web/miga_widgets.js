// Shared helpers of the Miga frontend extensions (no extension of its own): find widgets defensively and
// re-run a view update when a widget changes or a saved workflow is loaded. No sampling logic lives here.

// Nodes that carry the queue widgets (nodes/widgets.py: model_inputs() + queue_inputs()).
export const QUEUE_NODE_TYPES = ["MigaSampler", "MigaQueueInit"];

export function isQueueNode(node) {
  return QUEUE_NODE_TYPES.includes(node?.comfyClass ?? node?.type);
}

export function findWidget(node, name) {
  return Array.isArray(node?.widgets) ? node.widgets.find((widget) => widget?.name === name) : undefined;
}

// Frames per second of the video the node feeds: the fps widget of a CreateVideo node in the graph, else `fallback`
// (the model family's, miga_frame_rule.js FAMILIES; Wan2.1's 16 by default).
export function videoFps(node, fallback = 16) {
  const nodes = node?.graph?._nodes ?? node?.graph?.nodes ?? [];
  const create = nodes.find((other) => (other?.comfyClass ?? other?.type) === "CreateVideo");
  const fps = Number(findWidget(create, "fps")?.value);
  return Number.isFinite(fps) && fps > 0 ? fps : fallback;
}

// Calls `update(node)` after the node's links change (a loader connected to its model input changes the family).
export function onConnectionsChange(node, key, update) {
  node.__miga ??= {};
  const mark = `${key}:links`;
  if (node.__miga[mark]) return;
  node.__miga[mark] = true;
  const original = node.onConnectionsChange;
  node.onConnectionsChange = function (...args) {
    const result = original?.apply(this, args);
    try {
      update(node);
    } catch (error) {
      console.warn(`[miga] ${key}:`, error);
    }
    redraw(node);
    return result;
  };
}

export function redraw(node) {
  node?.setDirtyCanvas?.(true, true);
}

// Calls `update(node)` now, after every user edit of one of `widgets` (their callbacks keep running first)
// and again when a saved workflow restores the values (see onLoaded). Installed once per node and key.
export function watch(node, key, widgets, update) {
  const present = widgets.filter(Boolean);
  if (present.length === 0) return;
  node.__miga ??= {};
  if (node.__miga[key]) return;
  const run = () => {
    try {
      update(node);
    } catch (error) {
      console.warn(`[miga] ${key}:`, error);
    }
    redraw(node);
  };
  node.__miga[key] = run;
  for (const widget of present) {
    const original = widget.callback;
    widget.callback = function (...args) {
      const result = original?.apply(this, args);
      run();
      return result;
    };
  }
  run();
}

export function onLoaded(node, key) {
  node?.__miga?.[key]?.();
}
