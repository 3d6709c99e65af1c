"""Windows of a pass spread over several devices (issue 15): bit-identical to one device (miga_core.executors).

CPU "devices": N ToyDenoiser replicas on threads (Replicas), and 2 or 3 gloo processes (Distributed). Each run is
compared with torch.equal to the Sequential run of the same plan: final latents, every callback's window number,
indices, levels and x0 predictions (so the callbacks come in window order and their count is the plan's).
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import replace

import pytest
import torch
import torch.multiprocessing as mp

from miga_core import MigaConfig, ReflectionOptions, plan_run, preset, run
from miga_core.errors import InvalidConfigError, MigaError
from miga_core.executors import Distributed, Replicas, Sequential, assign
from miga_core.ladder import official_flow_ladder
from miga_core.passes import _batches, _waves
from miga_core.windows import plan_windows
from tests.helpers import ToyDenoiser

SHAPE = (1, 2, 4, 4)


def _official(reads: str):
    cfg, guidance, reflection = preset("wan21-official")
    cfg = replace(cfg, build_reads=reads)
    reflection = replace(reflection, threshold=0.0, judge_from_tail=2)  # small enough to judge during the short build
    return cfg, dict(guidance=guidance, reflection=reflection, has_initial_clip=True), official_flow_ladder(20)[0], 49


def case(name: str):
    """(plan, sigmas, start kwargs) of a named scenario."""
    T = 20
    linear = torch.linspace(1, 0, T + 1)
    if name == "miga_reflection":  # searches at every drop (threshold 0): candidates run through the executor too
        cfg = MigaConfig(window_length=8, zigzag_width=2, unified_steps=3, seed=5)
        plan = plan_run(cfg, T, 24, reflection=ReflectionOptions(threshold=0.0, num_candidates=2))
    elif name == "miga_batch2":  # two windows per model call; outputs of a call split back per window
        plan = plan_run(MigaConfig(window_length=8, zigzag_width=2, unified_steps=3, window_batch=2, seed=6), T, 24)
    elif name == "fifo":
        plan = plan_run(MigaConfig(window_length=4, window_stride=4, zigzag_width=1, unified_steps=0, mode="fifo",
                                   sampler="euler_ancestral", eta=1.0, parameterization="eps", seed=7), T, 16)
    elif name == "unified_only":
        plan = plan_run(MigaConfig(window_length=8, zigzag_width=2, unified_steps=T, seed=8), T, 20)
    elif name in ("official_jacobi", "official_gauss_seidel"):
        cfg, kw, linear, N = _official(name.split("_", 1)[1])
        plan = plan_run(cfg, T, N, **kw)
        clip = torch.randn(1, 2, cfg.window_length, 4, 4, generator=torch.Generator().manual_seed(3))
        return plan, linear, {"initial_clip": clip}
    else:
        raise KeyError(name)
    return plan, linear, {"latent_shape": SHAPE}


CASES = ["miga_reflection", "miga_batch2", "fifo", "unified_only", "official_jacobi", "official_gauss_seidel"]


def _go(denoiser, name):
    plan, sigmas, start = case(name)
    infos = []
    result = run(denoiser, sigmas, plan, callback=infos.append, **start)
    return plan, result, infos


def _same(a, b):
    (plan, ra, ia), (_, rb, ib) = a, b
    assert torch.equal(ra.latents, rb.latents)
    assert (ra.num_windows, ra.model_calls, ra.reflection) == (rb.num_windows, rb.model_calls, rb.reflection)
    assert len(ia) == len(ib)
    for x, y in zip(ia, ib):  # window order: same windows, same predictions, same counters, one by one
        assert (x.stage, x.window, x.total_windows, x.indices, x.levels, x.model_calls, x.search_windows) == \
               (y.stage, y.window, y.total_windows, y.indices, y.levels, y.model_calls, y.search_windows)
        assert torch.equal(x.denoised, y.denoised)
    assert [i.window for i in ia if i.stage != "reflection"] == list(range(1, plan.total_calls + 1))


_REFERENCE: dict[str, tuple] = {}


def reference(name):
    if name not in _REFERENCE:
        _REFERENCE[name] = _go(ToyDenoiser(), name)
    return _REFERENCE[name]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_replicas_are_bit_identical_to_one_device(name, n):
    replicas = [ToyDenoiser() for _ in range(n)]
    ex = Replicas(replicas, ["cpu"] * n)
    got = _go(ex, name)
    _same(got, reference(name))
    if n > 1:
        assert all(r.calls for r in replicas)  # every replica worked
    if name == "miga_reflection":
        assert got[2][-1].search_windows > 0 and got[1].reflection.n_corr > 0  # the candidate search really ran
    if name != "miga_batch2":  # one window per call: per wave, window counts differ by at most 1
        assert all(max(w) - min(w) <= 1 for w in ex.waves)
    if name.endswith("jacobi") or name in ("fifo", "unified_only"):  # Jacobi: a pass is one wave, over every device
        assert any(min(w) >= 1 for w in ex.waves)


def test_sequential_is_the_plain_denoiser():
    _same(_go(Sequential(ToyDenoiser()), "miga_reflection"), reference("miga_reflection"))


@pytest.mark.parametrize("name", CASES)
def test_pipelined_calls_queue_the_next_call_before_handing_back_the_output_and_change_no_bit(name):
    """Pipelined one call ahead (the CUDA default when the latents live on the host): the same video, callbacks and
    counters as one by one, while each call of a wave starts before the previous window's callback."""
    events = []

    class Logged(ToyDenoiser):
        def __call__(self, x, sigma, prompt):
            events.append("call")
            return super().__call__(x, sigma, prompt)

    plan, sigmas, start = case(name)
    infos = []

    def callback(info):
        events.append("window")
        infos.append(info)

    result = run(Sequential(Logged(), pipelined=True), sigmas, plan, callback=callback, **start)
    _same((plan, result, infos), reference(name))
    seq = "".join("c" if e == "call" else "w" for e in events)
    assert "ccw" in seq  # a call was queued while the previous output was still to be stepped
    plain = ToyDenoiser()
    run(Sequential(plain, pipelined=False), sigmas, plan, **start)
    assert seq.count("c") == len(plain.calls)  # no call more or less


