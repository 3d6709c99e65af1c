"""The peer benchmark's pure parts (benchmarks/peer_comfy.py) and its report section: no ComfyUI needed.

The benchmark itself runs in tests/host/test_peer_comfy.py.
"""

import json
import math

import pytest

from benchmarks import peer_comfy as pc
from benchmarks import report


def test_chained_clips_cover_the_video_and_each_keeps_the_last_frames_of_the_one_before():
    for frames, known in ((256, 4), (256, 8), (24, 4), (16, 4), (17, 15)):
        starts = pc.chain_clips(frames, known)
        assert starts[0] == 0 and all(b - a == pc.WINDOW - known for a, b in zip(starts, starts[1:]))
        assert starts[-1] + pc.WINDOW >= frames > starts[-1] + known  # the last clip is needed and reaches the end
    assert len(pc.chain_clips(256, 4)) == 21 and len(pc.chain_clips(256, 8)) == 31
    for bad in ((256, 0), (256, 16)):
        with pytest.raises(ValueError, match="chain known frames"):
            pc.chain_clips(*bad)
    with pytest.raises(ValueError, match="num_frames=8"):
        pc.chain_clips(8, 4)


def test_a_chained_clip_takes_the_prompt_scheduled_at_the_middle_of_its_new_frames():
    # clip at 108 makes frames 112..123 (middle 118: prompt 0); at 120: 124..135 (middle 130 >= 128: prompt 1)
    assert [pc.clip_prompt(s, 4, 128) for s in (0, 108, 120, 132)] == [0, 0, 1, 1]
    assert pc.clip_prompt(0, 4, 8) == 1  # the first clip's new frames are all 16: middle 8


def _graph(nodes: dict, class_type: str) -> list[dict]:
    return [n for n in nodes.values() if n["class_type"] == class_type]


def test_the_chained_graph_samples_one_clip_per_start_and_appends_only_the_new_frames():
    specs = pc.specs_of(3, "2 prompts")
    nodes = pc.chained_graph(specs, 40, 24, 1, 4, "k")
    ksamplers = _graph(nodes, "KSampler")
    assert [k["inputs"]["seed"] for k in ksamplers] == [1000, 1001, 1002]  # clips at 0, 12, 24
    kept = [n["inputs"] for n in _graph(nodes, "LatentCut") if n["inputs"]["index"] == -4]
    new = [n["inputs"] for n in _graph(nodes, "LatentCut") if n["inputs"]["index"] == 4]
    assert len(kept) == len(new) == 2 and all(c["amount"] == 4 for c in kept) and all(c["amount"] == 12 for c in new)
    assert _graph(nodes, "LatentCut")[-1]["inputs"] == {"samples": _graph(nodes, "LatentCut")[-1]["inputs"]["samples"],
                                                        "dim": "t", "index": 0, "amount": 40}
    assert [r["inputs"]["amount"] for r in _graph(nodes, "RepeatImageBatch")] == [4, 12]  # mask: 4 kept (0), 12 new (1)
    prompts = {k: n for k, n in nodes.items() if n["class_type"] == "PeerToyPromptBatch"}
    used = [next(i for i, k in enumerate(prompts) if k == ks["inputs"]["positive"][0]) for ks in ksamplers]
    assert used == [0, 1, 1]  # the switch at 20: the clip at 12 makes frames 16..27 (middle 22): the second prompt
    texts = [n["inputs"]["texts"].splitlines() for n in prompts.values()]
    assert texts == [[row[i].prompt() for row in specs] for i in range(2)]


def test_context_window_graphs_use_the_core_node_and_split_conds_only_with_two_prompts():
    one = pc.cw_graph(pc.CW_DEFAULT_CONFIG, pc.specs_of(1, "1 prompt"), 256, 24, 0, "k")
    (cw,) = _graph(one, "ContextWindowsManual")
    assert cw["inputs"] | {"model": None} == {"model": None, "context_length": 16, "context_overlap": 4, "context_schedule": "standard_static",
                                              "context_stride": 1, "closed_loop": False, "fuse_method": "pyramid", "dim": 2, "freenoise": False}
    (latent,) = _graph(one, "EmptyHunyuanLatentVideo")
    assert (latent["inputs"]["length"] - 1) // 4 + 1 == 256 and latent["inputs"]["width"] // 8 == 32  # 256 latents of 32x32
    two = pc.cw_graph(dict(pc.CW_DEFAULT_CONFIG, freenoise=True), pc.specs_of(1, "2 prompts"), 256, 24, 0, "k")
    assert not _graph(two, "ContextWindowsManual")
    (split,) = _graph(two, "PeerContextWindowsSplit")
    assert split["inputs"]["split_conds_to_windows"] is True and split["inputs"]["freenoise"] is True
    assert len(_graph(two, "ConditioningCombine")) == 1


