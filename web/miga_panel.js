// Shared helper (no extension of its own): one panel drawn at the bottom of a Miga node, in sections that the
// extensions fill (frame note, cost preview, progress, report). Text is wrapped, never cut off; warnings use the
// warning colour. The panel is appended after the node's own widgets and never serialized, so saved workflows and
// queued prompts keep exactly the node's widget values.
import { wrapText } from "./miga_format.js";

export const COLORS = { text: "#c8c8c8", dim: "#8a8a8a", warning: "#f0a020", error: "#ff5a5a", good: "#7cc47c", bar: "#3d8bfd" };
const FONT_PX = 12;
const LINE = 16;
const CHAR_PX = 6.6; // the width of one character at FONT_PX, for wrapping before a canvas is at hand
const ORDER = ["frames", "cost", "run", "report"];

function layout(panel, width) {
  const rows = [];
  const keys = [...panel.sections.keys()].sort((a, b) => (ORDER.indexOf(a) + 99) % 99 - (ORDER.indexOf(b) + 99) % 99);
  for (const key of keys) {
    const section = panel.sections.get(key);
    if (section.bar !== undefined && section.bar !== null) rows.push({ bar: section.bar });
    for (const line of section.lines) {
      for (const text of wrapText(line.text, (width - 20) / CHAR_PX)) rows.push({ text, color: line.color ?? COLORS.text });
    }
  }
  return rows;
}

export function ensurePanel(node) {
  node.__miga ??= {};
  if (node.__miga.panel) return node.__miga.panel;
  const panel = { sections: new Map(), widget: null };
  const widget = {
    name: "miga_panel",
    type: "miga_panel",
    value: "",
    serialize: false,
    options: { serialize: false },
    draw(ctx, _node, width, y) {
      ctx.save();
      ctx.font = `${FONT_PX}px sans-serif`;
      ctx.textBaseline = "middle";
      let top = y + 2;
      for (const row of layout(panel, width)) {
        if (row.bar !== undefined) {
          ctx.fillStyle = "#222";
          ctx.fillRect(10, top + 3, width - 20, LINE - 6);
          ctx.fillStyle = COLORS.bar;
          ctx.fillRect(10, top + 3, (width - 20) * Math.min(1, Math.max(0, row.bar)), LINE - 6);
        } else {
          ctx.fillStyle = row.color;
          ctx.fillText(row.text, 10, top + LINE / 2);
        }
        top += LINE;
      }
      ctx.restore();
    },
    computeSize(width) {
      return [width, Math.max(1, layout(panel, width ?? 300).length) * LINE + 4];
    },
  };
  panel.widget = node.addCustomWidget ? node.addCustomWidget(widget) ?? widget : widget;
  node.__miga.panel = panel;
  return panel;
}

// Replaces the section `key` with `lines` ([{text, color}]) and an optional bar fraction (0..1); null removes it.
export function setSection(node, key, lines, bar) {
  const panel = ensurePanel(node);
  if (lines === null) panel.sections.delete(key);
  else panel.sections.set(key, { lines, bar });
  const size = node.computeSize?.();
  if (size && node.size && size[1] > node.size[1]) node.setSize?.([node.size[0], size[1]]);
  node.setDirtyCanvas?.(true, true);
}

export function sectionText(node, key) {
  return node?.__miga?.panel?.sections.get(key)?.lines.map((line) => line.text) ?? null;
}