def test_pipelined_calls_stop_at_a_nan_and_at_a_cancel_where_one_by_one_does():
    plan, sigmas, start = case("miga_batch2")

    class NaNAt(ToyDenoiser):
        def __call__(self, x, sigma, prompt):
            out = super().__call__(x, sigma, prompt)
            return out * float("nan") if len(self.calls) == 7 else out

    def stopped(pipelined, **kw):
        infos, denoiser = [], NaNAt()

        def callback(info):
            infos.append(info)
            if info.window == kw.get("cancel_at"):
                raise KeyboardInterrupt("cancelled")

        with pytest.raises((MigaError, KeyboardInterrupt)) as err:
            run(Sequential(denoiser, pipelined=pipelined), sigmas, plan, callback=callback, **start)
        return str(err.value), [(i.stage, i.window, i.indices) for i in infos], len(denoiser.calls)

    for kw in ({}, {"cancel_at": 4}):
        message, windows, calls = stopped(True, **kw)
        plain_message, plain_windows, plain_calls = stopped(False, **kw)
        assert (message, windows) == (plain_message, plain_windows)  # the same error after the same windows
        assert plain_calls <= calls <= plain_calls + 1  # at most the call in flight more
    assert "NaN/Inf" in stopped(True)[0]


def test_miga_pipeline_turns_it_on_and_off_and_a_bad_value_is_refused(monkeypatch):
    calls = []

    class Logged(ToyDenoiser):
        def __call__(self, x, sigma, prompt):
            calls.append("c")
            return super().__call__(x, sigma, prompt)

    plan, sigmas, start = case("fifo")

    def order(value):
        monkeypatch.setenv("MIGA_PIPELINE", value)
        calls.clear()
        run(Sequential(Logged()), sigmas, plan, callback=lambda info: calls.append("w"), **start)
        return "".join(calls)

    assert "ccw" in order("1") and "ccw" not in order("0") and "ccw" not in order("")  # the CPU: none unless asked
    with pytest.raises(MigaError, match="MIGA_PIPELINE=.yes.*allowed is 0"):
        order("yes")


def test_a_denoiser_that_reads_prompt_weights_on_the_host_gets_them_there():
    """``prompt_on_host``: the executors leave the prompt weights where the run made them (the host), so reading them
    never waits for the device; other denoisers get them moved to their device."""
    from miga_core.executors import _prompt_for

    moved = []

    def move(p):
        moved.append(p)
        return p * 1

    class OnHost(ToyDenoiser):
        prompt_on_host = True

    prompt = torch.ones(2, 3)
    assert _prompt_for(OnHost(), prompt, move) is prompt and not moved
    assert _prompt_for(ToyDenoiser(), prompt, move) is not prompt and len(moved) == 1
    _same(_go(Sequential(OnHost(), pipelined=True), "miga_batch2"), reference("miga_batch2"))  # and the run is unchanged


def test_assignment_is_balanced_round_robin():
    for calls in range(12):
        for n in (1, 2, 3, 5):
            owners = assign(calls, n)
            counts = [owners.count(k) for k in range(n)]
            assert max(counts) - min(counts) <= 1 and sum(counts) == calls
            assert owners == sorted(owners, key=lambda _: 0)  # order kept: call j is position j
            assert all(o == j % n for j, o in enumerate(owners))


def test_jacobi_pass_is_one_wave_and_gauss_seidel_splits_where_a_window_reads_the_wave():
    ws = plan_windows(0, 40, 8, 4, zigzag_width=2, num_guidance=0)
    assert len(_waves(_batches(ws, 1), False)) == 1
    for wave in _waves(_batches(ws, 1, True), True):
        regions = [w.region for b in wave for w in b]
        for b in wave:  # no window reads a region written in its own wave
            for w in b:
                assert not any(a <= p < e for p in w.positions for a, e in regions if (a, e) != w.region)


