"""Long videos in bounded host memory: latents spilled to files, passes run a part at a time, frames streamed out.

An in-memory run holds every stage-1 output until the unified stage, and its result holds the whole video: host
memory grows with N (one Wan2.1 latent at 832x480 is 390 KiB per copy). A *streamed* run (``run(..., sink=...)``)
keeps them in a :class:`SpilledRun` instead: raw files in a spill folder, written and read with plain file I/O
(never memory-mapped: mapped pages would count in the process's memory), ``chunk_frames`` latents at a time.

- Stage 1 appends each group that leaves the queue to a spilled run (its queue is O(T L_zig) latents anyway).
- Each unified / refinement pass reads the spilled run a part at a time and writes the next one: the pass's windows
  are :func:`~miga_core.passes.pass_windows` of the whole run, cut between two model calls
  (:func:`~miga_core.passes.window_batches`), and each part is run by :func:`~miga_core.passes.queue_pass` over the
  latents its windows read. The windows, their model calls, the noise and the callback's reports are those of the
  in-memory pass, so the video is bit-identical [D1, D1b, D7].
- Per-latent steps between passes (stage 2's reset and mislabel, the refinement's re-noise) run chunk by chunk
  (:func:`per_chunk`); noise is keyed per latent [D1b], so a chunk draws exactly its latents' noise.
- The finished latents go to the sink, ``[B, C, n, H, W]`` chunks in video order, each latent once.

Memory then holds the model, the stage-1 queue and a few chunks, whatever N; the spill folder holds about two
copies of the latents with their sampler state (x, denoised; ``uni_pc``: 2 more) at a time.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import InvalidConfigError, MigaValueError, bad_value
from .latents import LatentRun
from .passes import PassContext, pass_windows, queue_pass, window_batches
from .windows import Window

__all__ = ["LatentSink", "Spill", "SpilledRun", "stream_pass", "per_chunk", "first_frames", "refuse_checkpoint",
           "check_chunk", "make_spill_folder", "DEFAULT_CHUNK_FRAMES"]

#: ``sink(latents [B, C, n, H, W])``: receives the finished video in consecutive chunks, video order, each latent once.
LatentSink = Callable[[torch.Tensor], None]

DEFAULT_CHUNK_FRAMES = 64  # latents per file read/write and per part of a streamed pass


def check_chunk(chunk_frames: object) -> int:
    """``chunk_frames`` when it is a valid ``spill_chunk``; raises MigaValueError otherwise."""
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise MigaValueError(bad_value("spill_chunk", chunk_frames, "an integer >= 1 (latents per file read and write)",
                                       f"use {DEFAULT_CHUNK_FRAMES}"))
    return chunk_frames


@dataclass(frozen=True)
class Spill:
    """Where a streamed run keeps its latents: a folder (that exists) and the chunk size of its reads and writes.

    Attributes:
        folder: the spill folder; every :class:`SpilledRun` of the run writes its files there (``run`` makes and
            removes a fresh subfolder of ``spill_dir``).
        chunk_frames: latents per read and write, and (at least, up to one model call more) per part of a pass.
    """

    folder: Path
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    _names: Iterator[int] = field(default_factory=itertools.count, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_chunk(self.chunk_frames)

    def store(self, like: torch.Tensor) -> "SpilledRun":
        """A new, empty spilled run for latents shaped like ``like`` ``[B, C, *, H, W]`` (its dtype and device)."""
        return SpilledRun(self, Path(self.folder) / f"run{next(self._names):04d}", like)


class _File:
    """One raw tensor file, frame-major: frame f's ``frame_shape`` values at byte ``f * frame_bytes``."""

    def __init__(self, path: Path, frame_shape: tuple[int, ...], dtype: torch.dtype) -> None:
        self.path, self.frame_shape, self.dtype = path, frame_shape, dtype
        self.frame_bytes = torch.Size(frame_shape).numel() * torch.empty((), dtype=dtype).element_size()
        path.write_bytes(b"")

    def append(self, frames: torch.Tensor) -> None:
        """Append ``frames [F, *frame_shape]``."""
        data = frames.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        with open(self.path, "ab") as f:
            f.write(memoryview(data.numpy()))

    def read(self, start: int, stop: int, device: torch.device) -> torch.Tensor:
        """Frames ``[start, stop)``: ``[stop - start, *frame_shape]`` on ``device``."""
        buf = torch.empty((stop - start) * self.frame_bytes, dtype=torch.uint8)
        with open(self.path, "rb") as f:
            f.seek(start * self.frame_bytes)
            got = f.readinto(memoryview(buf.numpy()))
        if got != buf.numel():
            raise MigaValueError(bad_value(f"spill file {self.path}", f"{got} bytes at frame {start}", f"{buf.numel()} bytes",
                                           "keep the spill folder while the run lasts (something truncated or removed it)"))
        return buf.view(self.dtype).view(stop - start, *self.frame_shape).to(device)


