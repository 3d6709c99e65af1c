"""Train the ToyDiT on procedurally generated clips (run on the GPU; about 7 minutes on an H200).

    python -m toyworld.train --out toyworld/weights --minutes 7
    python -m toyworld.train --out /tmp/tiny --steps 3 --batch 2 --dim 32 --depth 1 --heads 1 --device cpu   # smoke test

As foundation video models are trained: every clip of 16 frames shares one noise level
(logit-normal sigma, SD3; ``--mixed-levels`` makes a fraction of the clips rise in level along their frames, as a
diagonal queue's windows do, :func:`clip_levels`), flow matching loss on the velocity, the prompt dropped 10% of the
time for classifier-free guidance, an EMA of the weights saved as fp16 safetensors. Clips are
rendered on the fly from fresh seeds (never the evaluation seeds, see ``EVAL_SEED_BASE``), at a
random phase of their trajectory.

The model size (``--dim --depth --heads``) is saved with the weights (``model.save_model``).
``--init FILE`` continues training from a saved model (at that file's size; the EMA starts there too).
The learning rate warms up linearly over ``--warmup`` steps, then follows a cosine from
``--lr`` down to ``--lr * --min-lr-ratio`` at the end of training; the end is whichever comes
first of ``--steps`` and ``--minutes``, so with a wall-time budget the schedule is driven by the
elapsed time (``progress``, :func:`lr_factor`). Writes ``toy_dit.safetensors`` (the EMA),
with ``--save-raw`` also ``toy_dit_raw.safetensors`` (the trained weights themselves),
``train_config.json`` (arguments, model, parameter count, and at the end the steps, clips and
seconds) and ``train_log.jsonl`` (loss and learning rate every ``--log-every`` steps).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import pathlib
import sys
import time
from dataclasses import asdict

import torch

from .model import ToyDiT, ToyDiTConfig, load_model, save_model
from .world import render, sample_spec

__all__ = ["EVAL_SEED_BASE", "train_batch", "clip_levels", "lr_factor", "build_parser", "main"]

EVAL_SEED_BASE = 10_000_000  # seeds >= this are reserved for evaluation and benchmarks


def train_batch(step: int, batch: int, frames: int, size: int, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips ``[B, 3, F, H, W]`` in [-1, 1] and their attributes ``[B, 4]`` for training step ``step``."""
    g = torch.Generator().manual_seed(step)
    specs = [sample_spec(step * batch + i) for i in range(batch)]
    start = int(torch.randint(0, 240, (), generator=g))
    video = render(specs, frames, start=start, size=size, device=device).video  # [B, F, 3, H, W]
    attrs = torch.tensor([s.attributes() for s in specs], device=device)
    return video.permute(0, 2, 1, 3, 4) * 2 - 1, attrs


def clip_levels(batch: int, frames: int, mixed: float, device: str | torch.device) -> torch.Tensor:
    """The noise level of every frame, ``[B, F]`` in (0, 1), drawn from the global RNG.

    Each clip shares one logit-normal level (SD3), as foundation video models are trained. With ``mixed > 0`` that
    fraction of the clips instead rises along its frames, linearly from the lower to the higher of two logit-normal
    draws: what a window of a diagonal queue (FIFO-Diffusion, MIGA) shows the model. The extra draws are made only then,
    so ``mixed=0`` keeps the recipe's random stream.
    """
    sigma = torch.sigmoid(torch.randn(batch, device=device))[:, None].expand(batch, frames)
    if mixed <= 0:
        return sigma
    lo, hi = torch.sigmoid(torch.randn(batch, 2, device=device)).sort(dim=1).values.unbind(1)
    ramp = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0, 1, frames, device=device)
    return torch.where((torch.rand(batch, device=device) < mixed)[:, None], ramp, sigma)