def test_a_replica_that_raises_propagates_and_leaves_no_half_updated_state():
    class Boom(ToyDenoiser):
        def __init__(self, after):
            super().__init__()
            self.after = after

        def __call__(self, x, sigma, prompt):
            if len(self.calls) >= self.after:
                raise RuntimeError("replica 1 lost its device")
            return super().__call__(x, sigma, prompt)

    plan, sigmas, _ = case("official_jacobi")
    clip = torch.randn(1, 2, 21, 4, 4, generator=torch.Generator().manual_seed(3))
    before = clip.clone()
    threads = threading.active_count()
    infos = []
    with pytest.raises(RuntimeError, match="lost its device"):
        run(Replicas([ToyDenoiser(), Boom(3), ToyDenoiser()], ["cpu"] * 3), sigmas, plan, initial_clip=clip, callback=infos.append)
    assert torch.equal(clip, before)  # the caller's tensors are untouched
    assert threading.active_count() == threads  # no replica thread keeps running after the error
    assert [i.window for i in infos] == list(range(1, len(infos) + 1))  # callbacks stopped in order, before the failing window


def test_a_cancel_from_the_callback_stops_every_replica():
    plan, sigmas, start = case("miga_reflection")
    threads = threading.active_count()

    def cancel(info):
        if info.window == 5:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        run(Replicas([ToyDenoiser(), ToyDenoiser()], ["cpu", "cpu"]), sigmas, plan, callback=cancel, **start)
    assert threading.active_count() == threads


def test_bad_replicas_and_compute_device_are_refused():
    with pytest.raises(MigaError, match="len\\(devices\\)"):
        Replicas([ToyDenoiser()], ["cpu", "cpu"])
    with pytest.raises(MigaError, match="devices"):
        Replicas([ToyDenoiser()], ["gpu7"])
    with pytest.raises(MigaError, match="torch.distributed"):
        Distributed(ToyDenoiser(), "cpu")
    plan, sigmas, start = case("miga_batch2")
    plan = plan_run(replace(plan.config, compute_device="cpu"), 20, 24)
    with pytest.raises(InvalidConfigError, match="compute_device"):
        run(Replicas([ToyDenoiser(), ToyDenoiser()], ["cpu", "cpu"]), sigmas, plan, **start)


# --- torch.distributed: 2 and 3 gloo processes ----------------------------------------------------------------

DIST_CASES = ["miga_reflection", "official_gauss_seidel"]


def _rank(rank: int, world: int, init: str, out_dir: str, fail_rank: int) -> None:
    import datetime

    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        den = ToyDenoiser()
        if rank == fail_rank:
            def den(x, sigma, prompt):  # noqa: F811 - this rank's replica breaks at its first call
                raise RuntimeError(f"rank {rank} broke")
        ex = Distributed(den, "cpu")
        for name in DIST_CASES:
            try:
                _, result, infos = _go(ex, name)
            except MigaError as e:
                torch.save({"error": type(e).__name__}, os.path.join(out_dir, f"{name}_{rank}.pt"))
                continue
            except RuntimeError as e:
                torch.save({"error": str(e)}, os.path.join(out_dir, f"{name}_{rank}.pt"))
                continue
            torch.save({"latents": result.latents, "windows": [(i.stage, i.window, i.indices) for i in infos],
                        "denoised": [i.denoised for i in infos], "waves": ex.waves}, os.path.join(out_dir, f"{name}_{rank}.pt"))
            ex.waves = []
    finally:
        dist.destroy_process_group()


def _spawn(world: int, fail_rank: int = -1) -> str:
    out = tempfile.mkdtemp(prefix="miga_dist_")
    init = "file://" + os.path.join(out, "rendezvous")
    mp.spawn(_rank, args=(world, init, out, fail_rank), nprocs=world, join=True)
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_distributed_ranks_are_bit_identical_to_one_device(world):
    out = _spawn(world)
    for name in DIST_CASES:
        _, ref, infos = reference(name)
        for rank in range(world):
            got = torch.load(os.path.join(out, f"{name}_{rank}.pt"))
            assert torch.equal(got["latents"], ref.latents), (name, rank)  # every rank ends with the same latents
            assert got["windows"] == [(i.stage, i.window, i.indices) for i in infos]
            assert all(torch.equal(a, b.denoised) for a, b in zip(got["denoised"], infos))
            assert all(max(w) - min(w) <= 1 for w in got["waves"])
            assert any(len(w) == world and min(w) >= 1 for w in got["waves"])  # every rank ran windows


def test_a_failing_rank_stops_every_rank_with_an_error():
    out = _spawn(2, fail_rank=1)
    for name in DIST_CASES:
        assert torch.load(os.path.join(out, f"{name}_1.pt")) == {"error": "rank 1 broke"}
        assert torch.load(os.path.join(out, f"{name}_0.pt")) == {"error": "ReplicaFailedError"}
