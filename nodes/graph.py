"""The submitted prompt as seen from a node's ``validate_inputs`` (ComfyUI v0.8.0).

ComfyUI validates a node with ``None`` in place of every linked input: the MIGA options
(``guidance``, ``reflection``, ``prompts``) come from other nodes, so a cross-node refusal
(fifo + guidance, window_length vs num_guidance, keyframes past the end) cannot be decided
from the arguments. The option nodes compute their values from their own widgets only, so
their values can be rebuilt from the prompt without running anything: :func:`remember` (a
PromptServer on-prompt handler, installed by the pack) keeps the submitted prompt in a
context variable of the POST /prompt request together with its prompt id; :func:`linked`
finds, for the node being validated, the node linked to an input. Anything that is not
known before execution (an option node whose widget is itself linked, a source of another
type, a validation without the server hook) is :data:`UNKNOWN`, and the same check runs at
execution instead.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..miga_core import MigaError
from . import host

__all__ = ["UNKNOWN", "remember", "install", "submitted", "linked", "option", "linked_option", "inputs_of", "literal"]

#: A value that exists but cannot be known before execution.
UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN"})()

_SUBMITTED: contextvars.ContextVar[tuple[str, Mapping] | None] = contextvars.ContextVar("miga_submitted_prompt", default=None)


def remember(json_data: Any) -> Any:
    """On-prompt handler: keep ``json_data["prompt"]`` for this request's validation.

    The server takes ``json_data.get("prompt_id", uuid4())`` as the prompt id; it is set here when
    the client sent none (same form), so validation can tell this prompt from any other.
    """
    if isinstance(json_data, dict) and isinstance(json_data.get("prompt"), Mapping):
        prompt_id = str(json_data.setdefault("prompt_id", str(uuid.uuid4())))
        _SUBMITTED.set((prompt_id, json_data["prompt"]))
    return json_data


def install() -> bool:
    """Register :func:`remember` with the running PromptServer (False without one)."""
    return host.on_prompt(remember)


def submitted() -> tuple[str, Mapping] | None:
    """``(node_id, prompt)`` of the node being validated, when the prompt it belongs to was remembered."""
    executing, kept = host.executing_node(), _SUBMITTED.get()
    if executing is None or kept is None or executing[0] != kept[0] or executing[1] not in kept[1]:
        return None
    return executing[1], kept[1]


def linked(input_name: str, node_id: str | None = None) -> tuple[str, Mapping, str] | None | Any:
    """``(class_type, inputs, node_id)`` of the node linked to ``input_name`` of ``node_id`` (default: the node
    being validated); None when the input is not connected; :data:`UNKNOWN` without the prompt."""
    seen = submitted()
    if seen is None:
        return UNKNOWN
    prompt = seen[1]
    node = prompt.get(node_id if node_id is not None else seen[0])
    if not isinstance(node, Mapping):
        return UNKNOWN
    link = node.get("inputs", {}).get(input_name)
    if link is None:
        return None
    if not (isinstance(link, list) and len(link) == 2 and isinstance(prompt.get(str(link[0])), Mapping)):
        return UNKNOWN
    source = prompt[str(link[0])]
    return str(source.get("class_type")), source.get("inputs", {}), str(link[0])


def option(source: Any, builders: Mapping[str, Callable[[Mapping], Any]]) -> Any:
    """The value an option node will output, rebuilt from its widgets; None / UNKNOWN passed through.

    ``builders`` maps a class_type to a function of the source node's inputs (the same function its
    ``execute`` uses). A source of another class, a linked widget (``[id, slot]``) or a value the source
    node itself refuses (its own validation reports that) gives :data:`UNKNOWN`.
    """
    if source is None or source is UNKNOWN:
        return source
    class_type, inputs = source[0], source[1]
    build = builders.get(class_type)
    if build is None:
        return UNKNOWN
    try:
        return build(inputs)
    except (MigaError, KeyError, TypeError, ValueError):
        return UNKNOWN


def literal(inputs: Mapping, name: str, default: Any = None) -> Any:
    """A widget value of a source node; raises TypeError when it is linked (known only at execution)."""
    value = inputs.get(name, default)
    if isinstance(value, list):
        raise TypeError(f"{name} is linked")
    return value


def linked_option(name: str, builders: Mapping[str, Callable[[Mapping], Any]], node_id: str | None = None) -> Any:
    """The value optional input ``name`` of ``node_id`` (default: the node being validated) will carry: None when
    not connected, the linked option node's value rebuilt by :func:`option`, or :data:`UNKNOWN`."""
    return option(linked(name, node_id), builders)


def inputs_of(node_id: str | None = None) -> Mapping | None:
    """The prompt inputs of ``node_id`` (default: the node being validated), already converted by ComfyUI's own
    checks of that node; None without the remembered prompt."""
    seen = submitted()
    if seen is None:
        return None
    node = seen[1].get(node_id if node_id is not None else seen[0])
    return node.get("inputs", {}) if isinstance(node, Mapping) else None


def model_family(node_id: str | None = None) -> str:
    """The family (a key of :data:`.families.FAMILIES`) of the MODEL reaching ``node_id``'s ``model`` input, told from the
    loader it comes from (nodes in between, e.g. ModelSamplingSD3 or a LoRA loader, are followed through their own
    ``model`` input); ``"wan21"``, the default family, when another loader or nothing can be told before execution
    (execution checks the model itself: ``host.check_model``)."""
    from .families import FAMILIES

    by_loader = {f.loader_node: f.name for f in FAMILIES.values() if f.loader_node}
    source = linked("model", node_id)
    for _ in range(256):  # a chain of model patches; a cycle cannot pass ComfyUI's own validation
        if not isinstance(source, tuple):
            break
        class_type, inputs, source_id = source
        if class_type in by_loader:
            return by_loader[class_type]
        if "model" not in inputs:
            break
        source = linked("model", source_id)
    return "wan21"