def test_the_miga_rows_differ_only_where_they_should():
    specs = pc.specs_of(2, "1 prompt")
    default = pc.miga_graph(pc.MIGA_DEFAULT, specs, 256, 24, 0, 8, "k")
    official = pc.miga_graph(pc.MIGA_OFFICIAL, specs, 256, 24, 0, 8, "k")
    fifo = pc.miga_graph(pc.FIFO, specs, 256, 24, 0, 8, "k")
    (sampler,) = _graph(default, "MigaSampler")
    assert sampler["inputs"]["zigzag_width"] == 4 and sampler["inputs"]["unified_steps"] == 6 and sampler["inputs"]["batch_size"] == 2
    # the pack's default profile at the toy's size: the toy preset with the official choices the nodes default to since issue 9
    assert (sampler["inputs"]["update"], sampler["inputs"]["borders"]) == ("official", "rotating")
    assert _graph(default, "MigaGuidanceOptions")[0]["inputs"] == {"num_guidance": 4, "positions": "official"}
    reflection = _graph(default, "MigaReflectionOptions")[0]["inputs"]
    assert (reflection["threshold"], reflection["phase"], reflection["candidate_guidance"], reflection["judge_from_tail"],
            reflection["num_candidates"]) == (0.01, "build", False, 4, 3)
    (base,) = _graph(official, "PeerMigaProfileSampler")  # the official row: the toy preset, then the whole official profile
    assert (base["inputs"]["update"], base["inputs"]["borders"]) == ("lookahead", "fixed")
    assert "judge_from_tail" not in _graph(official, "MigaReflectionOptions")[0]["inputs"]  # phase stage1 takes none
    (profiled,) = _graph(official, "PeerMigaProfileSampler")
    profile = json.loads(profiled.pop("inputs").pop("profile"))
    assert profile["config"]["sampler"] == "uni_pc" and profile["guidance"] == {"positions": "official"}
    assert profile["reflection"]["phase"] == "build"
    (f,) = _graph(fifo, "MigaSampler")
    assert f["inputs"]["mode"] == "fifo" and "guidance" not in f["inputs"] and "reflection" not in f["inputs"]


def _runs(**identity: list[float]) -> dict:
    """Runs whose metrics are equal but for identity accuracy (counts 0, the rest 0.9)."""
    out = {}
    for name, values in identity.items():
        out[name] = {k: [0] * len(values) if k in ("blink_count", "jump_count") else [0.9] * len(values) for k in pc.METRICS}
        out[name]["identity_accuracy"] = values
    return out


def test_the_best_config_has_the_lowest_mean_rank_and_counts_rank_lower_as_better():
    runs = _runs(a=[0.5, 0.5], b=[0.7, 0.7], c=[0.6, 0.6])
    assert pc.best_config(runs) == "b"
    runs["b"]["jump_count"] = [3, 5]  # b jumps: worst on jumps; still best on identity; a and c tie on everything else
    runs["c"]["subject_consistency"] = [0.95, 0.95]
    assert pc.best_config(runs) == "c"  # c: ranks 1 (subject), 2 (identity), 1.5 (jumps) ... beats b
    ranks = report._mean_ranks(runs)
    assert min(ranks, key=ranks.get) == pc.best_config(runs)
    assert pc.best_config(_runs(x=[0.5], y=[0.5])) == "x"  # a full tie: the first given
    with pytest.raises(ValueError, match="no runs"):
        pc.best_config({})


def test_a_row_is_timed_by_its_jobs_that_ran_alone():
    args = pc.parser().parse_args(["--comfyui", "x", "--num-frames", "10", "--prompts", "2"])
    job = lambda seed, videos, seconds, contended: {  # noqa: E731
        "seed": seed, "videos": videos, "per_video": {k: [0.5] * len(videos) for k in pc.METRICS}, "switch": [None] * len(videos),
        "network_calls": 3, "frame_evals": 40 * len(videos), "timing": {"seconds": seconds, "peak_memory_gib": 1.0 + seconds},
        **({"contended": True} if contended else {})}
    method = {"kind": "context_windows", "config": pc.CW_DEFAULT_CONFIG}
    row = pc.make_row(["cw"], "peer", method, "1 prompt", [job(1, [1], 9.0, True), job(0, [0], 2.0, False), job(0, [1], 9.0, True)], args)
    assert row["timing"]["seconds_per_frame"] == 0.2 and row["timing"]["timed_videos"] == 1 and row["timing"]["contended"] is False
    assert row["timing"]["peak_memory_gib"] == 3.0 and [(j["seed"], j["videos"]) for j in row["jobs"]] == [(0, [0]), (0, [1]), (1, [1])]
    assert row["frame_evals_per_frame"] == 4.0 and len(row["per_video"]["presence"]) == 3
    pooled = pc.make_row(["s"], "sweep", method, "1 prompt", [job(0, [0], 4.0, True), job(0, [1], 6.0, True)], args)
    assert pooled["timing"]["contended"] is True and pooled["timing"]["seconds_per_frame"] == 0.5


