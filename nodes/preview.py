"""The sampler's cost preview, served to the editor before a prompt is queued (``GET /miga/plan``).

The planned windows come from the run plan (:func:`.runner.plan_video`, the same validation the node runs), never
from a re-derivation in JavaScript; the measured time and VRAM come from the pack's benchmark table
(``benchmarks/results/wan_node_cuda.json``, written by ``benchmarks/wan_node_gpu.py``). web/miga_cost.js draws it.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

from ..miga_core import MigaValueError
from ..miga_core.errors import bad_value
from .families import DEFAULT_FAMILY, FAMILIES
from .runner import plan_video
from .widgets import WAN, check_size, config_from

__all__ = ["PLAN_ROUTE", "MEASURED", "plan_preview", "measured_row"]

PLAN_ROUTE = "/miga/plan"
MEASURED = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "wan_node_cuda.json"

_INTS = ("num_pixel_frames", "steps", "window_length", "zigzag_width", "unified_steps", "window_stride", "window_batch", "width",
         "height")


def _int(query: Mapping[str, str], name: str) -> int:
    value = query.get(name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MigaValueError(bad_value(name, value, "an integer", f"pass {name}=<integer> in the query")) from None


def measured_row(path: pathlib.Path = MEASURED) -> dict[str, Any] | None:
    """The measured Wan node run (model, size, device, seconds per model call, peak VRAM), or None without the table."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    options, machine = data["record"]["options"], data["record"].get("machine", {})
    row = next((r for r in data["rows"] if r.get("completed") and "s_per_model_call" in r.get("timing", {})), None)
    if row is None:
        return None
    return {"model": "Wan2.1 T2V 1.3B", "width": options["width"], "height": options["height"], "cfg": options["cfg"],
            "device": machine.get("device", "?"), "s_per_model_call": row["timing"]["s_per_model_call"],
            "peak_vram_gib": row["peak_vram_gib"], "source": "benchmarks/results/wan_node_cuda.json",
            "commit": data["record"].get("code", {}).get("commit")}


def plan_preview(query: Mapping[str, str]) -> dict[str, Any]:
    """The plan of a start node's widget values (strings, as the editor sends them) and the measured table.

    ``family`` (a key of :data:`.families.FAMILIES`; default ``wan21``) is the model family of the sampler's MODEL, which
    the editor tells from the loader linked to it, as validation does (:func:`.graph.model_family`): it gives the
    pixel <-> latent frame rule (Wan2.1 4n+1; VC2 and the toy model one latent per frame) and the parameterisation the
    plan is checked with, exactly as the node's validation (:func:`.checks.validate_start`).

    Returns:
        ``{"family", "num_latents", "calls": {stage: windows}, "total_windows", "window_batch", "model_calls", "measured"}``;
        ``model_calls`` is the planned denoiser calls (windows / window_batch per stage, rounded up), self-reflection's
        search excluded (it depends on the video); ``measured`` is the Wan2.1 table (:func:`measured_row`), None for
        another family (its time is not Wan2.1's).
    Raises:
        MigaError subclasses: an unknown family (the message lists them), a value out of range (the message the node
        would give when queued).
    """
    name = query.get("family", DEFAULT_FAMILY)
    if name not in FAMILIES:
        raise MigaValueError(bad_value("family", name, f"one of {', '.join(FAMILIES)}",
                                       "pass the family of the loader linked to the sampler's model (web/miga_format.js modelFamily)"))
    fam = FAMILIES[name]
    v = {name: _int(query, name) for name in _INTS}
    check_size(v["width"], v["height"])
    config = config_from(query.get("mode", "miga"), v["window_length"], v["zigzag_width"], v["unified_steps"],
                         query.get("sampler", WAN.sampler), v["window_stride"], query.get("update", WAN.update), v["window_batch"], 0,
                         query.get("borders"))
    config = config.with_(parameterization=fam.parameterization)
    plan = plan_video(config, v["steps"], v["num_pixel_frames"], has_initial_clip=query.get("has_initial_clip") in ("1", "true"),
                      latent_rule=fam.latent_rule)
    batch = v["window_batch"]
    calls = dict(plan.calls)
    return {"family": fam.name, "num_latents": plan.num_frames, "calls": calls, "total_windows": plan.total_calls, "window_batch": batch,
            "model_calls": sum(-(-c // batch) for c in calls.values()), "measured": measured_row() if fam.name == DEFAULT_FAMILY else None}
