"""The ``miga_core`` this ``toyworld`` runs with: always the one next to it, so a process holds one copy.

Standalone (``python -m toyworld.demo``, the CPU tests, ``pip install -e .``) ``toyworld`` is a top-level package and
uses the top-level ``miga_core``. Inside ComfyUI the pack loads it as its own subpackage (``<pack>.toyworld``:
nodes/host.py ``toyworld``) and it uses the pack's ``<pack>.miga_core``, the copy the nodes use: a second, top-level
copy would raise errors that are not the nodes' ``MigaError`` classes (and hold a second set of every class).
The toyworld modules import what they need of ``miga_core`` from here.
"""

from __future__ import annotations

from importlib import import_module

#: The module name of the miga_core in use: "miga_core", or "<pack>.miga_core" when toyworld is "<pack>.toyworld".
CORE = f"{__package__.rpartition('.')[0]}.miga_core" if "." in (__package__ or "") else "miga_core"

_core = import_module(CORE)
_errors = import_module(f"{CORE}.errors")

GuidanceOptions = _core.GuidanceOptions
MigaConfig = _core.MigaConfig
MigaError = _core.MigaError
MigaResult = _core.MigaResult
MigaTypeError = _core.MigaTypeError
MigaValueError = _core.MigaValueError
PromptSchedule = _core.PromptSchedule
ReflectionOptions = _core.ReflectionOptions
WindowInfo = _core.WindowInfo
Callback = _core.Callback
generate = _core.generate
plan_run = _core.plan_run
bad_value = _errors.bad_value

__all__ = ["CORE", "GuidanceOptions", "MigaConfig", "MigaError", "MigaResult", "MigaTypeError", "MigaValueError", "PromptSchedule",
           "ReflectionOptions", "WindowInfo", "Callback", "generate", "plan_run", "bad_value"]
