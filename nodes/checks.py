"""Validation-time checks of the nodes that start a run (ComfyUI answers HTTP 400 with ``node_errors``).

A node names ONE input in its ``validate_inputs`` (ComfyUI repeats a returned message once per named
input, and drops its own min/max/option checks for every named input): the start nodes name
``num_pixel_frames``, the zigzag stage ``reflection``. Everything else is read from the submitted
prompt (:mod:`.graph`), after ComfyUI has checked and converted the node's own widgets; the
options of linked option nodes are rebuilt from their widgets. What cannot be known before
execution is checked by the same :func:`.runner.plan_video` when the node runs.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ..miga_core import MigaError
from ..miga_core.plan import check_stage1_reflection
from . import graph, host
from .families import FAMILIES
from .nodes_options import BUILDERS as OPTION_BUILDERS
from .nodes_prompts import BUILDERS as PROMPT_BUILDERS
from .runner import plan_video
from .widgets import APPENDED_START_WIDGETS, START_WIDGETS, check_ranges, check_size, config_from

__all__ = ["validate_start", "validate_devices"]


def _known(value: Any) -> Any:
    return None if value is graph.UNKNOWN else value


_OWN: Any = object()  # read the node's own reflection input


def validate_start(node: Any, node_id: str | None = None, *, reflection: Any = _OWN) -> bool | str:
    """The cross-input check of the start node ``node_id`` (default: the node being validated).

    Args:
        node: the node class (its schema gives the widget ranges).
        reflection: the self-reflection options to check with (the zigzag stage's; None: none); by default the
            node's own ``reflection`` input (MigaSampler; MigaQueueInit has none).

    Returns:
        True, or the house message of the refusal. True also when a value is unknown before execution (a linked
        widget, no remembered prompt) or out of its widget range (ComfyUI reports that one itself).
    """
    inputs = graph.inputs_of(node_id)
    if inputs is None:
        return True
    values = {name: None if isinstance(inputs.get(name), list) else inputs.get(name) for name in START_WIDGETS}
    appended = {name: inputs.get(name) for name in APPENDED_START_WIDGETS}  # absent (None): config_from's default
    if any(value is None for value in values.values()) or any(isinstance(value, list) for value in appended.values()) \
            or check_ranges(node, {**values, **appended}) is not True:
        return True
    values.update(appended)
    if reflection is _OWN:
        reflection = graph.linked_option("reflection", OPTION_BUILDERS, node_id)
    v = values
    try:
        check_size(v["width"], v["height"])
        config = config_from(v["mode"], v["window_length"], v["zigzag_width"], v["unified_steps"], v["sampler"], v["window_stride"],
                             v["update"], v["window_batch"], v["seed"], v["borders"])
        family = FAMILIES[graph.model_family(node_id)]  # from the loader in the prompt (Wan2.1 unless it is VC2's)
        config = config.with_(parameterization=family.parameterization)
        plan_video(config, v["steps"], v["num_pixel_frames"], has_initial_clip="initial_clip" in inputs, latent_rule=family.latent_rule,
                  guidance=_known(graph.linked_option("guidance", OPTION_BUILDERS, node_id)),
                  reflection=_known(reflection),
                  prompts=_known(graph.linked_option("prompts", {k: partial(f, latent_rule=family.latent_rule)
                                                                  for k, f in PROMPT_BUILDERS.items()}, node_id)))
    except MigaError as exc:
        return str(exc)
    return True


def validate_zigzag() -> bool | str:
    """The zigzag stage's check: its reflection options (phase stage1 only: ``miga_core.plan.check_stage1_reflection``) against
    the run of the MigaQueueInit its queue comes from.

    Only a refusal that the reflection options cause is reported (the initialization node reports its own).
    """
    options = graph.linked_option("reflection", OPTION_BUILDERS)
    try:
        check_stage1_reflection(_known(options))
    except MigaError as exc:
        return str(exc)
    init = graph.linked("queue")
    if options is None or options is graph.UNKNOWN or not isinstance(init, tuple) or init[0] != "MigaQueueInit":
        return True
    from .nodes_queue import MigaQueueInit

    if validate_start(MigaQueueInit, init[2], reflection=None) is not True:
        return True
    return validate_start(MigaQueueInit, init[2], reflection=options)


def validate_devices(node_id: str | None = None) -> bool | str:
    """The ``devices`` input of the sampler ``node_id`` (default: the node being validated): True, or the house message
    of ``host.parse_devices`` (unknown / unavailable / repeated device). True when it is linked or not known before
    execution (the node checks it again when it runs)."""
    inputs = graph.inputs_of(node_id)
    value = None if inputs is None else inputs.get("devices", "")
    if value is None or isinstance(value, list):
        return True
    try:
        host.parse_devices(value)
    except MigaError as exc:
        return str(exc)
    return True
