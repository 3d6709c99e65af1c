"""The demo's command line refuses every bad option before generating: one line naming the flag, exit code 2."""

import json
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from toyworld import demo
from toyworld.demo import MIN_FRAMES, WEIGHTS, build_parser, check_args, main

PROG = "python -m toyworld.demo: error: "


@pytest.fixture
def no_generation(monkeypatch):
    """Any attempt to generate fails the test: refusals must come first."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the demo started generating")

    monkeypatch.setattr(demo, "generate_videos", forbidden)


def refusal(capsys, argv):
    """Run the CLI, expect exit code 2 and one error line; return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(PROG), err
    return err[len(PROG):].strip()


@pytest.mark.parametrize("value", ["-5", "0", "1", "2", str(MIN_FRAMES - 1)])
def test_too_few_frames_are_refused_naming_num_frames(tmp_path, capsys, no_generation, value):
    line = refusal(capsys, ["--num-frames", value, "--out", str(tmp_path / "o")])
    assert line.startswith(f"--num-frames={value} ") and f">= {MIN_FRAMES}" in line
    assert not (tmp_path / "o").exists()  # a refused run leaves nothing behind


@pytest.mark.parametrize("value", ["-3", "0", "1", "10"])
def test_too_few_steps_are_refused_naming_steps_with_a_valid_suggestion(tmp_path, capsys, no_generation, value):
    line = refusal(capsys, ["--steps", value, "--out", str(tmp_path / "o")])
    assert line.startswith(f"--steps={value} ") and ">= 11" in line
    suggested = int(re.search(r"use --steps (\d+)", line).group(1))
    args = build_parser().parse_args(["--steps", str(suggested), "--out", str(tmp_path / "o")])
    check_args(args)  # the fix it names is accepted


def test_unified_steps_too_large_for_the_steps_names_both_flags_and_a_value_that_works(tmp_path, capsys, no_generation):
    line = refusal(capsys, ["--steps", "12", "--unified-steps", "9", "--out", str(tmp_path / "o")])
    assert line.startswith("--steps=12 ") and "lower --unified-steps to 7 or less" in line
    check_args(build_parser().parse_args(["--steps", "12", "--unified-steps", "7", "--out", str(tmp_path / "o")]))


@pytest.mark.parametrize("argv, flag", [(["--unified-steps", "-1"], "--unified-steps"), (["--seed", "-1"], "--seed")])
def test_negative_unified_steps_and_seed_are_refused(tmp_path, capsys, no_generation, argv, flag):
    assert refusal(capsys, argv + ["--out", str(tmp_path / "o")]).startswith(f"{flag}=-1 ")


def _foreign_files(tmp_path):
    random_bytes = tmp_path / "random.safetensors"
    random_bytes.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).numpy().tobytes())
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(foreign))  # safetensors, but no ToyDiT config
    truncated = tmp_path / "truncated.safetensors"
    tensors = load_file(str(WEIGHTS))
    tensors.pop(sorted(tensors)[0])
    from safetensors import safe_open
    with safe_open(str(WEIGHTS), framework="pt") as f:
        save_file(tensors, str(truncated), metadata=f.metadata())  # the config is right, a tensor is missing
    return {"random": random_bytes, "foreign": foreign, "truncated": truncated, "missing": tmp_path / "missing.safetensors",
            "folder": tmp_path}


@pytest.mark.parametrize("kind, says", [("random", "not safetensors"), ("foreign", "metadata must hold 'config'"),
                                        ("truncated", "do not match its config"), ("missing", "no such file"),
                                        ("folder", "not a file")])
def test_a_weights_file_that_is_not_the_toy_model_is_refused_naming_weights(tmp_path, capsys, no_generation, kind, says):
    path = _foreign_files(tmp_path)[kind]
    line = refusal(capsys, ["--weights", str(path), "--out", str(tmp_path / "o")])
    assert line.startswith(f"--weights='{path}' ") and says in line


def test_an_out_that_is_a_file_or_lies_under_one_is_refused(tmp_path, capsys, no_generation):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "this is a file" in refusal(capsys, ["--out", str(afile)])
    assert f"{afile} is a file" in refusal(capsys, ["--out", str(afile / "sub")])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc refuses new folders on Linux")
def test_an_out_folder_that_cannot_be_created_is_refused_before_generating(capsys, no_generation):
    assert "a folder this user can create and write" in refusal(capsys, ["--out", "/proc/miga-demo-test"])


def test_existing_outputs_are_kept_unless_overwrite_is_given(tmp_path, capsys, no_generation):
    (tmp_path / "metrics.json").write_text("{}")
    line = refusal(capsys, ["--out", str(tmp_path)])
    assert "it holds metrics.json" in line and "--overwrite" in line
    assert (tmp_path / "metrics.json").read_text() == "{}"
    assert check_args(build_parser().parse_args(["--out", str(tmp_path), "--overwrite"])).out == tmp_path


def test_the_minimums_in_help_are_the_ones_the_checks_apply(tmp_path, capsys, no_generation):
    """--help states the lowest frame count and step count; one below is refused, that one is accepted."""
    helptext = " ".join(build_parser().format_help().split())
    frames = int(re.search(r"--num-frames N frames to generate, one latent each; at least (\d+)", helptext).group(1))
    steps = int(re.search(r"\((\d+) with the default --unified-steps", helptext).group(1))
    out = str(tmp_path / "o")
    refusal(capsys, ["--num-frames", str(frames - 1), "--out", out])
    refusal(capsys, ["--steps", str(steps - 1), "--out", out])
    job = check_args(build_parser().parse_args(["--num-frames", str(frames), "--steps", str(steps), "--out", out]))
    assert (job.num_frames, job.steps, job.switch) == (frames, steps, frames // 2)
    assert (tmp_path / "o").is_dir() and not any((tmp_path / "o").iterdir())  # created, probe file removed


def test_the_cli_prints_one_line_and_no_traceback_as_a_user_sees_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "toyworld.demo", "--num-frames", "3", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()] and "Traceback" not in done.stderr
    assert done.stderr.startswith(PROG + "--num-frames=3 ")


def test_metrics_of_the_shortest_accepted_video_can_be_computed():
    """The frame minimum is real: each prompt's segment of a MIN_FRAMES video has enough frames for the metrics."""
    from toyworld.metrics import evaluate
    from toyworld.world import render, sample_spec

    spec = sample_spec(1)
    video = render([spec], MIN_FRAMES).video[0]
    assert set(evaluate(video[:MIN_FRAMES // 2], spec)) >= {"identity_accuracy", "motion_smoothness"}
    with pytest.raises(ValueError):
        evaluate(video[:MIN_FRAMES // 2 - 1], spec)
    json.dumps(evaluate(video[MIN_FRAMES // 2:], spec))
