"""Train the ToyDiT on procedurally generated clips (run on the GPU; a few minutes on an H200).

    python -m toyworld.train --out toyworld/weights --minutes 6
    python -m toyworld.train --out /tmp/tiny --steps 3 --batch 2 --device cpu   # smoke test

As foundation video models are trained: every clip of 16 frames shares one noise level
(logit-normal sigma, SD3), flow matching loss on the velocity, the prompt dropped 10% of the
time for classifier-free guidance, an EMA of the weights saved as fp16 safetensors. Clips are
rendered on the fly from fresh seeds (never the evaluation seeds, see ``EVAL_SEED_BASE``), at a
random phase of their trajectory. Writes ``toy_dit.safetensors``, ``train_config.json`` and
``train_log.jsonl`` (loss every ``--log-every`` steps).
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys
import time
from dataclasses import asdict

import torch

from .model import ToyDiT, ToyDiTConfig, save_model
from .world import render, sample_spec

__all__ = ["EVAL_SEED_BASE", "train_batch", "main"]

EVAL_SEED_BASE = 10_000_000  # seeds >= this are reserved for evaluation and benchmarks


def train_batch(step: int, batch: int, frames: int, size: int, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips ``[B, 3, F, H, W]`` in [-1, 1] and their attributes ``[B, 4]`` for training step ``step``."""
    g = torch.Generator().manual_seed(step)
    specs = [sample_spec(step * batch + i) for i in range(batch)]
    start = int(torch.randint(0, 240, (), generator=g))
    video = render(specs, frames, start=start, size=size, device=device).video  # [B, F, 3, H, W]
    attrs = torch.tensor([s.attributes() for s in specs], device=device)
    return video.permute(0, 2, 1, 3, 4) * 2 - 1, attrs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="toyworld/weights")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1_000_000, help="stop after this many steps ...")
    ap.add_argument("--minutes", type=float, default=6.0, help="... or after this much wall time")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--dropout", type=float, default=0.1, help="prompt dropout for CFG")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    config = ToyDiTConfig()
    model = ToyDiT(config).to(args.device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps({"args": vars(args), "model": asdict(config),
                                                       "params": sum(p.numel() for p in model.parameters())}, indent=1) + "\n")
    log = (out / "train_log.jsonl").open("w")
    cuda = str(args.device).startswith("cuda")
    t0, step, running = time.perf_counter(), 0, 0.0
    while step < args.steps and time.perf_counter() - t0 < 60 * args.minutes:
        x0, attrs = train_batch(args.seed * 1_000_003 + step, args.batch, config.frames, config.size, args.device)
        B = x0.shape[0]
        drop = torch.rand(B, device=args.device) < args.dropout
        attrs = torch.where(drop[:, None], model.null_attributes(B, device=args.device), attrs)
        sigma = torch.sigmoid(torch.randn(B, device=args.device))  # logit-normal, one level per clip
        noise = torch.randn_like(x0)
        s5 = sigma[:, None, None, None, None]
        x_t = (1 - s5) * x0 + s5 * noise
        warm = min(1.0, (step + 1) / 500)
        for group in opt.param_groups:
            group["lr"] = args.lr * warm
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            v = model(x_t, sigma[:, None].expand(B, config.frames), model.embed_prompt(attrs))
        loss = torch.nn.functional.mse_loss(v.float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - args.ema * warm)
        running += loss.item() if step % 10 == 0 else 0.0
        step += 1
        if step % args.log_every == 0:
            record = {"step": step, "loss": round(running / (args.log_every / 10), 5), "seconds": round(time.perf_counter() - t0, 1)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            running = 0.0
    log.close()
    save_model(ema, str(out / "toy_dit.safetensors"))
    print(json.dumps({"steps": step, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
