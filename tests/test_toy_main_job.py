"""The README's main job and the benchmark, in their reduced CI form (CPU, shipped weights)."""

import json

from toyworld.demo import main as demo_main
from toyworld.video import read_mp4


def test_main_job_writes_a_valid_mp4_and_metrics(tmp_path, capsys):
    metrics = demo_main(["--num-frames", "32", "--steps", "16", "--out", str(tmp_path)])
    video = read_mp4(str(tmp_path / "video.mp4"))
    assert video.shape[0] == 32 and video.shape[1] == 3 and video.shape[2] == video.shape[3] > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["num_frames"] == 32 and saved["model_calls"] > 0
    for segment in ("first_segment", "second_segment"):
        assert 0.0 <= saved[segment]["identity_accuracy"] <= 1.0
    assert saved["switch"]["scheduled"] == [16]
    assert list(saved["prompts"]) == ["0", "16"]
    assert "100%" in capsys.readouterr().err
    assert metrics["num_frames"] == 32


def test_reduced_benchmark_writes_every_column(tmp_path):
    from benchmarks.toy_quality import main as bench_main

    out = tmp_path / "toy.json"
    assert bench_main(["--reduced", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["row"] for r in data["rows"]] == ["FIFO-Diffusion", "full MIGA", "full MIGA (2 prompts)"]
    for row in data["rows"]:
        assert "±" in row["identity_accuracy"] and row["model_calls_per_frame"] > 0
    assert data["rows"][2]["switch_landed"].endswith("/2")
