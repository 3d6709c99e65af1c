"""Video and image files for toy-world clips: MP4 through PyAV, PNG contact sheets through zlib.

PyAV (``pip install av``) is imported only by :func:`write_mp4`/:func:`read_mp4`, so the rest of
``toyworld`` works without it. PNGs are written by a 20-line encoder (zlib + struct; no PIL).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ._core import MigaValueError, bad_value

__all__ = ["write_mp4", "read_mp4", "write_png", "contact_sheet"]


def _import_av():
    try:
        import av
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("toyworld.video needs PyAV for MP4 files. Fix: python3 -m pip install av") from err
    return av


def _check(video: torch.Tensor, ndim: int, name: str, layout: str) -> torch.Tensor:
    if not isinstance(video, torch.Tensor) or video.ndim != ndim or video.shape[-3] != 3 or video.numel() == 0:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise MigaValueError(bad_value(name, shape, f"a non-empty tensor {layout} in [0, 1]", "pass render(...).video"))
    return video.detach().float().cpu()


def _to_uint8(images: torch.Tensor, scale: int) -> np.ndarray:
    """``[..., 3, H, W]`` in [0, 1] -> ``[..., H * scale, W * scale, 3]`` uint8, nearest-neighbour upscaled."""
    if not isinstance(scale, int) or scale < 1:
        raise MigaValueError(bad_value("scale", scale, "an integer >= 1", "use 4 for 32 x 32 clips"))
    x = images.clamp(0, 1).mul(255).round().to(torch.uint8)
    x = x.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    return x.movedim(-3, -1).contiguous().numpy()


def write_mp4(path: str | Path, video: torch.Tensor, fps: int = 16, scale: int = 4, crf: int = 18) -> Path:
    """Write ``video [F, 3, H, W]`` (values in [0, 1]) as H.264 (yuv420p) MP4, upscaled by ``scale``.

    Nearest-neighbour upscaling keeps 32 x 32 pixels sharp; an odd upscaled side is padded by
    one repeated edge pixel (yuv420p needs even sizes). ``crf``: x264 quality (0 lossless luma,
    18 visually lossless). Returns the path.
    """
    av = _import_av()
    frames = _to_uint8(_check(video, 4, "video", "[F, 3, H, W]"), scale)  # [F, H, W, 3]
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    codec = next((c for c in ("libx264", "h264") if c in av.codecs_available), None)
    if codec is None:  # pragma: no cover - depends on the PyAV build
        raise ImportError("this PyAV build has no H.264 encoder. Fix: python3 -m pip install --force-reinstall av")
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf)}
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())  # flush
    return path


def read_mp4(path: str | Path) -> torch.Tensor:
    """Decode every frame of a video file: ``[F, 3, H, W]`` float32 in [0, 1]."""
    av = _import_av()
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise MigaValueError(bad_value("path", str(path), "a video with at least one frame", "check the file"))
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


def write_png(path: str | Path, image: torch.Tensor) -> Path:
    """Write ``image [3, H, W]`` in [0, 1] as an 8-bit RGB PNG (zlib + struct, filter type 0)."""
    pixels = _to_uint8(_check(image, 3, "image", "[3, H, W]"), 1)  # [H, W, 3]
    h, w = pixels.shape[:2]

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)  # each scanline: filter byte 0, then RGB
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit depth, colour type 2 (RGB)
    path = Path(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))
    return path


def contact_sheet(videos: torch.Tensor, path_png: str | Path, frames: int = 8, scale: int = 2, gap: int = 1) -> Path:
    """A PNG grid of ``videos [N, F, 3, H, W]``: rows are clips, columns ``frames`` evenly spaced frames.

    Tiles are upscaled by ``scale`` (nearest) and separated by ``gap`` white pixels.
    Image size: ``N * (H * scale + gap) + gap`` by ``frames * (W * scale + gap) + gap``.
    """
    videos = _check(videos, 5, "videos", "[N, F, 3, H, W]")
    n, f, _, h, w = videos.shape
    if not isinstance(frames, int) or not 1 <= frames <= f:
        raise MigaValueError(bad_value("frames", frames, f"an integer in [1, {f}] (the clips' frames)", "ask for fewer columns"))
    if not isinstance(gap, int) or gap < 0:
        raise MigaValueError(bad_value("gap", gap, "an integer >= 0", "use 1"))
    index = torch.linspace(0, f - 1, frames).round().long()
    tiles = torch.from_numpy(_to_uint8(videos[:, index], scale)).float() / 255  # [N, frames, h, w, 3]
    th, tw = h * scale, w * scale
    sheet = torch.ones(3, n * (th + gap) + gap, frames * (tw + gap) + gap)
    for i in range(n):
        for j in range(frames):
            y, x = gap + i * (th + gap), gap + j * (tw + gap)
            sheet[:, y:y + th, x:x + tw] = tiles[i, j].permute(2, 0, 1)
    return write_png(path_png, sheet)
