"""Streamed runs (issue 11): ``run(..., sink=...)`` keeps the latents in spill files and hands the finished video to a
sink a chunk at a time; it equals the in-memory run bit for bit, in its windows, calls and reports too."""

from __future__ import annotations

import pytest
import torch

from miga_core import GuidanceOptions, InvalidConfigError, MigaTypeError, MigaValueError, SpilledRun, plan_run, preset, run
from miga_core.ladder import official_ddim_ladder
from miga_core.stream import Spill
from tests.helpers import ToyDenoiser
from tests.test_plan import RUNS, SHAPE
from tests.test_resume import _bar

VC2_OFFICIAL = preset("vc2-official")[0].with_(window_length=8, window_stride=4, zigzag_width=2, unified_steps=3, refine_steps=3)
CASES = {  # name: (config, sigmas, N, guidance, reflection, initial clip)
    **{name: (cfg, torch.linspace(1, 0, T + 1), N, m, refl, clip) for name, (cfg, T, N, m, refl, clip) in RUNS.items()},
    # the released VC2 loop's options (euler_ancestral, eps, Gauss-Seidel stage 1, VP re-noise before the refinement)
    "vc2 official": (VC2_OFFICIAL, official_ddim_ladder(16)[0], 21, GuidanceOptions(2, positions="official"), None, True),
}


def _setup(name, num_frames=None):
    cfg, sigmas, N, m, reflection, has_clip = CASES[name]
    N = num_frames or N
    guidance = m if isinstance(m, GuidanceOptions) else (GuidanceOptions(m) if m else None)
    plan = plan_run(cfg, len(sigmas) - 1, N, guidance=guidance, reflection=reflection, has_initial_clip=has_clip)
    clip = torch.randn(1, 2, cfg.window_length, 3, 3, generator=torch.Generator().manual_seed(5)) if has_clip else None
    return plan, sigmas, ({"initial_clip": clip} if has_clip else {"latent_shape": SHAPE})


@pytest.mark.parametrize("chunk", [3, 10])
@pytest.mark.parametrize("name", list(CASES))
def test_a_streamed_run_equals_the_in_memory_run_bit_for_bit(name, chunk, tmp_path):
    plan, sigmas, start = _setup(name)
    ref_infos, infos, got = [], [], []
    ref = run(ToyDenoiser(), sigmas, plan, callback=ref_infos.append, **start)
    result = run(ToyDenoiser(), sigmas, plan, callback=infos.append, sink=got.append, spill_dir=tmp_path, spill_chunk=chunk, **start)
    assert result.latents is None
    assert torch.equal(torch.cat(got, dim=2), ref.latents), name
    # the same windows in the same order, the same reports, calls and self-reflection counters
    assert _bar(infos) == _bar(ref_infos), name
    assert (result.reflection, result.num_windows, result.model_calls) == (ref.reflection, ref.num_windows, ref.model_calls)
    assert list(tmp_path.iterdir()) == []  # the spill subfolder is gone


