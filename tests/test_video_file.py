"""The chunked MP4 writer and the decode plan of MIGA Save Video (nodes/video_file.py), without ComfyUI.

``nodes/__init__.py`` imports ``comfy_api``, so the module is loaded under a stand-in package whose
``nodes`` folder is not initialised (its relative import of ``miga_core`` still resolves).
"""

from __future__ import annotations

import importlib
import pathlib
import sys

import av
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks.toy_long_rss import video_file_module  # noqa: E402


def _load():
    return video_file_module()  # nodes/video_file.py without ComfyUI (one loader, the RSS benchmark's)


vf = _load()
MigaValueError = importlib.import_module("miga_pack_bench.miga_core.errors").MigaValueError


def frames(n: int, h: int = 32, w: int = 48, offset: int = 0) -> torch.Tensor:
    """``[n, h, w, 3]``: a bright square moving one pixel per frame over a gradient (frames differ)."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = torch.stack([xs, ys, 0.5 * (xs + ys)], dim=-1).repeat(n, 1, 1, 1) * 0.6
    for i in range(n):
        x = (i + offset) % (w - 8)
        out[i, 4:12, x:x + 8] = 1.0
    return out


def decode(path: pathlib.Path) -> tuple[int, tuple[int, int], str, float, torch.Tensor]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, rate = stream.codec_context.name, float(stream.average_rate)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        pix = container.streams.video[0].codec_context.pix_fmt
    video = torch.from_numpy(__import__("numpy").stack(decoded)).float() / 255
    return len(decoded), tuple(video.shape[1:3]), f"{codec}/{pix}", rate, video


def test_chunks_written_one_by_one_decode_to_the_requested_frame_count_size_and_rate(tmp_path):
    path = tmp_path / "clip_00001_.mp4"
    chunks = [frames(1), frames(4, offset=1), frames(4, offset=5), frames(3, offset=9)]  # Wan2.1: 1 + 4 + 4 ... pixel frames
    with vf.VideoFileWriter(path, width=48, height=32, fps=16.0, crf=12) as writer:
        for chunk in chunks:
            writer.write(chunk)
            assert not path.exists()  # never the final name while incomplete (x264 may still buffer: no partial bytes yet)
    assert path.exists() and not vf.temporary_path(path).exists()
    count, size, codec, rate, video = decode(path)
    assert (count, size, codec, rate) == (12, (32, 48), "h264/yuv420p", 16.0)
    reference = torch.cat(chunks)
    assert (video - reference).abs().mean() < 0.02  # crf 12: the frames are the ones written, in order
    assert (video[1:] - reference[:-1]).abs().mean() > 2 * (video - reference).abs().mean()


def test_an_error_inside_the_writer_block_leaves_neither_the_final_nor_the_temporary_file(tmp_path):
    path = tmp_path / "cancelled.mp4"
    with pytest.raises(KeyboardInterrupt):
        with vf.VideoFileWriter(path, 48, 32, 16.0) as writer:
            writer.write(frames(4))
            raise KeyboardInterrupt  # what a cancel between chunks looks like to the writer
    assert list(tmp_path.iterdir()) == []


def test_abort_removes_the_partial_file_and_finish_without_frames_is_refused(tmp_path):
    writer = vf.VideoFileWriter(tmp_path / "a.mp4", 48, 32, 16.0)
    writer.write(frames(2))
    writer.abort()
    writer.abort()  # idempotent
    assert list(tmp_path.iterdir()) == []
    empty = vf.VideoFileWriter(tmp_path / "b.mp4", 48, 32, 16.0)
    with pytest.raises(MigaValueError, match="at least one frame"):
        empty.finish()
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_name_is_hidden_and_is_not_an_mp4():
    partial = vf.temporary_path(pathlib.Path("/out/video/x_00001_.mp4"))
    assert partial.parent == pathlib.Path("/out/video") and partial.name.startswith(".") and partial.suffix != ".mp4"


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 47}, "video width"), ({"height": 0}, "video height"), ({"fps": 0}, "fps"),
    ({"crf": 52}, "crf"), ({"crf": 2.5}, "crf"), ({"codec": "mjpeg"}, "codec"),
])
def test_bad_settings_are_refused_with_the_argument_named(tmp_path, kwargs, message):
    args = {"width": 48, "height": 32, "fps": 16.0, "crf": 19, "codec": "h264"} | kwargs
    with pytest.raises(MigaValueError, match=message):
        vf.VideoFileWriter(tmp_path / "x.mp4", **args)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_never_overwritten_and_a_chunk_of_another_size_is_refused(tmp_path):
    (tmp_path / "taken.mp4").write_bytes(b"keep")
    with pytest.raises(MigaValueError, match="does not exist yet"):
        vf.VideoFileWriter(tmp_path / "taken.mp4", 48, 32, 16.0)
    assert (tmp_path / "taken.mp4").read_bytes() == b"keep"
    with vf.VideoFileWriter(tmp_path / "y.mp4", 48, 32, 16.0) as writer:
        with pytest.raises(MigaValueError, match=r"\[N, 32, 48, 3\]"):
            writer.write(frames(2, h=16))
        writer.write(frames(2))
    assert decode(tmp_path / "y.mp4")[0] == 2


@pytest.mark.parametrize("num_latents, chunk", [(1, 4), (121, 4), (121, 1), (7, 7), (8, 3), (2501, 16)])
def test_latent_chunks_cover_every_latent_once_in_order(num_latents, chunk):
    plan = vf.latent_chunks(num_latents, chunk)
    assert plan[0][0] == 0 and plan[-1][1] == num_latents
    assert all(a[1] == b[0] for a, b in zip(plan, plan[1:]))
    assert all(0 < stop - start <= chunk for start, stop in plan)
    assert len(plan) == -(-num_latents // chunk)


@pytest.mark.parametrize("num_latents, chunk", [(0, 4), (5, 0), (5, True)])
def test_latent_chunks_refuse_empty_latents_and_bad_chunk_sizes(num_latents, chunk):
    with pytest.raises(MigaValueError):
        vf.latent_chunks(num_latents, chunk)


def test_eta_is_the_average_rate_times_what_is_left():
    assert vf.eta_seconds(10.0, 0, 100) is None
    assert vf.eta_seconds(10.0, 25, 100) == pytest.approx(30.0)
    assert vf.eta_seconds(10.0, 100, 100) == 0.0


def test_to_uint8_rounds_and_clamps():
    x = torch.tensor([-0.5, 0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 5, 1).expand(1, 1, 5, 3)
    assert vf.to_uint8(x)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


@pytest.mark.parametrize("prefix, ok", [("video/miga", True), ("miga_%year%", True), ("a/b/c", True), ("", False), ("  ", False),
                                        ("/etc/miga", False), ("../miga", False), ("video/../../x", False), ("video/", True),
                                        ("video/..", False), (None, False)])
def test_the_filename_prefix_must_stay_inside_the_output_folder(prefix, ok):
    result = vf.check_filename_prefix(prefix)
    assert (result is True) == ok, result
    if not ok:
        assert "filename_prefix" in result and "Fix" in result or "fix" in result.lower()