def _peer_data(miga_identity: list[float], cw_identity: list[float]) -> dict:
    n = len(miga_identity)
    rows = []
    for label in pc.PEER_ROWS:
        for setting in pc.SETTINGS:
            per_video = {k: [0.9] * n for k in pc.METRICS}
            per_video["blink_count"] = [0] * n
            per_video["jump_count"] = [0, 1] * (n // 2) if label == pc.MIGA_DEFAULT else [3, 3, 4, 3][:n]
            per_video["identity_accuracy"] = miga_identity if label == pc.MIGA_DEFAULT else cw_identity
            method = {"kind": "context_windows", "config": dict(pc.CW_DEFAULT_CONFIG, overlap=8)} if label == pc.CW_BEST else {"kind": label}
            row = {"labels": [label], "group": "peer", "setting": setting, "method": method, "per_video": per_video, "videos_per_graph": 1,
                   "frame_evals_per_frame": 40.0, "timing": {"seconds_per_frame": 0.01, "peak_memory_gib": 1.0, "contended": False}}
            if label == pc.CHAINED:
                row["method"] = {"kind": "chained", "known": 4}
            if setting == "2 prompts":
                row["switch_error_frames"] = [1, -2] * (n // 2) if label == pc.MIGA_DEFAULT else [6, None] * (n // 2)
            rows.append(row)
    rows.append({"labels": ["standard_static, pyramid, FreeNoise off, overlap 4"], "group": "sweep", "setting": "1 prompt",
                 "per_video": rows[0]["per_video"], "timing": {"seconds_per_frame": 0.01, "contended": True}})
    return {"record": {"options": {"prompts": n, "seeds": 1, "num_frames": 8, "steps": 16, "window_batch": 4, "tf32": True},
                       "machine": {"device": "cpu"}, "comfyui": "0.8.0", "peer_rows": list(pc.PEER_ROWS),
                       "sweep": {"videos": "noise seed 0", "rule": "lowest mean rank"}}, "rows": rows}


def test_the_peer_section_states_where_miga_beats_context_windows_from_the_numbers():
    low, high = [0.5, 0.6, 0.7, 0.8], [0.6, 0.72, 0.79, 0.9]
    ahead = report.peer_text(_peer_data(high, low))
    behind = report.peer_text(_peer_data(low, high))
    for label in pc.PEER_ROWS:
        assert label in ahead
    assert "context windows (best of sweep): standard_static, pyramid, FreeNoise off, overlap 8" in ahead
    assert "1 prompt, against context windows (defaults): MIGA is better on identity (+0.1025), jumps (-2.7500); worse on no metric" in ahead
    assert "1 prompt, against context windows (defaults): MIGA is better on jumps (-2.7500); worse on identity (-0.1025)" in behind
    assert "2 prompts, against context windows (best of sweep): standard_static, pyramid, FreeNoise off, overlap 8: MIGA is better" in ahead
    assert "landed in 4/4 MIGA videos and 2/4 of these, and where both landed MIGA's is closer to the scheduled frame" in ahead
    assert "(contended)" in ahead and "Time per frame 1.00x theirs" in ahead


def test_a_peer_verdict_needs_a_difference_beyond_the_spread():
    same = report.peer_verdict([0.5, 0.6, 0.7, 0.8], [0.52, 0.57, 0.71, 0.79], "identity_accuracy")
    assert same["verdict"] == "within spread"
    assert report.peer_verdict([0, 0, 1, 0], [3, 2, 4, 3], "jump_count")["verdict"] == "MIGA better"  # fewer jumps
    assert report.peer_verdict([3, 2, 4, 3], [0, 0, 1, 0], "jump_count")["verdict"] == "MIGA worse"
    assert math.isnan(report.peer_verdict([1.0], [0.0], "presence")["diff"])


def test_worker_gpus_are_read_as_indices_and_a_bad_one_is_refused():
    assert pc.worker_gpus("1, 2,3") == [1, 2, 3] and pc.worker_gpus(None) == [] and pc.worker_gpus("") == []
    with pytest.raises(ValueError, match="--worker-gpus='1,x'"):
        pc.worker_gpus("1,x")


def test_the_readme_block_is_the_peer_sections_closing_from_the_results(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert "Not measured at this commit" in report.peer_numbers()
    data = _peer_data([0.6, 0.72, 0.79, 0.9], [0.5, 0.6, 0.7, 0.8])
    data["benchmark"] = "peer_comfy"
    data["record"].update(script="benchmarks/peer_comfy.py", command="python benchmarks/peer_comfy.py", code={"sha256": {}})
    (tmp_path / "peer_comfy_cpu.json").write_text(json.dumps(data))
    block = report.peer_numbers()
    closing = [line for line in report.peer_closing(data).splitlines() if line.startswith("- ")]
    assert len(closing) == 4 and block.splitlines()[3:-1] == closing
    assert "1 prompt, against context windows (defaults): MIGA is better on identity (+0.1025)" in block
    assert "(4 videos of 8 frames per row, cpu;" in block
