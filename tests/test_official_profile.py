"""``wan21-official`` against the records of the authors' released Wan loop (issue 9; docs/official_equivalence.md).

Our run takes the recorded ladder, the recorded initial clip, the stand-in model (tests/official_standin.py) and the
recorded noise through a :class:`~miga_core.noise.NoiseSource` that maps our draws to the record's call sites; it must
equal the record at every checkpoint (queue after the build with its UniPC state, stage-1 outputs, stage-2 output,
final latents) to <= 1e-5 in float64 on the CPU, and plan and run every window of every pass as the trace shows.
No official code is needed: the records are committed tensors.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import pytest
import torch

from miga_core import initialize_queue, plan_run, preset, unified_stage, zigzag_stage
from miga_core.ladder import official_flow_ladder
from miga_core.noise import NoiseDraw
from miga_core.stages import refine_stage
from tests.official_standin import StandinDenoiser, keyed_noise
from tests.test_official_records import CONFIGS, load

TOL = 1e-5

# (our draw's use, the stage drawing it) -> the record's call site (docs/official_equivalence.md, site table)
SITE_OF = {("renoise", "init"): "build_renoise", ("fresh", "init"): "build_fresh", ("candidate", "init"): "candidate",
           ("fresh", "zigzag"): "stage1_fresh", ("refine", "refine"): "refine"}


class RecordedSites:
    """A NoiseSource that draws the record's keyed noise: site from (use, phase), absolute index, candidate ids."""

    def __init__(self, seed: int):
        self.seed = seed
        self.draws: list[tuple[str, int, tuple[int, ...]]] = []

    def __call__(self, draw: NoiseDraw, shape, dtype, device):
        site = SITE_OF[(draw.use, draw.phase)]
        B, C, H, W = shape
        frames = []
        for i in draw.indices:
            self.draws.append((site, i, draw.extra))
            frames.append(keyed_noise(self.seed, site, i, (C, H, W), extra=draw.extra))
        return torch.stack(frames, dim=1).unsqueeze(0).expand(B, -1, -1, -1, -1).to(device=device, dtype=dtype)


class Tracer:
    """Wraps the denoiser and keeps, per call, the sigmas it saw (to compare windows with the record's trace)."""

    def __init__(self, inner):
        self.inner, self.sigmas = inner, []

    def __call__(self, x, sigma, prompt):
        self.sigmas.extend(s.clone() for s in sigma)
        return self.inner(x, sigma, prompt)


def official_plan(s: dict):
    cfg, guidance, reflection = preset("wan21-official")
    N = s["stage1_groups"] * s["zigzag_width"] - cfg.window_length
    return plan_run(cfg, s["T"], N, guidance=guidance, reflection=reflection if s["reflection"] else None,
                    has_initial_clip=True)


@lru_cache(maxsize=None)
def ours(name: str):
    """Run ``wan21-official`` on a record's inputs, stage by stage; every checkpoint and the window log."""
    rec = load(name)
    s, lat = rec["settings"], rec["latents"]
    sigmas = lat["sigmas"]
    den = Tracer(StandinDenoiser(sigmas, lat["timesteps"], [s["prompt"]], s["negative_prompt"], s["cfg"]))
    plan = official_plan(s)
    noise = RecordedSites(s["noise_seed"])
    log = []
    stage_of = {"init": "init", "reflection": "candidate", "zigzag": "stage1", "unified": "stage2", "refine": "refine"}
    callback = lambda info: log.append((stage_of[info.stage], info.indices))  # noqa: E731
    clip = lat["initial_clip"].unsqueeze(0)
    state = initialize_queue(den, sigmas, plan, initial_clip=clip, noise=noise, callback=callback)
    out = {"queue_after_build": state.queue}
    state = zigzag_stage(den, state, callback=callback)
    out["stage1_out"] = state.outputs
    state = unified_stage(den, state, callback=callback, refine=False)
    out["stage2_out"] = state.outputs
    state = refine_stage(den, state, callback=callback)
    out["final"] = state.outputs
    return rec, plan, out, state, den, log, noise


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.double() - b.double()).abs().max())


@pytest.mark.parametrize("name", CONFIGS)
def test_wan21_official_equals_the_released_loop_at_every_checkpoint(name):
    rec, plan, out, state, *_ = ours(name)
    lat = rec["latents"]
    diffs = {k: diff(out[k].x[0], lat[k]) for k in ("queue_after_build", "stage1_out", "stage2_out", "final")}
    print(name, {k: f"{v:.2e}" for k, v in diffs.items()})
    for k in ("queue_after_build", "stage1_out", "stage2_out", "final"):  # in run order: the first failure says where
        assert diffs[k] <= TOL, (k, diffs)
    assert out["final"].x.shape[2] == plan.num_frames == rec["settings"]["lengths"]["final"]


