"""A toy world for training a tiny video diffusion model and measuring long-video consistency.

- :mod:`toyworld.world`: procedural clips (a coloured shape bouncing or orbiting over a
  background, optional camera pan), deterministic by seed, rendered vectorised in torch.
- :mod:`toyworld.metrics`: VBench-style metrics (Huang et al., CVPR 2024) computed from what
  was asked (the :class:`ClipSpec`), not from ground-truth positions.
- :mod:`toyworld.video`: MP4 (PyAV) and PNG contact sheets.

Importing ``toyworld`` touches no GPU and does not need PyAV.
"""

from .metrics import (
    OBJECT_DISTANCE,
    background_consistency,
    detect_object,
    evaluate,
    evaluate_batch,
    identify,
    identity_accuracy,
    motion_smoothness,
    subject_consistency,
    switch_error,
    temporal_flicker,
)
from .video import contact_sheet, read_mp4, write_mp4, write_png
from .world import (
    BACKGROUNDS,
    COLOUR_RGB,
    COLOURS,
    MOTIONS,
    SHAPES,
    WORLD_SIZE,
    ClipSpec,
    Render,
    parse_prompt,
    render,
    render_schedule,
    sample_spec,
    shape_sdf,
)

__all__ = [
    "WORLD_SIZE", "SHAPES", "COLOURS", "COLOUR_RGB", "BACKGROUNDS", "MOTIONS",
    "ClipSpec", "Render", "sample_spec", "parse_prompt", "render", "render_schedule", "shape_sdf",
    "OBJECT_DISTANCE", "detect_object", "identify", "subject_consistency", "background_consistency",
    "motion_smoothness", "temporal_flicker", "identity_accuracy", "switch_error",
    "evaluate", "evaluate_batch",
    "write_mp4", "read_mp4", "write_png", "contact_sheet",
]
