// The pixel <-> latent frame rule of each model family, a twin of miga_core/frames.py num_latent_frames and of the
// family table nodes/families.py (tests/test_web.py checks that both agree). Pure functions only: no app import, so
// node can load this module.

// Wan2.1's VAE packs 4 video frames per latent after the first: 4n+1 frames = n+1 latents.
export const FRAMES_PER_LATENT = 4;

// Video frames per latent after the first, per rule (miga_core/frames.py _PACKING): VC2 and the toy model have one
// latent per frame.
export const PACKING = { wan21: 4, vc2: 1 };

// The families (nodes/families.py FAMILIES): their frame rule, the loader node whose MODEL is of the family for certain
// (validation tells the family the same way: nodes/graph.py model_family), and the fps their videos play at by default.
export const FAMILIES = {
  wan21: { rule: "wan21", loader: null, fps: 16 },
  vc2: { rule: "vc2", loader: "MigaVC2Loader", fps: 8 },
  toy: { rule: "vc2", loader: "MigaToyLoader", fps: 16 },
};
export const DEFAULT_FAMILY = "wan21";

function packing(rule) {
  return PACKING[rule] ?? FRAMES_PER_LATENT;
}

// The family's rule ("wan21" for an unknown family, the default).
export function ruleOf(family) {
  return (FAMILIES[family] ?? FAMILIES[DEFAULT_FAMILY]).rule;
}

// Latent frames of a video of `frames` pixel frames, or null when the count is not an integer >= 1 of the rule's form
// (Wan2.1: 4n+1; VC2: any).
export function numLatentFrames(frames, rule = "wan21") {
  const k = packing(rule);
  if (!Number.isInteger(frames) || frames < 1 || (frames - 1) % k !== 0) return null;
  return (frames - 1) / k + 1;
}

// The two valid counts around an integer `frames` >= 1 that is not of the rule's form (what the node's refusal
// suggests), else null.
export function nearestFrameCounts(frames, rule = "wan21") {
  const k = packing(rule);
  if (!Number.isInteger(frames) || frames < 1 || numLatentFrames(frames, rule) !== null) return null;
  const lower = Math.floor((frames - 1) / k) * k + 1;
  return [lower, lower + k];
}

// The label shown next to num_pixel_frames.
export function describeFrames(frames, rule = "wan21") {
  const latents = numLatentFrames(frames, rule);
  if (latents !== null) return `= ${latents} latents`;
  const near = nearestFrameCounts(frames, rule);
  return near ? `⚠ not 4n+1: use ${near[0]} or ${near[1]}` : "⚠ not a frame count";
}