class SpilledRun:
    """A :class:`~miga_core.latents.LatentRun` kept in files: latents, ``denoised`` and (``uni_pc``) ``past`` on disk,
    the per-frame bookkeeping (``level``, ``index``, ``has_denoised``, ``depth``) in memory. Appended in video order,
    read back by frame ranges (:meth:`read`) as :class:`LatentRun` values equal to the slices of the in-memory run.

    A spilled run is consumed by the step that reads it whole (:func:`stream_pass`, :meth:`map`, :meth:`drain`):
    its files are removed then, and a later read raises.
    """

    def __init__(self, spill: Spill, stem: Path, like: torch.Tensor) -> None:
        B, C, _, H, W = like.shape
        self.spill, self.stem, self.device, self.dtype = spill, stem, like.device, like.dtype
        self._frame = (B, C, H, W)
        self._x = _File(stem.with_suffix(".x"), self._frame, like.dtype)
        self._d = _File(stem.with_suffix(".denoised"), self._frame, like.dtype)
        self._past: _File | None = None  # made when a run with multistep state arrives
        self._level: list[int] = []
        self._index: list[int] = []
        self._has_denoised: list[bool] = []
        self._depth: list[int] = []
        self._count: int | None = None  # visible frames (:func:`head`); None: all written
        self._released = False

    def __len__(self) -> int:
        return len(self._level) if self._count is None else self._count

    def empty_like(self) -> torch.Tensor:
        """``[B, C, 0, H, W]`` with the run's batch, channels, size, dtype and device (for a new spilled run)."""
        return torch.empty((*self._frame[:2], 0, *self._frame[2:]), dtype=self.dtype, device=self.device)

    @property
    def level(self) -> tuple[int, ...]:
        """Level of each frame."""
        return tuple(self._level[:len(self)])

    @property
    def index(self) -> tuple[int, ...]:
        """Absolute latent index of each frame."""
        return tuple(self._index[:len(self)])

    def append(self, run: LatentRun) -> None:
        """Write ``run``'s frames after the ones already here (a run without ``past`` next to one with it gets zeros,
        depth 0, as :meth:`LatentRun.cat <miga_core.latents.LatentRun.cat>` gives)."""
        self._check_open()
        if not len(run):
            return
        n_before = len(self._level)
        self._x.append(run.x.movedim(2, 0))
        self._d.append(run.denoised.movedim(2, 0))
        if run.past is not None and self._past is None:
            self._past = _File(self.stem.with_suffix(".past"), (2, *self._frame), self.dtype)
            zeros = torch.zeros((min(n_before, self.spill.chunk_frames), 2, *self._frame), dtype=self.dtype)
            for a in range(0, n_before, self.spill.chunk_frames):
                self._past.append(zeros[:min(self.spill.chunk_frames, n_before - a)])
        if self._past is not None:
            self._past.append(run.past_or_zeros().movedim(3, 0))
        self._level += run.level
        self._index += run.index
        self._has_denoised += run.has_denoised
        self._depth += run.depth

    def read(self, start: int, stop: int) -> LatentRun:
        """Frames ``[start, stop)`` as a :class:`LatentRun` (on the run's device)."""
        self._check_open()
        if not 0 <= start <= stop <= len(self):
            raise MigaValueError(bad_value("frames", (start, stop), f"0 <= start <= stop <= {len(self)}", "read inside the run"))
        past = self._past.read(start, stop, self.device).movedim(0, 3).contiguous() if self._past is not None else None
        return LatentRun(self._x.read(start, stop, self.device).movedim(0, 2).contiguous(), tuple(self._level[start:stop]),
                         tuple(self._index[start:stop]), self._d.read(start, stop, self.device).movedim(0, 2).contiguous(),
                         tuple(self._has_denoised[start:stop]), past, tuple(self._depth[start:stop]))

    def chunks(self) -> Iterator[LatentRun]:
        """The frames in order, ``spill.chunk_frames`` at a time."""
        n = self.spill.chunk_frames
        for a in range(0, len(self), n):
            yield self.read(a, min(a + n, len(self)))

    def head(self, n: int) -> "SpilledRun":
        """The first ``n`` frames (a view on the same files: consuming either consumes both)."""
        out = object.__new__(SpilledRun)
        out.__dict__.update(self.__dict__)
        out._count = min(n, len(self))
        return out

    def map(self, fn: Callable[[LatentRun], LatentRun]) -> "SpilledRun":
        """A new spilled run of ``fn`` applied chunk by chunk (``fn`` must act on each frame alone); consumes this one."""
        out = self.spill.store(self.empty_like())
        for part in self.chunks():
            out.append(fn(part))
        self.release()
        return out

    def drain(self, sink: LatentSink) -> int:
        """Hand the latents to ``sink`` chunk by chunk, in order; consumes the run. Returns the latents handed over."""
        done = 0
        for part in self.chunks():
            sink(part.x)
            done += len(part)
        self.release()
        return done

    def release(self) -> None:
        """Remove the files (idempotent)."""
        self._released = True
        for f in (self._x, self._d, self._past):
            if f is not None:
                f.path.unlink(missing_ok=True)

    def _check_open(self) -> None:
        if self._released or not self._x.path.exists():
            raise MigaValueError(bad_value("spilled run", str(self.stem), "a run whose files are still there",
                                           "a spilled run is consumed by the pass that reads it: use the run that pass returned"))


