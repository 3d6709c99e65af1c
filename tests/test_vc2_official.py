"""`vc2-official` against the records of the authors' released VideoCrafter2 MIGA loop (REFERENCE.md Part A2).

The records (tests/fixtures/official_vc2/, made outside the project by running the release with our stand-in eps UNet
and keyed noise, see docs/official_equivalence.md) are VP-space latents at DDIM step index j; ours live in sigma space
on miga_core.ladder.official_ddim_ladder(64), where level k is step index k and a VP latent is x / sqrt(1 + sigma_k^2).
"""

from __future__ import annotations

import gzip
import json
import pathlib

import pytest
import torch
from safetensors.torch import load_file

from miga_core import plan_run
from miga_core.config import preset
from miga_core.ladder import official_ddim_ladder
from miga_core.stages import initialize_queue, unified_stage, zigzag_stage
from miga_core.windows import plan_windows
from tests.official_standin import keyed_noise
from tests.official_standin_vc2 import StandinEpsDenoiser

FIX = pathlib.Path(__file__).parent / "fixtures" / "official_vc2"
CONFIGS = ["a_default", "b_steady"]
PHASE_ID = {"init": 1, "zigzag": 2, "unified": 3, "refine": 4}
SITE = {("renoise", "init"): "build_renoise", ("fresh", "init"): "build_fresh", ("fresh", "zigzag"): "stage1_fresh",
        ("refine", "refine"): "refine"}


def _load(name):
    rec = load_file(str(FIX / name / "latents.safetensors"))
    settings = json.loads((FIX / name / "settings.json").read_text())
    return rec, settings


class RecordedNoise:
    """Our NoiseDraws mapped to the records' keys (the same keyed_noise the harness injected at every global-RNG draw)."""

    def __init__(self, seed):
        self.seed = seed

    def __call__(self, draw, shape, dtype, device):
        B, C, H, W = shape
        frames = []
        for i, k in zip(draw.indices, draw.levels, strict=True):
            if draw.use == "ancestral":
                n = keyed_noise(self.seed, "ancestral", i, (C, H, W), extra=(PHASE_ID[draw.phase], k))
            else:
                n = keyed_noise(self.seed, SITE[(draw.use, draw.phase)], i, (C, H, W))
            frames.append(n)
        return torch.stack(frames, dim=1).unsqueeze(0).expand(B, -1, -1, -1, -1).to(device=device, dtype=dtype)


def _vp(x, sigma):
    return x / (1 + sigma**2) ** 0.5


@pytest.fixture(scope="module", params=CONFIGS)
def run(request):
    return _run(request.param)


def _run(name):
    rec, st = _load(name)
    sigmas, timesteps = official_ddim_ladder(st["T"])
    config, guidance, _ = preset("vc2-official")
    N = st["zigzag_width"] * st["stage1_groups"]
    plan = plan_run(config, len(sigmas) - 1, N, guidance=guidance, reflection=None, has_initial_clip=True)
    den = StandinEpsDenoiser(sigmas, timesteps, [st["prompt"]], "", st["cfg"])
    clip = rec["initial_clip"].unsqueeze(0)
    q = initialize_queue(den, sigmas, plan, initial_clip=clip, noise=RecordedNoise(st["noise_seed"]))
    built = q.queue
    q = zigzag_stage(den, q)
    s1 = q.outputs
    q2 = unified_stage(den, q, refine=False)
    s2 = q2.outputs
    fin = unified_stage(den, q).outputs
    return dict(name=name, rec=rec, st=st, sigmas=sigmas, built=built, s1=s1, s2=s2, final=fin, plan=plan)


def _diff(ours_run, sigmas, recorded):
    lv = torch.as_tensor([sigmas[len(sigmas) - 1 - k] for k in ours_run.level], dtype=torch.float64)
    ours = _vp(ours_run.x[0], lv.view(1, -1, 1, 1))
    assert ours.shape == recorded.shape
    return float((ours - recorded).abs().max())


def test_queue_after_build(run):
    assert list(run["built"].level) == run["st"]["queue_steps_after_build"]
    assert _diff(run["built"], run["sigmas"], run["rec"]["queue_after_build"]) <= 1e-5


def test_stage1_outputs(run):
    assert set(run["s1"].level) == {9}
    assert _diff(run["s1"], run["sigmas"], run["rec"]["stage1_out"]) <= 1e-5


def test_stage2_outputs(run):
    assert set(run["s2"].level) == {0}
    assert _diff(run["s2"], run["sigmas"], run["rec"]["stage2_out"]) <= 1e-5


def test_final_latents(run):
    assert set(run["final"].level) == {0}
    d = _diff(run["final"], run["sigmas"], run["rec"]["final"])
    print(run["name"], "final max abs diff", d)
    assert d <= 1e-5


def test_planned_windows_equal_recorded(run):
    assert run["plan"].total_calls == run["st"]["windows"]


def test_window_plan_matches_trace():
    """Our window plan (windows.plan_windows) gives the trace's regions and guidance positions pass by pass."""
    config, guidance, _ = preset("vc2-official")
    with gzip.open(FIX / "a_default" / "trace.json.gz", "rt") as fh:
        windows = json.load(fh)["windows"]
    by_pass: dict[tuple[str, int], list[dict]] = {}
    for w in windows:
        by_pass.setdefault((w["phase"], w["pass_index"]), []).append(w)
    checked = 0
    for (phase, p), ws in by_pass.items():
        L = ws[0]["queue_len"]
        m = guidance.num_guidance if phase in ("init", "stage1") else 0
        ours = plan_windows(0, L, config.window_length, config.stride, num_guidance=m, zigzag_width=config.zigzag_width,
                            update=config.update, borders="fixed" if phase == "init" else "rotating", pass_index=p,
                            guidance_rule="official")
        got = [(w.region[0], w.region[1] - w.region[0], list(w.positions)) for w in ours]
        want = [(w["start"], w["updated"], w["pos"]) for w in ws]
        assert got == want, (phase, p)
        checked += 1
    assert checked == len(by_pass) >= 76  # 8 build, 49 stage-1, 9 stage-2, 10 refinement passes
