"""Video files written chunk by chunk, in constant memory, that appear under their final name only when complete.

Pure Python over PyAV (no ``comfy``): :class:`VideoFileWriter` encodes frames as they come (H.264,
``yuv420p``, CRF) into a temporary file next to the final one and renames it with one ``os.replace``
when the last frame is in, so no partial file ever carries the final name; on an error or a cancel
the temporary file is removed. :func:`latent_chunks` plans the decode (latent frames per chunk) and
:func:`eta_seconds` estimates the time left. Used by the MIGA Save Video node (:mod:`.nodes_video`);
the decode itself is in :mod:`.host`.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..miga_core.errors import MigaValueError, bad_value

__all__ = ["CODECS", "PIX_FMT", "VideoFileWriter", "temporary_path", "latent_chunks", "eta_seconds", "encoder_available",
           "to_uint8", "check_filename_prefix"]

#: Codec choice (the node's combo) -> PyAV encoder name. CRF is x264's quality scale (0 lossless .. 51 worst).
CODECS: dict[str, str] = {"h264": "libx264"}
PIX_FMT = "yuv420p"  # what every player and browser decodes
CRF_RANGE = (0, 51)
PARTIAL_SUFFIX = ".partial"


def encoder_available(codec: str) -> bool:
    """Whether this PyAV build can encode ``codec`` (a key of :data:`CODECS`)."""
    import av

    return codec in CODECS and CODECS[codec] in av.codecs_available


def temporary_path(path: str | Path) -> Path:
    """Where ``path`` is written until complete: a hidden sibling ``.<name>.partial`` (never the final name or extension)."""
    path = Path(path)
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``[N, H, W, 3]`` floats in [0, 1] (ComfyUI's IMAGE layout) -> ``[N, H, W, 3]`` uint8 (rounded, clamped)."""
    return frames.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8).contiguous().numpy()


