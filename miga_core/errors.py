"""Errors raised by miga_core.

Every error names the argument, the value, the allowed range and the fix
(docs/style.md "Errors"). They subclass ``ValueError``/``TypeError`` so callers that
catch the builtin kinds keep working.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MigaError",
    "MigaValueError",
    "MigaTypeError",
    "InvalidConfigError",
    "InvalidLadderError",
    "InvalidInitialClipError",
    "PromptScheduleError",
    "NonFiniteDenoiserOutputError",
    "DenoiserOutputShapeError",
    "CheckpointError",
    "CheckpointCorruptError",
    "CheckpointMismatchError",
    "bad_value",
]


class MigaError(Exception):
    """Base class of every error miga_core raises on purpose."""


class MigaValueError(MigaError, ValueError):
    """An argument has the right type but a value outside its allowed range."""


class MigaTypeError(MigaError, TypeError):
    """An argument has the wrong type."""


class InvalidConfigError(MigaValueError):
    """A sampler option (window, zigzag, unified, guidance, reflection) is out of range."""


class InvalidLadderError(MigaValueError):
    """The sigma ladder is not a strictly descending 1-D sequence of at least 2 finite values."""


class InvalidInitialClipError(MigaValueError):
    """The initial clip does not have ``window_length`` latent frames or has the wrong rank."""


class PromptScheduleError(MigaValueError):
    """A prompt schedule is malformed, not increasing, or names an unknown prompt."""


class NonFiniteDenoiserOutputError(MigaError, FloatingPointError):
    """The denoiser returned NaN or Inf; the message names the window and the latents."""


class DenoiserOutputShapeError(MigaValueError):
    """The denoiser returned a tensor whose shape differs from its input."""


class CheckpointError(MigaValueError):
    """A run checkpoint cannot be written or resumed from (see :mod:`miga_core.checkpoint`)."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint file is missing, truncated or corrupt; the message names the file and the problem."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was written by another run (model, prompts, options or ladder); the message names what differs."""


def bad_value(argument: str, value: Any, allowed: str, fix: str, problem: str = "is out of range") -> str:
    """Format the house error message: argument, value, what is wrong, allowed range, fix.

    >>> bad_value("zigzag_width", 0, "an integer >= 1", "use 1 for FIFO-Diffusion")
    'zigzag_width=0 is out of range: allowed is an integer >= 1. Fix: use 1 for FIFO-Diffusion.'
    >>> bad_value("keyframes", "{", "a JSON object", "close the brace", problem="is not valid JSON")
    "keyframes='{' is not valid JSON: allowed is a JSON object. Fix: close the brace."
    """
    return f"{argument}={value!r} {problem}: allowed is {allowed}. Fix: {fix.rstrip('.')}."
