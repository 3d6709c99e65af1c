"""MP4 round trips through PyAV and contact sheets are valid PNGs (toyworld/video.py)."""

import struct
import zlib

import pytest
import torch

from miga_core.errors import MigaValueError
from toyworld import contact_sheet, render, sample_spec, write_png

VIDEO = render([sample_spec(seed) for seed in range(3)], 12).video  # [3, 12, 3, 32, 32]


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = {}, 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF, tag
        chunks[tag], pos = body, pos + 12 + length
    return chunks


def test_mp4_round_trip_keeps_frames_size_and_colours(tmp_path):
    av = pytest.importorskip("av")
    from toyworld import read_mp4, write_mp4

    path = write_mp4(tmp_path / "clip.mp4", VIDEO[0], fps=16, scale=4)
    back = read_mp4(path)
    assert back.shape == (12, 3, 128, 128)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "libx264") and stream.codec_context.pix_fmt == "yuv420p"
    upscaled = VIDEO[0].repeat_interleave(4, -2).repeat_interleave(4, -1)
    assert float((back - upscaled).abs().mean()) < 0.02  # h264 + yuv420p tolerance


def test_odd_upscaled_sizes_are_padded_to_even(tmp_path):
    pytest.importorskip("av")
    from toyworld import read_mp4, write_mp4

    back = read_mp4(write_mp4(tmp_path / "odd.mp4", torch.rand(3, 3, 9, 7), scale=1))
    assert back.shape == (3, 3, 10, 8)


def test_contact_sheet_is_a_valid_png_of_the_grid_size(tmp_path):
    path = contact_sheet(VIDEO, tmp_path / "sheet.png", frames=4, scale=2, gap=1)
    chunks = _png_chunks(path.read_bytes())
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height, depth, colour_type) == (4 * 65 + 1, 3 * 65 + 1, 8, 2)
    assert b"IEND" in chunks


def test_png_pixels_decode_back_exactly(tmp_path):
    image = torch.rand(3, 5, 7)
    raw = zlib.decompress(_png_chunks(write_png(tmp_path / "x.png", image).read_bytes())[b"IDAT"])
    rows = torch.tensor(list(raw)).view(5, 1 + 7 * 3)
    assert rows[:, 0].eq(0).all()  # filter type 0
    pixels = rows[:, 1:].view(5, 7, 3).permute(2, 0, 1)
    assert torch.equal(pixels, image.mul(255).round().long())


def test_contact_sheet_rejects_more_columns_than_frames(tmp_path):
    with pytest.raises(MigaValueError, match="frames=20"):
        contact_sheet(VIDEO, tmp_path / "bad.png", frames=20)
