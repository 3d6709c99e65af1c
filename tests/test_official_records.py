"""The records of the authors' released Wan MIGA loop (tests/fixtures/official_wan/) against plain rules.

How the records were made, and what each file holds: docs/official_equivalence.md. These tests need
no official code: they check the records' internal consistency, and state as plain functions the rules
of REFERENCE.md (A1.2-A1.11) that the trace confirmed, so the coming ``wan21-official`` profile has a
written spec to be held against (window plan per pass, guidance positions, levels, reflection
bookkeeping, the refinement re-noise, the trim) before its final latents are compared.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from miga_core import consistency_score
from tests.official_standin import (SITES, StandinDenoiser, cfg_velocity, keyed_noise, noise_key_name, standin_text,
                                    standin_velocity)

ROOT = Path(__file__).parent / "fixtures" / "official_wan"
CONFIGS = ["a_drain_reflect", "b_steady", "c_T20"]
STRIDE = 10  # the official hard-coded slide (A1.5)
F0 = 21  # latents per window (A1.1)


def load(name: str) -> dict:
    d = ROOT / name
    rec = {"settings": json.loads((d / "settings.json").read_text()),
           "latents": load_file(str(d / "latents.safetensors")),
           "noise": load_file(str(d / "noise.safetensors")),
           "trace": json.loads(gzip.decompress((d / "trace.json.gz").read_bytes()))}
    rec["steps"] = load_file(str(d / "steps.safetensors")) if (d / "steps.safetensors").exists() else {}
    return rec


@pytest.fixture(scope="module", params=CONFIGS)
def rec(request):
    return load(request.param)


def by_pass(windows, phase):
    out = defaultdict(list)
    for w in windows:
        if w["phase"] == phase:
            out[w["pass_index"]].append(w)
    return [out[k] for k in sorted(out)]


# ---------------------------------------------------------------- the rules, as plain functions

def official_ladder(T: int, shift: float = 5.0):
    """A1.2: ``linspace(float32(0.999), 0, T+1)[:-1]`` shifted, int timesteps ``trunc(1000 sigma)``, trailing 0."""
    base = np.linspace(float(np.float32(0.999)), 0.0, T + 1)[:-1]
    s = shift * base / (1 + (shift - 1) * base)
    return torch.from_numpy(np.concatenate([s, [0.0]]).astype(np.float32)), torch.from_numpy((s * 1000).astype(np.int64))


def regions_fixed(L: int, n: int, stride: int = STRIDE):
    """A1.5 queue-build / candidate partition: ``[0, rem)``, then ``stride`` blocks, then the last local part ``[L-n, L)``."""
    q, rem = divmod(L - n, stride)
    out = [(0, rem)] if rem > 0 else []
    out += [(rem + j * stride, rem + (j + 1) * stride) for j in range(q)]
    return out + [(L - n, L)]


def regions_rotating(L: int, n: int, pass_index: int, stride: int = STRIDE):
    """A1.5 stage-1 / stage-2 / re-denoise partition with the offset ``pass mod stride`` at the head."""
    r1 = pass_index % stride
    if L - r1 < n:
        r1 = 0
    q, rem = divmod(L - r1 - n, stride)
    out = [(0, r1)] if r1 > 0 else []
    out += [(r1 + j * stride, r1 + (j + 1) * stride) for j in range(q)]
    if rem > 0:
        out.append((L - n - rem, L - n))
    return out + [(L - n, L)]


def guidance_positions(b: int, m: int, zigzag: int, offset: int = 3):
    """A1.6: none for ``b < m``; ``b - j*floor(b/m)`` (j = m..1) for ``b < m*L_zig``; else ``b - (offset + j*L_zig)`` (j = m-1..0)."""
    if b < m:
        return []
    if b < m * zigzag:
        return [b - j * (b // m) for j in range(m, 0, -1)]
    return [b - (offset + j * zigzag) for j in range(m - 1, -1, -1)]


def local_part(b: int, e: int, L: int, n: int, m: int, guided: bool):
    """The local part a window feeds: ``[b, b+n)``, or ``[b, b+n+m)`` when it has no guidance because ``b < m`` (clipped to L)."""
    hi = b + n + (m if guided and b < m else 0)
    return [b, min(hi, L)]


def init_passes(T: int, stage1_groups: int, zigzag: int) -> int:
    """A1.4: ``min(G, T - n_zig - 12)`` queue-build passes for G stage-1 groups (n_zig = f0 / L_zig)."""
    return min(stage1_groups, T - F0 // zigzag - 12)


# ---------------------------------------------------------------- ladder

def test_recorded_ladder_is_the_shifted_linspace_with_truncated_timesteps(rec):
    s = rec["settings"]
    sigmas, timesteps = official_ladder(s["T"], s["shift"])
    assert torch.equal(rec["latents"]["sigmas"], sigmas)
    assert torch.equal(rec["latents"]["timesteps"], timesteps)
    assert rec["latents"]["sigmas"][0] < 1.0  # top of the ladder 0.9998, not 1 (A1.2)


# ---------------------------------------------------------------- window plan per pass

@pytest.mark.parametrize("phase", ["init", "stage1", "stage2", "refine"])
def test_every_pass_follows_the_official_partition_and_tiles_the_queue(rec, phase):
    s = rec["settings"]
    m, Lz = s["num_guidance"], s["zigzag_width"]
    guided = phase in ("init", "stage1")
    n = F0 - m if guided else F0
    passes = by_pass(rec["trace"]["windows"], phase)
    assert passes
    for ws in passes:
        L, i = ws[0]["queue_len"], ws[0]["pass_index"]
        expected = regions_fixed(L, n) if phase == "init" else regions_rotating(L, n, i)
        got = [(w["start"], w["start"] + w["updated"]) for w in ws]
        assert got == expected, (phase, i, L)
        covered = sorted(p for a, b in got for p in range(a, b))
        assert covered == list(range(L))  # each latent exactly once per pass
        for w in ws:
            want_g = guidance_positions(w["start"], m, Lz) if guided else []
            assert w["guidance"] == want_g, (phase, i, w["start"])
            assert w["local"] == local_part(w["start"], None, L, n, m, guided)
            if L >= F0:
                assert w["F"] == F0  # every window feeds exactly f0 latents (A1.5)


def test_candidate_windows_use_the_build_partition_with_f0_windows_and_no_guidance(rec):
    s = rec["settings"]
    cands = [w for w in rec["trace"]["windows"] if w["phase"] == "candidate"]
    if not s["reflection"] or s["counters"]["fired"] == 0:
        assert not cands
        return
    groups = defaultdict(list)
    for w in cands:
        groups[(w["pass_index"], w["candidate"], w["round"])].append(w)
    for (p, c, r), ws in groups.items():
        L = ws[0]["queue_len"]
        assert L == (2 + r + 1) * s["zigzag_width"]  # 2 guide groups + one new group per round (A1.7)
        assert [(w["start"], w["start"] + w["updated"]) for w in ws] == regions_fixed(L, F0)
        assert all(w["guidance"] == [] for w in ws)
    fired = [e for e in rec["trace"]["judge"] if e["kind"] == "check" and e["fired"]]
    assert {k[:2] for k in groups} == {(e["init_pass"], c) for e in fired for c in range(3)}
    assert {k[2] for k in groups} == set(range(10))


# ---------------------------------------------------------------- levels (step indices)

def test_queue_build_is_a_zigzag_read_gauss_seidel_and_has_the_official_length(rec):
    s = rec["settings"]
    T, Lz, n_zig = s["T"], s["zigzag_width"], F0 // s["zigzag_width"]
    P = init_passes(T, s["stage1_groups"], Lz)
    passes = by_pass(rec["trace"]["windows"], "init")
    assert [ws[0]["pass_index"] for ws in passes] == list(range(P))
    for ws in passes:
        p = ws[0]["pass_index"]
        assert ws[0]["queue_len"] == F0 + Lz * (p + 1)
        before = lambda pos: n_zig + p - pos // Lz  # noqa: E731  step index of a queue latent before pass p
        for w in ws:
            lo, hi = w["local"]
            g = len(w["guidance"])
            assert w["step_indices"][g:] == [before(q) for q in range(lo, hi)]
            # guidance latents lie before the window's region, already stepped in this pass: Gauss-Seidel (A1.4, item 16)
            assert w["step_indices"][:g] == [before(q) + 1 for q in w["guidance"]]
    steps = s["queue_steps_after_build"]
    broke = s["stage1_groups"] > P  # the loop ended on its break: one more group appended without a pass
    L = F0 + Lz * (P + (1 if broke else 0))
    assert len(steps) == L == rec["latents"]["queue_after_build"].shape[1]
    assert steps == [n_zig + P - q // Lz for q in range(L)]
    assert [int(rec["latents"]["timesteps"][k]) for k in steps] == s["queue_timesteps_after_build"]


def test_stage1_is_jacobi_on_a_zigzag_and_outputs_at_T_minus_10(rec):
    s = rec["settings"]
    T, Lz = s["T"], s["zigzag_width"]
    passes = by_pass(rec["trace"]["windows"], "stage1")
    out_before = [ws[0]["frames_out"] for ws in passes] + [s["stage1_groups"] * Lz]
    for i, ws in enumerate(passes):
        label = {}
        for w in ws:
            pos = w["guidance"] + list(range(*w["local"]))
            for q, k in zip(pos, w["step_indices"]):
                assert label.setdefault(q, k) == k  # every window of a pass reads the same levels: Jacobi
        L = ws[0]["queue_len"]
        assert sorted(label) == list(range(L))
        head = label[0]
        assert [label[q] for q in range(L)] == [max(head - q // Lz, 0) for q in range(L)]
        # a group leaves the queue after the pass in which the head was at step T-11 (it leaves at T-10)
        popped = out_before[i + 1] - out_before[i]
        assert popped == (Lz if head == T - 11 else 0), (i, head)
    assert out_before[-1] == s["lengths"]["stage1_out"]


@pytest.mark.parametrize("phase,first", [("stage2", -11), ("refine", -10)])
def test_unified_passes_start_at_the_official_label_and_take_ten_steps(rec, phase, first):
    s = rec["settings"]
    T = s["T"]
    passes = by_pass(rec["trace"]["windows"], phase)
    assert len(passes) == 10
    for p, ws in enumerate(passes):
        for w in ws:
            # stage 2 labels its input T-11 (it is at T-10: the off-by-one of A1.9); the re-denoise starts at T-10
            assert w["step_indices"] == [T + first + p] * w["F"]


# ---------------------------------------------------------------- self-reflection bookkeeping

def test_reflection_checks_fire_and_accept_by_the_official_rule(rec):
    s = rec["settings"]
    T, Lz = s["T"], s["zigzag_width"]
    checks = [e for e in rec["trace"]["judge"] if e["kind"] == "check"]
    if not s["reflection"]:
        assert not checks and s["counters"]["fired"] == 0
        return
    P = init_passes(T, s["stage1_groups"], Lz)
    n_zig = F0 // Lz
    # a check after every build pass whose head is past step 12 (A1.7), on the 10th group from the tail
    assert [e["init_pass"] for e in checks] == [p for p in range(P) if n_zig + p + 1 > 12]
    prev, fired, accepted, scores = None, 0, 0, []
    for e in checks:
        assert e["judged_index"] == e["queue_len"] // Lz - 10
        assert e["previous"] == prev
        assert e["fired"] == (prev is not None and prev - e["score"] > s["reflection_threshold"])
        cands = [c["score"] for c in rec["trace"]["judge"] if c["kind"] == "candidate" and c["init_pass"] == e["init_pass"]]
        assert len(cands) == (3 if e["fired"] else 0)
        prev = e["score"]
        if e["fired"]:
            fired += 1
            if max(cands) > e["score"]:
                accepted += 1
                prev = max(cands)  # the accepted candidate's score becomes C_prev
        scores.append(prev)
    assert scores == s["sim_result"]
    assert (fired, accepted) == (s["counters"]["fired"], s["counters"]["accepted"])


def test_the_last_check_score_is_our_consistency_score_of_the_built_queue(rec):
    s = rec["settings"]
    checks = [e for e in rec["trace"]["judge"] if e["kind"] == "check"]
    if not checks:
        pytest.skip("no self-reflection in this configuration")
    Lz, j = s["zigzag_width"], checks[-1]["judged_index"]
    q = rec["latents"]["queue_after_build"].unsqueeze(0)
    # official Wan score = SPEC D5a: judged group (f_eval = L_zig) against the two groups before it (f_ref = 2 L_zig)
    ours = consistency_score(q[:, :, (j - 2) * Lz:j * Lz], q[:, :, j * Lz:(j + 1) * Lz])
    assert ours == pytest.approx(s["sim_result"][-1], abs=1e-6)


def test_record_a_drains_with_reflection_firing_and_accepting():
    s = load("a_drain_reflect")["settings"]
    assert s["stage1_groups"] < 40 and s["counters"]["fired"] >= 1 and s["counters"]["accepted"] >= 1
    assert len(s["queue_steps_after_build"]) == F0 + s["stage1_groups"] * s["zigzag_width"]  # no break: drains


def test_record_b_reaches_steady_state():
    s = load("b_steady")["settings"]
    assert s["stage1_groups"] >= s["T"] - F0 // s["zigzag_width"] - 11
    assert s["queue_steps_after_build"][-1] == 0  # the break's group, appended without a pass
    assert s["noise_draw_counts"]["stage1_fresh"] > 0  # stage 1 appends (a drain never does)


# ---------------------------------------------------------------- noise, re-noise, trim

def test_every_recorded_draw_is_our_keyed_noise(rec):
    s = rec["settings"]
    C, H, W = s["latent_shape"]
    for name, t in rec["noise"].items():
        parts = name.split(":")
        site, extra, index = parts[0], [int(e) for e in parts[1:-1]], int(parts[-1])
        assert torch.equal(t, keyed_noise(s["noise_seed"], site, index, (C, H, W), extra=extra)), name
    draws = rec["trace"]["noise_draws"]
    for site, digest in s["noise_sha256_by_site"].items():
        h = hashlib.sha256()
        for d in draws:
            if d["site"] == site:
                h.update(keyed_noise(s["noise_seed"], site, d["index"], (C, H, W), extra=d["extra"]).numpy().tobytes())
        assert h.hexdigest() == digest, site
    assert {d["site"] for d in draws} <= set(SITES)
    assert len({noise_key_name(d["site"], d["index"], d["extra"]) for d in draws}) == len(draws)  # no key twice


def test_fresh_queue_latents_carry_the_clips_last_latent(rec):
    """A1.4 / item 11: a new latent is ``(1 - sigma_0) x_last + sigma_0 eps``; visible where the build broke (no pass after)."""
    s, lat = rec["settings"], rec["latents"]
    steps = s["queue_steps_after_build"]
    tail = [q for q, k in enumerate(steps) if k == 0]
    if not tail:
        pytest.skip("every built latent had a pass")
    s0 = lat["sigmas"][0].double()
    for q in tail:
        eps = rec["noise"][noise_key_name("build_fresh", q)]
        assert torch.equal(lat["queue_after_build"][:, q], (1 - s0) * lat["initial_clip"][:, -1] + s0 * eps)


def test_refinement_renoises_stage2_output_at_T_minus_10_and_the_final_drops_21(rec):
    s, lat = rec["settings"], rec["latents"]
    sig = lat["sigmas"][s["T"] - 10].double()
    n = lat["stage2_out"].shape[1]
    eps = torch.stack([rec["noise"][noise_key_name("refine", i)] for i in range(n)], dim=1)
    assert torch.equal(lat["refine_in"], (1 - sig) * lat["stage2_out"] + sig * eps)  # A1.10
    assert torch.equal(lat["final"], lat["refine_out"][:, :-F0])  # A1.11
    assert n == s["stage1_groups"] * s["zigzag_width"] == lat["stage1_out"].shape[1]


# ---------------------------------------------------------------- per-latent UniPC history (config c)

def test_unipc_history_travels_with_the_latent_and_resets_at_stage2_and_refinement():
    r = load("c_T20")
    steps, t = r["trace"]["steps"], r["steps"]
    sig = r["latents"]["sigmas"].double()
    assert steps
    for i, st in enumerate(steps):
        k = st["step_index"]
        fresh = i == 0 or st["phase"] != steps[i - 1]["phase"] and st["phase"] in ("stage2", "refine")
        if fresh:
            # first step of a history: order 1, no corrector; = the flow Euler/DDIM step x' = (s'/s) x + (1 - s'/s) x0
            # up to the solver's float32 coefficients (its sigmas are float32 tensors, so h, phi, rho are float32)
            assert (st["corrector"], st["order"]) == (False, 1) and f"{i}:state_x0_1" not in t
            x, v = t[f"{i}:sample"], t[f"{i}:model_output"]
            x0 = x - sig[k] * v
            assert torch.equal(t[f"{i}:out_x0_1"], x0)  # the stored x0 is exactly x - sigma_k v
            ratio = sig[k + 1] / sig[k]
            assert torch.allclose(t[f"{i}:prev_sample"], ratio * x + (1 - ratio) * x0, atol=1e-6, rtol=0)
        else:
            prev = steps[i - 1]
            assert k == prev["step_index"] + 1
            assert st["corrector"] and st["order_in"] == prev["order"]
            assert torch.equal(t[f"{i}:sample"], t[f"{i - 1}:prev_sample"])  # the latent continues where it was left
            assert torch.equal(t[f"{i}:state_x0_1"], t[f"{i - 1}:out_x0_1"])  # its newest x0 travels with it
            # order 2 once two x0s are stored, order 1 at the step into sigma = 0 (lower_order_final)
            assert st["order"] == (1 if k == len(sig) - 2 else 2)
    phases = [st["phase"] for st in steps]
    assert phases == sorted(phases, key=["init", "stage1", "stage2", "refine"].index)


# ---------------------------------------------------------------- the stand-in itself

def test_standin_sees_own_and_neighbour_timesteps_position_order_and_text():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 4, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([900, 800, 700, 600, 500, 400])
    a, b = standin_text("a fox"), standin_text("a cat")
    v = standin_velocity(x, t, a)
    t2 = t.clone()
    t2[0] = 910  # a neighbour's timestep changes frame 3's output
    assert not torch.allclose(standin_velocity(x, t2, a)[:, 3], v[:, 3])
    assert not torch.allclose(standin_velocity(x, t, b), v)
    same = x[:, 2:3].expand(2, 6, 4, 3).contiguous()  # identical frames differ by position
    vs = standin_velocity(same, torch.full((6,), 500), a)
    assert not torch.allclose(vs[:, 1], vs[:, 4])
    flipped = standin_velocity(x.flip(1), t.flip(0), a).flip(1)  # order matters
    assert not torch.allclose(flipped, v)
    assert torch.equal(standin_velocity(x, torch.tensor([500]), a), standin_velocity(x, torch.full((6,), 500), a))


def test_standin_denoiser_is_the_official_x0_of_the_cfg_velocity():
    sig, ts = official_ladder(20)
    prompts, neg = ["a fox", "a cat"], "neg"
    d = StandinDenoiser(sig, ts, prompts, neg, 5.0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 5, 4, 3, generator=g, dtype=torch.float64)
    sigma = sig[torch.tensor([[3, 4, 5, 6, 7], [0, 0, 1, 1, 2]])]
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = d(x, sigma, w)
    for b in range(2):
        v = cfg_velocity(x[b], ts[[3, 4, 5, 6, 7] if b == 0 else [0, 0, 1, 1, 2]], standin_text(prompts[b]), standin_text(neg), 5.0)
        assert torch.equal(out[b], x[b] - sigma[b].double().view(1, -1, 1, 1) * v)
    assert torch.equal(d(x[1:], sigma[1:], w[1:])[0], out[1])  # one window's result does not depend on the batch
    with pytest.raises(ValueError, match="off the ladder"):
        d(x, torch.full((2, 5), 0.5), w)
