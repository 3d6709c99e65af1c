// The pixel <-> latent frame rule of Wan2.1, a twin of miga_core/frames.py num_latent_frames (tests/test_web.py checks
// that both agree on 0..10,000 frames). Pure functions only: no app import, so node can load this module.

// Wan2.1's VAE packs 4 video frames per latent after the first: 4n+1 frames = n+1 latents.
export const FRAMES_PER_LATENT = 4;

// Latent frames of a video of `frames` pixel frames, or null when the count is not an integer >= 1 of the form 4n+1.
export function numLatentFrames(frames) {
  if (!Number.isInteger(frames) || frames < 1 || (frames - 1) % FRAMES_PER_LATENT !== 0) return null;
  return (frames - 1) / FRAMES_PER_LATENT + 1;
}

// The two valid counts around an integer `frames` >= 1 that is not 4n+1 (what the node's refusal suggests), else null.
export function nearestFrameCounts(frames) {
  if (!Number.isInteger(frames) || frames < 1 || numLatentFrames(frames) !== null) return null;
  const lower = Math.floor((frames - 1) / FRAMES_PER_LATENT) * FRAMES_PER_LATENT + 1;
  return [lower, lower + FRAMES_PER_LATENT];
}

// The label shown next to num_pixel_frames.
export function describeFrames(frames) {
  const latents = numLatentFrames(frames);
  if (latents !== null) return `= ${latents} latents`;
  const near = nearestFrameCounts(frames);
  return near ? `⚠ not 4n+1: use ${near[0]} or ${near[1]}` : "⚠ not a frame count";
}
