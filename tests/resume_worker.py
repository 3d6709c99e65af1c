"""A small MIGA run in its own process, for tests/test_resume.py's SIGKILL harness (not a test module).

    python -m tests.resume_worker CHECKPOINT OUT [--stall-window W | --stall-save K] [--resume]

Runs :data:`RUN` with a :class:`~miga_core.checkpoint.Checkpointer` writing ``CHECKPOINT`` after every pass (interval 0).
``--stall-window W`` prints ``STALLED`` and blocks inside the callback of planned window W (mid-pass, as a kill during a
model call); ``--stall-save K`` does so inside the K-th checkpoint write, after the temporary file is written and
before it is renamed over the old checkpoint. The harness then kills the process with SIGKILL. ``--resume`` continues
from ``CHECKPOINT`` in a fresh process. A run that finishes writes its latents to ``OUT`` (safetensors) and removes
the checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from safetensors.torch import save_file

from miga_core import Checkpointer, GuidanceOptions, MigaConfig, ReflectionOptions, load_checkpoint, plan_run, run
from tests.helpers import ToyDenoiser

# the released code's options, toy-sized (uni_pc, rotating borders, official build and drain, build-phase reflection)
CONFIG = MigaConfig(window_length=8, window_stride=3, zigzag_width=2, unified_steps=3, sampler="uni_pc", update="official",
                    borders="rotating", build_length="official", fresh_content="clip_last", build_reads="gauss_seidel",
                    stage2_history="reset", refine_steps=3, trim_tail=8, official_stage2_mislabel=True, seed=7)
GUIDANCE = GuidanceOptions(2, positions="official")
REFLECTION = ReflectionOptions(threshold=-1.0, num_eval=2, num_ref=4, num_candidates=2, num_guide=4, phase="build",
                               judge_from_tail=2, candidate_guidance=False)
T, N, SHAPE = 20, 15, (1, 2, 3, 3)
FINGERPRINT = {"model": "toy", "positive": "toy prompt"}


def ladder() -> torch.Tensor:
    return torch.linspace(1, 0, T + 1)


def make_plan():
    return plan_run(CONFIG, T, N, guidance=GUIDANCE, reflection=REFLECTION)


def stall() -> None:
    print("STALLED", flush=True)
    while True:  # until the harness kills us
        time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--stall-window", type=int)
    ap.add_argument("--stall-save", type=int)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    plan = make_plan()

    def callback(info):
        if info.stage != "reflection" and info.window == a.stall_window:
            stall()

    if a.stall_save is not None:
        real_replace, saves = os.replace, [0]

        def replace(src, dst):
            saves[0] += 1
            if saves[0] == a.stall_save:
                stall()
            real_replace(src, dst)

        os.replace = replace  # only the checkpoint writer renames in this process
    point = load_checkpoint(a.checkpoint, plan=plan, sigmas=ladder(), fingerprint=FINGERPRINT) if a.resume else None
    start = {} if point is not None else {"latent_shape": SHAPE}
    with Checkpointer(a.checkpoint, FINGERPRINT, interval_s=0) as ck:
        result = run(ToyDenoiser(), ladder(), plan, callback=callback, checkpoint=ck, resume=point, **start)
    save_file({"latents": result.latents.contiguous()}, a.out)
    print(f"DONE {result.num_windows} {result.model_calls}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