def lr_factor(step: int, progress: float, warmup: int, schedule: str, min_ratio: float) -> float:
    """The multiplier of the peak learning rate at ``step`` (0-based) and ``progress`` in [0, 1] of the run.

    Linear warm-up over ``warmup`` steps, times ``1`` (``schedule="constant"``) or
    ``min_ratio + (1 - min_ratio) * (1 + cos(pi * progress)) / 2`` (``"cosine"``: from 1 at the
    start to ``min_ratio`` at the end; Loshchilov & Hutter 2017, SGDR, without restarts).
    """
    warm = min(1.0, (step + 1) / max(1, warmup))
    if schedule == "constant":
        return warm
    p = min(1.0, max(0.0, progress))
    return warm * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def build_parser() -> argparse.ArgumentParser:
    """The command line; defaults are the recipe of the shipped weights' successor (dim 192, depth 6, heads 6)."""
    ap = argparse.ArgumentParser(prog="python -m toyworld.train", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="toyworld/weights")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dim", type=int, default=192, help="token width (ToyDiTConfig.dim). Default: 192")
    ap.add_argument("--depth", type=int, default=6, help="transformer blocks (ToyDiTConfig.depth). Default: 6")
    ap.add_argument("--heads", type=int, default=6, help="attention heads, must divide --dim (ToyDiTConfig.heads). Default: 6")
    ap.add_argument("--batch", type=int, default=128, help="clips per step. Default: 128")
    ap.add_argument("--steps", type=int, default=1_000_000, help="stop after this many steps ...")
    ap.add_argument("--minutes", type=float, default=7.0, help="... or after this much wall time (the cosine ends there)")
    ap.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (AdamW). Default: 5e-4")
    ap.add_argument("--schedule", choices=("cosine", "constant"), default="cosine", help="after the warm-up. Default: cosine")
    ap.add_argument("--warmup", type=int, default=500, help="linear warm-up steps. Default: 500")
    ap.add_argument("--min-lr-ratio", type=float, default=0.02, help="cosine end as a fraction of --lr. Default: 0.02")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--dropout", type=float, default=0.1, help="prompt dropout for CFG")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-raw", action="store_true", help="also write toy_dit_raw.safetensors (the weights without EMA)")
    ap.add_argument("--mixed-levels", type=float, default=0.0,
                    help="fraction of clips whose frames rise in level as in a diagonal queue's window (clip_levels). Default: 0")
    ap.add_argument("--init", default=None, help="continue from these weights (a save_model file); its size replaces --dim --depth --heads")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    if args.init:  # fine-tune: the model (and EMA) start from the file's weights, at the file's size
        model = load_model(args.init, device=args.device).train()
        config = model.config
        args.dim, args.depth, args.heads = config.dim, config.depth, config.heads  # recorded as trained
    else:
        config = ToyDiTConfig(dim=args.dim, depth=args.depth, heads=args.heads)
        model = ToyDiT(config).to(args.device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    cuda = torch.device(args.device).type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99), **({"fused": True} if cuda else {}))
    params, ema_params = list(model.parameters()), list(ema.parameters())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"args": vars(args), "model": asdict(config), "params": sum(p.numel() for p in params)}
    (out / "train_config.json").write_text(json.dumps(info, indent=1) + "\n")
    log = (out / "train_log.jsonl").open("w")
    budget = 60 * args.minutes
    step = 0
    running = torch.zeros((), device=args.device)  # summed on the device: no host sync but at log time
    while step < args.steps and time.perf_counter() - t0 < budget:
        progress = max(step / args.steps, (time.perf_counter() - t0) / budget)
        x0, attrs = train_batch(args.seed * 1_000_003 + step, args.batch, config.frames, config.size, args.device)
        B = x0.shape[0]
        drop = torch.rand(B, device=args.device) < args.dropout
        attrs = torch.where(drop[:, None], model.null_attributes(B, device=args.device), attrs)
        sigma = clip_levels(B, config.frames, args.mixed_levels, args.device)  # [B, F]
        noise = torch.randn_like(x0)
        s5 = sigma[:, None, :, None, None]
        x_t = (1 - s5) * x0 + s5 * noise
        lr = args.lr * lr_factor(step, progress, args.warmup, args.schedule, args.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            v = model(x_t, sigma, model.embed_prompt(attrs))
        loss = torch.nn.functional.mse_loss(v.float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():  # EMA; its decay ramps up with the warm-up (the first steps copy)
            torch._foreach_lerp_(ema_params, params, 1 - args.ema * min(1.0, (step + 1) / max(1, args.warmup)))
        running += loss.detach()
        step += 1
        if step % args.log_every == 0:
            record = {"step": step, "loss": round(float(running) / args.log_every, 5), "lr": float(f"{lr:.4g}"),
                      "seconds": round(time.perf_counter() - t0, 1)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            running.zero_()
    log.close()
    save_model(ema, str(out / "toy_dit.safetensors"))
    if args.save_raw:
        save_model(model, str(out / "toy_dit_raw.safetensors"))
    info["result"] = {"steps": step, "clips": step * args.batch, "seconds": round(time.perf_counter() - t0, 1)}
    (out / "train_config.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info["result"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
