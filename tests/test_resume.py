"""Checkpoint and resume (issue 11): a run saved between two passes and continued gives the uninterrupted video bit for
bit; its progress continues; a damaged or foreign checkpoint is refused naming the problem; killed processes resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from miga_core import (CheckpointCorruptError, CheckpointError, CheckpointMismatchError, Checkpointer, GuidanceOptions,
                       MigaTypeError, load_checkpoint, plan_run, read_checkpoint, run, save_checkpoint)
from miga_core.plan import STAGES
from tests.helpers import ToyDenoiser
from tests.test_plan import RUNS, SHAPE

ROOT = Path(__file__).resolve().parents[1]
FP = {"model": "toy-a", "positive": "sha-1"}


def _setup(name):
    cfg, T, N, m, reflection, has_clip = RUNS[name]
    sigmas = torch.linspace(1, 0, T + 1)
    guidance = m if isinstance(m, GuidanceOptions) else (GuidanceOptions(m) if m else None)
    plan = plan_run(cfg, T, N, guidance=guidance, reflection=reflection, has_initial_clip=has_clip)
    clip = torch.randn(1, 2, cfg.window_length, 3, 3, generator=torch.Generator().manual_seed(5)) if has_clip else None
    return plan, sigmas, ({"initial_clip": clip} if has_clip else {"latent_shape": SHAPE})


def _bar(infos):
    return [(i.stage, i.window, i.total_windows, i.search_windows, i.model_calls, i.frames_done, i.indices, i.reflection_checks,
             i.reflection_corrections) for i in infos]


def _uninterrupted(name):
    plan, sigmas, start = _setup(name)
    points, infos = [], []
    result = run(ToyDenoiser(), sigmas, plan, callback=infos.append, checkpoint=points.append, **start)
    return plan, sigmas, result, points, infos


def _chosen(points):
    """About eight points spread over the run, and the first and last pass of every stage."""
    states = [p() for p in points]
    stages = [s.state.at.stage for s in states]
    keep = set(range(0, len(states), max(1, len(states) // 8)))
    for st in set(stages):
        keep |= {stages.index(st), len(stages) - 1 - stages[::-1].index(st)}
    return [states[i] for i in sorted(keep)]


@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_resumed_from_a_saved_checkpoint_at_any_pass_equals_the_uninterrupted_run(name, tmp_path):
    plan, sigmas, ref, points, infos = _uninterrupted(name)
    # every stage with passes offers its state after each of them
    assert {p().state.at.stage for p in points} == {s for s in STAGES if plan.calls[s] and s != "initial_clip"} | (
        {"initial_clip"} if plan.calls["initial_clip"] else set())
    if name in ("miga reflecting", "official steady"):
        assert ref.reflection.n_eval > 0  # a search happened before some of the points
    path = tmp_path / "run.safetensors"
    for point in _chosen(points):
        save_checkpoint(path, point, FP)
        loaded = load_checkpoint(path, plan=plan, sigmas=sigmas, fingerprint=FP)
        again = []
        result = run(ToyDenoiser(), sigmas, plan, resume=loaded, callback=again.append)
        where = (name, point.state.at)
        assert torch.equal(result.latents, ref.latents), where
        assert (result.reflection, result.num_windows, result.model_calls) == (ref.reflection, ref.num_windows, ref.model_calls), where
        # the bar continues where it stopped: the resumed run reports exactly the windows the uninterrupted run had left
        done = point.progress["window"] + point.progress["search_windows"]  # windows reported before the point
        assert 0 < done and _bar(again) == _bar(infos[done:]), where
        assert {i.total_windows for i in again} <= {plan.total_calls}  # the total never changes


def test_a_resumed_run_checkpoints_too_and_its_checkpoints_resume_to_the_same_video(tmp_path):
    plan, sigmas, ref, points, _ = _uninterrupted("official steady")
    first = points[len(points) // 4]()
    later = []
    run(ToyDenoiser(), sigmas, plan, resume=first, checkpoint=later.append)
    assert len(later) == len(points) - len(points) // 4 - 1
    second = later[len(later) // 2]()
    assert torch.equal(run(ToyDenoiser(), sigmas, plan, resume=second).latents, ref.latents)


def test_resume_from_the_same_point_twice_gives_the_same_video_and_leaves_the_point_unchanged():
    plan, sigmas, ref, points, _ = _uninterrupted("miga reflecting")
    point = points[len(points) // 2]()
    x = point.state.queue.x.clone()
    a = run(ToyDenoiser(), sigmas, plan, resume=point).latents
    b = run(ToyDenoiser(), sigmas, plan, resume=point).latents
    assert torch.equal(a, ref.latents) and torch.equal(b, ref.latents) and torch.equal(point.state.queue.x, x)


# --- the Checkpointer: when it writes, on cancel, on success ------------------------------------------------------------------


class Cancel(Exception):
    pass


def test_the_checkpointer_writes_on_its_interval_saves_on_cancel_and_removes_the_file_when_the_run_finishes(tmp_path):
    plan, sigmas, start = _setup("miga")
    ref = run(ToyDenoiser(), sigmas, plan, **start)
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731  (a pass "takes" one second)

    def cancel_at(window):
        def callback(info):
            now[0] += 1.0
            if info.window == window:
                raise Cancel
        return callback

    path = tmp_path / "ck" / "run.safetensors"
    with pytest.raises(Cancel) as caught:
        with Checkpointer(path, FP, interval_s=5.0, clock=clock) as ck:
            run(ToyDenoiser(), sigmas, plan, callback=cancel_at(60), checkpoint=ck, **start)
    # every 5 "seconds" of windows plus the one on cancel (the last finished pass, not the cancelled one)
    assert ck.saves >= 3 and path.is_file() and str(path) in "".join(caught.value.__notes__)
    point = load_checkpoint(path, plan=plan, sigmas=sigmas, fingerprint=FP)
    assert point.progress["window"] < 60 and point.state.at is not None
    with Checkpointer(path, FP, interval_s=None) as ck:
        result = run(ToyDenoiser(), sigmas, plan, checkpoint=ck, resume=point)
    assert torch.equal(result.latents, ref.latents)
    assert ck.saves == 0 and not path.exists() and list(path.parent.iterdir()) == []  # a finished run leaves nothing


def test_a_cancel_before_the_first_pass_finished_writes_nothing_and_keeps_an_older_checkpoint(tmp_path):
    plan, sigmas, start = _setup("miga")
    path = tmp_path / "run.safetensors"
    path.write_bytes(b"older checkpoint")

    def cancel(info):
        raise Cancel

    with pytest.raises(Cancel):
        with Checkpointer(path, FP, interval_s=0) as ck:
            run(ToyDenoiser(), sigmas, plan, callback=cancel, checkpoint=ck, **start)
    assert ck.saves == 0 and path.read_bytes() == b"older checkpoint"


def test_a_write_that_fails_before_the_rename_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    plan, sigmas, _, points, _ = _uninterrupted("miga")
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, points[3](), FP)
    before = path.read_bytes()

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, points[10](), FP)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert load_checkpoint(path, plan=plan, sigmas=sigmas, fingerprint=FP).progress == points[3]().progress


# --- refusals -------------------------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    plan, sigmas, ref, points, _ = _uninterrupted("miga reflecting")
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, points[len(points) // 2](), FP)
    return plan, sigmas, path


def test_a_truncated_checkpoint_is_refused_naming_the_file_and_the_problem(saved):
    plan, sigmas, path = saved
    data = path.read_bytes()
    for cut in (len(data) - 7, len(data) // 2, 5):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointCorruptError) as err:
            load_checkpoint(path, plan=plan, sigmas=sigmas, fingerprint=FP)
        msg = str(err.value)
        assert str(path) in msg and "truncated or not a safetensors file" in msg and "Fix: resume from an intact checkpoint" in msg


def test_a_checkpoint_with_damaged_latent_bytes_is_refused_by_its_checksum(saved):
    plan, sigmas, path = saved
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last tensor's data: safetensors itself cannot tell
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptError, match=r"differs from its record .*SHA-256: the bytes are damaged"):
        read_checkpoint(path)


def test_a_missing_file_and_a_safetensors_file_that_is_no_checkpoint_are_refused(tmp_path):
    from safetensors.torch import save_file

    plan, sigmas, _ = _setup("miga")
    with pytest.raises(CheckpointCorruptError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.safetensors", plan=plan)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointCorruptError, match="has no 'miga_checkpoint' record"):
        load_checkpoint(tmp_path / "model.safetensors", plan=plan)


@pytest.mark.parametrize("change, named", [
    ({"seed": 1}, "plan.config.seed: checkpoint 0, this run 1"),
    ({"unified_steps": 4}, "plan.config.unified_steps: checkpoint 3, this run 4"),
    ({"fingerprint": {"model": "toy-b", "positive": "sha-1"}}, "fingerprint.model: checkpoint 'toy-a', this run 'toy-b'"),
    ({"fingerprint": {"model": "toy-a", "positive": "sha-2"}}, "fingerprint.positive: checkpoint 'sha-1', this run 'sha-2'"),
    ({"sigmas": torch.linspace(1, 0, 21) ** 2}, "sigmas (the ladder"),
    ({"num_frames": 30}, "plan.num_frames: checkpoint 24, this run 30"),
])
def test_a_checkpoint_of_another_run_is_refused_naming_what_differs_and_is_kept(saved, change, named):
    plan, sigmas, path = saved
    before = path.read_bytes()
    fp = change.get("fingerprint", FP)
    sigmas = change.get("sigmas", sigmas)
    cfg_changes = {k: v for k, v in change.items() if k in ("seed", "unified_steps")}
    plan = plan_run(plan.config.with_(**cfg_changes), plan.num_steps, change.get("num_frames", plan.num_frames),
                    guidance=plan.guidance, reflection=plan.reflection)
    with pytest.raises(CheckpointMismatchError) as err:
        load_checkpoint(path, plan=plan, sigmas=sigmas, fingerprint=fp)
    msg = str(err.value)
    assert named in msg and str(path) in msg and "was written by another run" in msg and "Fix: resume with the model" in msg
    assert path.read_bytes() == before  # never silently restarted over


def test_run_refuses_a_point_of_another_plan_and_a_resume_with_start_latents(saved):
    plan, sigmas, path = saved
    point = load_checkpoint(path, plan=plan, sigmas=sigmas)
    other = plan_run(plan.config.with_(seed=9), plan.num_steps, plan.num_frames, reflection=plan.reflection)
    with pytest.raises(CheckpointMismatchError, match="plan.config.seed: checkpoint 0, this run 9"):
        run(ToyDenoiser(), sigmas, other, resume=point)
    with pytest.raises(MigaTypeError, match="resume= and \\['latent_shape'\\]"):
        run(ToyDenoiser(), sigmas, plan, resume=point, latent_shape=SHAPE)


def test_a_custom_noise_source_cannot_be_checkpointed():
    plan, sigmas, start = _setup("miga")
    points = []
    run(ToyDenoiser(), sigmas, plan, checkpoint=points.append, noise=lambda d, s, dt, dev: torch.zeros(s[0], s[1], len(d.indices), *s[2:]),
        **start)
    with pytest.raises(CheckpointError, match="noise="):
        save_checkpoint("/nonexistent/never.safetensors", points[0]())


# --- SIGKILL at three points, resume in a fresh process ----------------------------------------------------------------------


def _worker(tmp_path, *args, stall=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.resume_worker", str(tmp_path / "run.safetensors"), str(tmp_path / "out.st"),
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if stall:
        line = proc.stdout.readline()
        assert line.strip() == "STALLED", (line, proc.stderr.read() if proc.poll() is not None else "")
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_a_run_killed_with_sigkill_at_three_points_resumes_in_a_fresh_process_to_the_same_latents(tmp_path):
    from safetensors.torch import load_file

    from tests import resume_worker as w

    plan = w.make_plan()
    ref = run(ToyDenoiser(), w.ladder(), plan, latent_shape=w.SHAPE)
    c = plan.calls
    kills = {  # mid-pass in the queue build, mid-pass in stage 2, and inside a checkpoint write before its rename
        "init": ["--stall-window", str(c["init"] // 2)],
        "unified": ["--stall-window", str(c["init"] + c["zigzag"] + c["unified"] // 2)],
        "write": ["--stall-save", str(len(plan.stage1_passes) + plan.init_passes // 2)],
    }
    for where, args in kills.items():
        case = tmp_path / where
        case.mkdir()
        code, _, _ = _worker(case, *args)
        assert code == -signal.SIGKILL, where
        ck = case / "run.safetensors"
        assert ck.is_file() and not (case / "out.st").exists(), where
        if where == "write":  # the killed write left its temporary file; the checkpoint before it is whole
            assert len(list(case.glob(".run.safetensors.*.tmp"))) == 1
        code, out, err = _worker(case, "--resume", stall=False)
        assert code == 0, (where, err[-2000:])
        assert out.split()[1:] == [str(ref.num_windows), str(ref.model_calls)], where
        assert torch.equal(load_file(str(case / "out.st"))["latents"], ref.latents), where
        assert list(case.iterdir()) == [case / "out.st"], where  # the finished run removed its checkpoint and the stale temp file