class VideoFileWriter:
    """An MP4 file (H.264, ``yuv420p``) fed frame chunks ``[N, H, W, 3]`` in [0, 1]; only the current chunk is in memory.

    Frames go to :func:`temporary_path` of ``path``; :meth:`finish` flushes the encoder, closes the file
    and renames it to ``path``; :meth:`abort` (or leaving a ``with`` block by an exception) closes and
    deletes it. ``path`` itself never exists half-written.

    Args:
        path: the final file (its folder must exist; an existing file is refused, never overwritten).
        width, height: frame size in pixels, both even (``yuv420p`` halves chroma in both directions).
        fps: frames per second (> 0); stored as a rational with millisecond precision.
        crf: x264 constant rate factor, an integer in [0, 51] (lower is better; 17-19 looks lossless).
        codec: a key of :data:`CODECS`.
        metadata: container metadata (``{key: JSON-serialisable}``), e.g. ComfyUI's prompt for drag-and-drop.

    Raises:
        MigaValueError: a size, fps, crf or codec out of range; ``path`` exists.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, crf: int = 19, codec: str = "h264",
                 metadata: dict[str, Any] | None = None) -> None:
        import av

        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2 or value % 2:
                raise MigaValueError(bad_value(f"video {name}", value, f"an even number of pixels >= 2 ({PIX_FMT} halves chroma)",
                                               "decode with a VAE whose frames have even sides (Wan2.1 and SD VAEs give multiples of 8)"))
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
            raise MigaValueError(bad_value("fps", fps, "a number in (0, 1000]", "use 16 for Wan2.1"))
        if isinstance(crf, bool) or not isinstance(crf, int) or not CRF_RANGE[0] <= crf <= CRF_RANGE[1]:
            raise MigaValueError(bad_value("crf", crf, f"an integer in [{CRF_RANGE[0]}, {CRF_RANGE[1]}]", "use 19 (visually lossless)"))
        if not encoder_available(codec):
            raise MigaValueError(bad_value("codec", codec, f"one of {sorted(c for c in CODECS if encoder_available(c))} (this PyAV build)",
                                           "pick h264, or reinstall PyAV with its bundled FFmpeg: pip install --force-reinstall av"))
        self.path = Path(path)
        if self.path.exists():
            raise MigaValueError(bad_value("path", str(self.path), "a file name that does not exist yet", "pick another filename_prefix"))
        self.partial = temporary_path(self.path)
        self.width, self.height = width, height
        self.frames_written = 0
        self._container = av.open(str(self.partial), mode="w", format="mp4")
        try:
            for key, value in (metadata or {}).items():
                self._container.metadata[key] = json.dumps(value)
            self._stream = self._container.add_stream(CODECS[codec], rate=Fraction(round(fps * 1000), 1000))
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, PIX_FMT
            self._stream.options = {"crf": str(crf)}
        except BaseException:
            self.abort()
            raise
        self._av = av

    def write(self, frames: torch.Tensor) -> None:
        """Encode ``frames [N, H, W, 3]`` (floats in [0, 1]; ``[N, H, W, C>3]`` keeps the first three channels).

        Raises:
            MigaValueError: a chunk of another size or layout; the writer is already closed.
        """
        if self._container is None:
            raise MigaValueError(bad_value("writer", "closed", "an open writer", "open a new VideoFileWriter"))
        if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or tuple(frames.shape[1:3]) != (self.height, self.width) \
                or frames.shape[3] < 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise MigaValueError(bad_value("frames", shape, f"[N, {self.height}, {self.width}, 3] (the video's size)",
                                           "write frames of one size into one file"))
        for array in to_uint8(frames[..., :3]):
            self._container.mux(self._stream.encode(self._av.VideoFrame.from_ndarray(array, format="rgb24")))
            self.frames_written += 1

    def finish(self) -> Path:
        """Flush the encoder, close the file and rename it to its final name; return that path.

        Raises:
            MigaValueError: no frame was written (the temporary file is removed).
        """
        if self._container is None:
            raise MigaValueError(bad_value("writer", "closed", "an open writer", "call finish() once"))
        if self.frames_written == 0:
            self.abort()
            raise MigaValueError(bad_value("frames", 0, "at least one frame", "connect a LATENT with at least one latent frame"))
        try:
            self._container.mux(self._stream.encode())  # flush the encoder's delayed frames
            self._container.close()
        except BaseException:
            self._container = None
            self.partial.unlink(missing_ok=True)
            raise
        self._container = None
        os.replace(self.partial, self.path)  # atomic on one file system: the final name appears complete or not at all
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (idempotent); the final name is never created."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # the file is deleted anyway
                pass
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> VideoFileWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            self.abort()
        elif self._container is not None:
            self.finish()


def latent_chunks(num_latents: int, chunk: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: consecutive latent-frame ranges of at most ``chunk`` covering ``0 .. num_latents``.

    Raises:
        MigaValueError: ``num_latents`` < 1 or ``chunk`` < 1.
    """
    if isinstance(num_latents, bool) or not isinstance(num_latents, int) or num_latents < 1:
        raise MigaValueError(bad_value("latent frames", num_latents, "an integer >= 1", "connect a non-empty LATENT"))
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise MigaValueError(bad_value("decode_chunk", chunk, "an integer >= 1", "use 4 latent frames (16 video frames for Wan2.1)"))
    return [(start, min(start + chunk, num_latents)) for start in range(0, num_latents, chunk)]


def eta_seconds(elapsed: float, done: int, total: int) -> float | None:
    """Seconds left at the average rate so far (``elapsed / done * (total - done)``); None before the first unit."""
    if done <= 0 or elapsed < 0:
        return None
    return elapsed / done * max(0, total - done)


def check_filename_prefix(prefix: Any) -> bool | str:
    """True, or why ``prefix`` cannot name a file inside ComfyUI's output folder (empty, absolute, or climbing out with '..')."""
    if not isinstance(prefix, str) or not prefix.strip():
        return bad_value("filename_prefix", prefix, "a non-empty relative path such as video/miga", "type a name")
    normal = os.path.normpath(prefix)
    if os.path.isabs(prefix) or normal == ".." or normal.startswith(".." + os.sep) or os.path.basename(normal) in ("", ".", ".."):
        return bad_value("filename_prefix", prefix, "a path inside ComfyUI's output folder, ending in a file name",
                         "remove leading '/' and '..' parts, e.g. video/miga")
    return True