@pytest.mark.parametrize("name", CONFIGS)
def test_the_built_queue_has_the_recorded_levels_and_unipc_state(name):
    rec, plan, out, *_ = ours(name)
    s, lat = rec["settings"], rec["latents"]
    q = out["queue_after_build"]
    assert [s["T"] - k for k in q.level] == s["queue_steps_after_build"]  # step index = T - level
    present1 = lat["state_x0_1_present"].bool()
    assert list(present1) == [d >= 1 for d in q.depth]  # a latent has a stored x0 after its first step
    assert diff(q.denoised[0][:, present1], lat["state_x0_1"][:, present1]) <= TOL
    present0 = lat["state_x0_0_present"].bool()
    assert list(present0) == [d >= 2 for d in q.depth]
    if bool(present0.any()):
        assert diff(q.past[0, 0][:, present0], lat["state_x0_0"][:, present0]) <= TOL
    last = lat["state_last_sample_present"].bool()
    assert diff(q.past[1, 0][:, last], lat["state_last_sample"][:, last]) <= TOL


@pytest.mark.parametrize("name", CONFIGS)
def test_reflection_counts_and_noise_draws_are_the_records(name):
    rec, plan, out, state, den, log, noise = ours(name)
    s = rec["settings"]
    r = state.reflection
    if s["reflection"]:
        assert (r.n_eval, r.n_corr) == (s["counters"]["fired"], s["counters"]["accepted"])
        recorded = [e["score"] for e in rec["trace"]["judge"] if e["kind"] == "check"]
        assert [v[0] for v in r.scores] == pytest.approx(recorded, abs=1e-6)  # our score is computed in float32 (D5a)
    else:
        assert r.n_all == 0
    recorded = [(d["site"], d["index"], tuple(d["extra"])) for d in rec["trace"]["noise_draws"]
                if d["site"] not in ("clip", "clip_spare")]
    assert sorted(noise.draws) == sorted(recorded)  # the same draws, no more and no fewer


def _windows_by_pass(trace_windows):
    out = defaultdict(list)
    for w in trace_windows:
        if w["phase"] == "initial_clip":
            continue
        if w["phase"] == "candidate":
            key = (w["phase"], w["pass_index"], w["candidate"], w["round"])
        else:
            key = (w["phase"], w["pass_index"])
        out[key].append(w)
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_every_window_of_every_pass_is_the_recorded_one(name):
    """Per model call, in call order: the phase and the sigma of every input frame (guidance first) are the trace's.

    The record also calls the model for candidate windows whose region lies in the fixed guide (their results are
    thrown away, A1.7); we leave those out, so they are dropped from the trace before comparing."""
    rec, plan, out, state, den, log, _ = ours(name)
    sig = rec["latents"]["sigmas"]
    trace = [w for w in rec["trace"]["windows"] if w["phase"] != "initial_clip"]
    guide = plan.num_guide or 0
    trace = [w for w in trace if not (w["phase"] == "candidate" and w["start"] + w["updated"] <= guide)]
    assert [p for p, _ in log] == [w["phase"] for w in trace]
    assert len(den.sigmas) == len(trace)
    for k, (w, seen) in enumerate(zip(trace, den.sigmas)):
        want = sig[torch.tensor(w["step_indices"])]
        assert torch.equal(seen.to(torch.float32), want), (k, w["phase"], w["pass_index"], w["start"])


@pytest.mark.parametrize("name", CONFIGS)
def test_the_plan_counts_are_the_records(name):
    rec, plan, out, state, den, log, _ = ours(name)
    by = _windows_by_pass(rec["trace"]["windows"])
    count = defaultdict(int)
    for (phase, *_), ws in by.items():
        count[phase] += len(ws)
    assert plan.calls == {"initial_clip": 0, "init": count["init"], "zigzag": count["stage1"], "unified": count["stage2"],
                          "refine": count["refine"]}
    assert state.num_windows == len(log) and sum(1 for p, _ in log if p != "candidate") == plan.total_calls
    assert len(plan.stage1_passes) == len({k for k in by if k[0] == "stage1"})


def test_the_official_ladder_is_the_recorded_one():
    for name in CONFIGS:
        lat = load(name)["latents"]
        T = len(lat["timesteps"])
        sigmas, timesteps = official_flow_ladder(T)
        assert torch.equal(sigmas, lat["sigmas"]) and torch.equal(timesteps, lat["timesteps"])


def test_the_window_rules_equal_the_written_spec_for_every_length_and_pass():
    """miga_core's partition and guidance rules against the plain functions of tests/test_official_records.py."""
    from miga_core.windows import official_guidance_positions, official_regions
    from tests.test_official_records import guidance_positions as spec_guidance
    from tests.test_official_records import regions_fixed, regions_rotating

    for L in range(21, 330):
        for n in (17, 21):
            assert official_regions(L, n, 10) == regions_fixed(L, n)
            for i in range(12):
                assert official_regions(L, n, 10, i) == regions_rotating(L, n, i)
    for b in range(0, 80):
        assert list(official_guidance_positions(b, 4, 7) or []) == spec_guidance(b, 4, 7, offset=7 // 2)


def test_official_calls_counts_the_windows_our_run_makes():
    """benchmarks/official_calls.py's row for ``wan21-official`` is our run's window count, candidates included."""
    from benchmarks.official_calls import rows_of

    _, _, _, state, _, log, _ = ours("a_drain_reflect")
    row = next(r for r in rows_of("a_drain_reflect") if r["side"] == "ours, wan21-official")
    assert row["windows_by_phase"]["candidate"] == sum(1 for p, _ in log if p == "candidate") > 0
    assert row["windows"] == state.num_windows