@pytest.mark.parametrize("name", ["miga reflecting", "unified only", "official steady"])
def test_the_sink_gets_every_latent_once_in_order_in_chunks_of_spill_chunk(name):
    plan, sigmas, start = _setup(name)
    ref = run(ToyDenoiser(), sigmas, plan, **start)
    chunks = []
    run(ToyDenoiser(), sigmas, plan, sink=chunks.append, spill_chunk=4, **start)
    N = plan.num_frames
    assert [c.shape[2] for c in chunks] == [4] * (N // 4) + ([N % 4] if N % 4 else [])
    for k, c in enumerate(chunks):  # chunk k is latents 4k.. of the video, each latent exactly once
        assert torch.equal(c, ref.latents[:, :, 4 * k:4 * k + c.shape[2]]), k
    assert all(c.shape[:2] == ref.latents.shape[:2] and c.shape[3:] == ref.latents.shape[3:] for c in chunks)


@pytest.mark.parametrize("name", ["miga guided", "official steady"])
def test_spill_reads_stay_a_few_chunks_whatever_the_length(name, monkeypatch):
    """The largest spill read (what a part of a pass holds) is the same for 24 and 72 latents: memory does not grow with N."""
    reads = []
    original = SpilledRun.read

    def spy(self, start, stop):
        reads.append(stop - start)
        return original(self, start, stop)

    monkeypatch.setattr(SpilledRun, "read", spy)
    largest = []
    for N in (24, 72):
        plan, sigmas, start = _setup(name, N)
        reads.clear()
        run(ToyDenoiser(), sigmas, plan, sink=lambda x: None, spill_chunk=5, **start)
        largest.append(max(reads))
    assert largest[0] == largest[1] <= 5 + 2 * CASES[name][0].window_length


def test_a_failing_streamed_run_leaves_no_spill_files(tmp_path):
    plan, sigmas, start = _setup("miga")

    def stop(info):
        if info.stage == "unified":
            raise KeyboardInterrupt("cancel")

    with pytest.raises(KeyboardInterrupt):
        run(ToyDenoiser(), sigmas, plan, callback=stop, sink=lambda x: None, spill_dir=tmp_path, spill_chunk=3, **start)
    assert list(tmp_path.iterdir()) == []


def test_streaming_with_a_checkpoint_or_a_resume_is_refused_naming_both(tmp_path):
    plan, sigmas, start = _setup("miga")
    with pytest.raises(InvalidConfigError, match=r"checkpoint.*sink="):
        run(ToyDenoiser(), sigmas, plan, sink=lambda x: None, checkpoint=lambda point: None, **start)
    with pytest.raises(InvalidConfigError, match=r"resume.*sink="):
        run(ToyDenoiser(), sigmas, plan, sink=lambda x: None, resume=object())
    with pytest.raises(MigaTypeError, match="spill_dir"):
        run(ToyDenoiser(), sigmas, plan, spill_dir=tmp_path, **start)
    with pytest.raises(MigaTypeError, match="sink"):
        run(ToyDenoiser(), sigmas, plan, sink="video.mp4", **start)
    with pytest.raises(MigaValueError, match="spill_chunk"):
        run(ToyDenoiser(), sigmas, plan, sink=lambda x: None, spill_chunk=0, **start)
    with pytest.raises(MigaValueError, match="spill_dir"):
        run(ToyDenoiser(), sigmas, plan, sink=lambda x: None, spill_dir=tmp_path / "missing", **start)


def test_a_spilled_run_reads_back_what_was_appended_and_is_consumed_once(tmp_path):
    from miga_core import LatentRun

    g = torch.Generator().manual_seed(0)
    a = LatentRun.fresh(torch.randn(2, 3, 4, 2, 5, generator=g), [3] * 4, range(4))
    b = LatentRun(torch.randn(2, 3, 3, 2, 5, generator=g), (2, 2, 2), (4, 5, 6), torch.randn(2, 3, 3, 2, 5, generator=g),
                  (True,) * 3, torch.randn(2, 2, 3, 3, 2, 5, generator=g), (1, 2, 1))
    store = Spill(tmp_path, chunk_frames=2).store(a.x.to(torch.bfloat16))
    store.append(LatentRun(a.x.bfloat16(), a.level, a.index, a.denoised.bfloat16(), a.has_denoised))
    store.append(LatentRun(b.x.bfloat16(), b.level, b.index, b.denoised.bfloat16(), b.has_denoised, b.past.bfloat16(), b.depth))
    whole = LatentRun.cat([LatentRun(a.x.bfloat16(), a.level, a.index, a.denoised.bfloat16(), a.has_denoised),
                           LatentRun(b.x.bfloat16(), b.level, b.index, b.denoised.bfloat16(), b.has_denoised, b.past.bfloat16(), b.depth)])
    part = store.read(2, 6)
    for field in ("x", "denoised", "past"):
        assert torch.equal(getattr(part, field), getattr(whole.frames(slice(2, 6)), field)), field
    assert (part.level, part.index, part.has_denoised, part.depth) == (whole.level[2:6], whole.index[2:6], whole.has_denoised[2:6],
                                                                       whole.depth[2:6])
    got = []
    assert store.head(5).drain(got.append) == 5 and torch.equal(torch.cat(got, 2), whole.x[:, :, :5])
    assert [g.shape[2] for g in got] == [2, 2, 1]
    with pytest.raises(MigaValueError, match="consumed"):
        store.read(0, 1)