def stream_pass(ctx: PassContext, run: SpilledRun, *, frames_done: int = 0) -> SpilledRun:
    """One pass Phi over a spilled run with no history (the unified and refinement stages) [D1, D4, D7].

    The pass's windows are planned over the whole run (:func:`~miga_core.passes.pass_windows`) and split between
    model calls into parts whose regions cover at least ``chunk_frames`` latents; each part reads the latents its
    windows read and runs :func:`~miga_core.passes.queue_pass` on them. Equal to ``queue_pass(ctx, run, empty)``.

    Returns:
        A new spilled run (levels - 1); ``run`` is consumed.
    Raises:
        InvalidConfigError: Gauss-Seidel reads (stage 1 only: a part would miss the writes of the parts before it).
        The errors of :func:`~miga_core.passes.queue_pass`.
    """
    if ctx.gauss_seidel:
        raise InvalidConfigError(bad_value("gauss_seidel", True, "False in a streamed pass (the unified and refinement stages "
                                           "read Jacobi)", "stream only passes without history"))
    out = run.spill.store(run.empty_like())
    if not len(run):
        run.release()
        return out
    part: list[Window] = []

    def flush() -> None:
        a, b = part[0].region[0], part[-1].region[1]  # the span the part updates
        lo = min(a, *(min(w.positions) for w in part))  # and the latents its windows read
        hi = max(b, *(max(w.positions) + 1 for w in part))
        x = run.read(lo, hi)
        shifted = [Window(tuple(p - lo for p in w.positions), w.num_guidance, (w.region[0] - lo, w.region[1] - lo)) for w in part]
        out.append(queue_pass(ctx, x.frames(slice(a - lo, None)), x.frames(slice(0, a - lo)), frames_done=frames_done,
                              windows=shifted))
        part.clear()

    for batch in window_batches(ctx, pass_windows(ctx, 0, len(run))):  # cut between model calls: the same calls
        part += batch
        if part[-1].region[1] - part[0].region[0] >= run.spill.chunk_frames:
            flush()
    if part:
        flush()
    run.release()
    return out


def per_chunk(run: LatentRun | SpilledRun, fn: Callable[[LatentRun], LatentRun]) -> LatentRun | SpilledRun:
    """``fn(run)`` in memory, ``run.map(fn)`` (chunk by chunk) for a spilled run; ``fn`` must act on each frame alone."""
    return run.map(fn) if isinstance(run, SpilledRun) else fn(run)


def first_frames(run: LatentRun | SpilledRun, n: int) -> LatentRun | SpilledRun:
    """The first ``n`` frames of a run (in memory or spilled)."""
    return run.head(n) if isinstance(run, SpilledRun) else run.frames(slice(0, n))


def refuse_checkpoint(streamed: object, checkpoint: object, resume: object = None) -> None:
    """Streaming (``streamed`` not None: a sink or a :class:`Spill`) and checkpoints do not mix: a checkpoint holds the
    stage-1 outputs, a streamed run keeps them in files that end with it.

    Raises:
        InvalidConfigError: naming both options.
    """
    if streamed is None:
        return
    for name, value in (("checkpoint", checkpoint), ("resume", resume)):
        if value is not None:
            raise InvalidConfigError(bad_value(
                name, type(value).__name__, "None when the run streams its latents (sink= / spill_dir=)",
                f"drop {name}= to stream the video, or drop sink= to run in memory with checkpoints"))


def make_spill_folder(spill_dir: str | os.PathLike | None) -> Path:
    """A fresh subfolder ``miga-spill-*`` of ``spill_dir`` (None: the system's temporary folder).

    Raises:
        MigaValueError: ``spill_dir`` is not a writable folder.
    """
    try:
        return Path(tempfile.mkdtemp(prefix="miga-spill-", dir=spill_dir))
    except OSError as err:
        raise MigaValueError(bad_value("spill_dir", str(spill_dir), "an existing folder this user can write",
                                       f"pass another folder, or None for the system's temporary folder ({err.strerror or err})")) from err
