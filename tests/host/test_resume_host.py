"""Checkpoint and resume through the MigaSampler node inside ComfyUI v0.8.0 (issue 11): a run cancelled with ComfyUI's
interrupt leaves a checkpoint under output/miga_checkpoints; the node resumes from it to the uninterrupted latent and
removes it; a checkpoint of another seed or prompt is refused naming what differs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

W = H = 32  # pixels -> 4x4 latents
CFG = 5.0


@pytest.fixture(scope="module")
def env(comfy, comfy_base):
    host_app = comfy
    import comfy.sd
    import folder_paths

    models = comfy_base / "models"
    model = comfy.sd.load_diffusion_model(str(models / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors"))
    g = torch.Generator().manual_seed(11)
    positive, other, negative = ([[torch.randn(1, 12, 4096, generator=g), {}]] for _ in range(3))
    return dict(model=model, positive=positive, other=other, negative=negative, core=host_app.pack_submodule("miga_core"),
                sampler=host_app.nodes.NODE_CLASS_MAPPINGS["MigaSampler"], output=Path(folder_paths.get_output_directory()))


def run_node(env, *, seed=3, positive=None, resume_from="", minutes=10.0):
    """MigaSampler.execute, miga mode with uni_pc and reflection off (29 frames = 8 latents, T = 8)."""
    with torch.inference_mode():
        out = env["sampler"].execute(env["model"], positive or env["positive"], env["negative"], W, H, 29, 1, seed, 8, CFG, "simple",
                                     "miga", 4, 2, 1, "uni_pc", 0, "lookahead", 1, None, None, None, None, resume_from, minutes)
    return out.result[0]["samples"]


def cancel_at(monkeypatch, window):
    import comfy.model_management as mm
    import comfy.utils

    def hook(value, total, preview, node_id=None, prompt_id=None):
        if value == window:
            mm.interrupt_current_processing(True)

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)


def checkpoints(env):
    return sorted((env["output"] / "miga_checkpoints").glob("*.safetensors"))


def cancelled_run(env, monkeypatch, window, **kw):
    import comfy.model_management as mm
    import comfy.utils

    for old in checkpoints(env):
        old.unlink()
    cancel_at(monkeypatch, window)
    with pytest.raises(mm.InterruptProcessingException) as caught:
        run_node(env, **kw)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
    (path,) = checkpoints(env)
    assert str(path) in "".join(getattr(caught.value, "__notes__", []))  # the log tells where the run was saved
    return path


@pytest.mark.parametrize("window", [3, 40])
def test_a_cancelled_run_resumed_by_the_node_gives_the_uninterrupted_latent_and_removes_its_checkpoint(env, monkeypatch, window):
    for old in checkpoints(env):  # cancels in other host tests share this output folder and rightly leave theirs
        old.unlink()
    clean = run_node(env)
    assert checkpoints(env) == []  # a finished run leaves no checkpoint
    path = cancelled_run(env, monkeypatch, window)
    import comfy.utils

    bar = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, *a, **k: bar.append((value, total)))
    resumed = run_node(env, resume_from=str(path.relative_to(env["output"])))
    assert torch.equal(resumed, clean)
    total = bar[-1][1]
    assert bar[-1][0] == total and {t for _, t in bar} == {total}  # the bar's total is the run's
    assert 1 < bar[0][0] <= window + 1  # it continued from the last pass before the cancel (raised at window + 1), not anew
    assert checkpoints(env) == []


def test_the_node_refuses_a_checkpoint_of_another_seed_or_prompt_and_keeps_it(env, monkeypatch):
    path = cancelled_run(env, monkeypatch, 20)
    rel = str(path.relative_to(env["output"]))
    mismatch = env["core"].CheckpointMismatchError
    with pytest.raises(mismatch, match="plan.config.seed: checkpoint 3, this run 4"):
        run_node(env, seed=4, resume_from=rel)
    with pytest.raises(mismatch, match="fingerprint.positive: checkpoint '[0-9a-f]+', this run '[0-9a-f]+'"):
        run_node(env, positive=env["other"], resume_from=rel)
    assert path.is_file()
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(env["core"].CheckpointCorruptError, match="truncated"):
        run_node(env, resume_from=rel)
    path.unlink()
