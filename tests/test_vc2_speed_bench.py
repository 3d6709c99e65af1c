"""The VC2 speed benchmark's random weights and its BENCHMARKS.md section (benchmarks/vc2_node_gpu.py, report.vc2_text)."""

import math

import torch

from benchmarks import report
from benchmarks.vc2_node_gpu import RESIDUAL_GAIN, random_weights

SHAPES = {"input_blocks.1.0.in_layers.2.weight": (64, 32, 3, 3), "input_blocks.1.0.out_layers.3.weight": (64, 64, 3, 3),
          "input_blocks.1.0.out_layers.3.bias": (64,), "out.2.weight": (4, 64, 3, 3), "out.0.weight": (64,),
          "input_blocks.1.1.proj_out.weight": (64, 64), "model.logit_scale": ()}


def test_random_weights_have_no_zero_tensor_and_depend_only_on_the_name():
    drawn = dict(random_weights(SHAPES, 3))
    assert all(bool(t.abs().max() > 0) for t in drawn.values())  # the zero-initialised outputs (out_layers.3, out.2) too
    reverse = dict(random_weights(dict(reversed(list(SHAPES.items()))), 3))
    assert all(torch.equal(drawn[k], reverse[k]) for k in SHAPES)  # same tensor whatever the order (the official script's draw)
    other = dict(random_weights(SHAPES, 4))
    assert not torch.equal(drawn["out.2.weight"], other["out.2.weight"])
    assert abs(drawn["out.0.weight"].mean().item() - 1) < 0.05  # a norm scale near 1
    assert drawn["input_blocks.1.0.out_layers.3.bias"].abs().max() < 0.1


def test_residual_outputs_are_drawn_at_the_reduced_scale():
    big = {"a.in_layers.2.weight": (256, 64, 3, 3), "a.out_layers.3.weight": (256, 64, 3, 3)}
    drawn = dict(random_weights(big, 0))
    plain, residual = drawn["a.in_layers.2.weight"].std().item(), drawn["a.out_layers.3.weight"].std().item()
    assert math.isclose(plain, 1 / math.sqrt(64 * 9), rel_tol=0.02)
    assert math.isclose(residual / plain, RESIDUAL_GAIN, rel_tol=0.03)


def _data(miga_s, fifo_s, official=None):
    def row(mode, s):
        return {"mode": mode, "num_pixel_frames": 128, "steps": 16, "cfg": 12.0, "model_calls": 100, "model_calls_per_frame": 0.78,
                "reflection_n_all": 1, "reflection_n_corr": 0, "peak_vram_mib": 5000, "rss_gib": 4.0,
                "timing": {"s_per_frame": s, "s_per_model_call": 0.07}}
    return {"record": {"model": "m", "unet_dtype": "float16", "preset": "vc2", "options": {"height": 320, "width": 512},
                       "official_fifo": official},
            "rows": [row("miga", miga_s), row("fifo", fifo_s)]}


def test_the_vc2_section_states_the_papers_tables_and_computes_the_ratios():
    official = {"s_per_frame": 2.0, "num_inference_steps": 16, "new_video_length": 128, "dtype": "float32"}
    text = report.vc2_text(_data(0.9, 0.6, official))
    assert "Tab. A4" in text and "7.48" in text and "9.16" in text and "Tab. A3" in text and "9919" in text and "9985" in text
    assert report.PAPER in text
    assert "MIGA / FIFO time per frame: 1.50 here, 1.22 in Tab. A4" in text
    assert "official FIFO code, time per frame on this GPU: 0.30" in text
    assert "official FIFO-Diffusion code (float32)" in text
    assert "1.50 here" not in report.vc2_text(_data(1.2, 0.6, official))  # the ratio follows the rows
    missing = report.vc2_text(_data(0.9, 0.6, {"missing": "x.json was not written"}))
    assert "Official run: not measured (x.json was not written)" in missing and "on this GPU" not in missing
