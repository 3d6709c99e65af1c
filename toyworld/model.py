"""ToyDiT: a small video diffusion transformer with a per-frame timestep embedding.

The property that matters for MIGA: every latent frame gets its own noise level (the adaLN
modulation of a frame's tokens comes from that frame's sigma), so the model can run in a
queue of frames at different levels, although it is trained as foundation models are, with one
level shared by all frames of a clip (Peebles & Xie 2023, DiT; flow matching as in Esser et al.
2024, SD3: ``x_sigma = (1 - sigma) x0 + sigma n``, the model predicts ``v = n - x0``).

"Latents" here are the RGB frames scaled to [-1, 1]: ``[B, 3, F, 32, 32]``, patches of 4x4.
Conditioning is the prompt's four attributes (shape, colour, background, motion) as summed
embeddings; the extra index of each attribute table is the null prompt used for CFG.

The model's size (:class:`ToyDiTConfig`) travels with its weights: :func:`save_model` writes it
into the safetensors metadata and :func:`load_model` builds the model it describes. A file
without that metadata (an early ToyDiT file) is read as the default ``ToyDiTConfig()``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ._core import MigaValueError, bad_value

__all__ = ["ToyDiTConfig", "ToyDiT", "ToyDenoiser", "config_from_metadata", "load_model", "save_model"]


@dataclass(frozen=True)
class ToyDiTConfig:
    size: int = 32  # frame height = width, pixels
    channels: int = 3
    frames: int = 16  # f0: the window the model was trained on
    patch: int = 4
    dim: int = 160
    depth: int = 6
    heads: int = 5
    vocab: tuple[int, ...] = (3, 5, 6, 2)  # shapes, colours, backgrounds, motions (toyworld.world)

    def __post_init__(self) -> None:
        """Raises MigaValueError for a size that cannot be built (non-positive sizes, patch or heads that do not divide)."""
        for name in ("size", "channels", "frames", "patch", "dim", "depth", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MigaValueError(bad_value(f"ToyDiTConfig.{name}", value, "an integer >= 1", f"pass a positive {name}"))
        if self.size % self.patch:
            raise MigaValueError(bad_value("ToyDiTConfig.patch", self.patch, f"a divisor of size = {self.size}", "use patch 4 for 32x32 frames"))
        if self.dim % self.heads:
            raise MigaValueError(bad_value("ToyDiTConfig.heads", self.heads, f"a divisor of dim = {self.dim}",
                                           f"use heads = dim // 32 (head width 32), e.g. {max(1, self.dim // 32)} if that divides"))

    @property
    def tokens_per_frame(self) -> int:
        return (self.size // self.patch) ** 2


def timestep_embedding(sigma: torch.Tensor, dim: int = 256) -> torch.Tensor:
    """Sinusoidal embedding of ``1000 * sigma``: ``[...]`` -> ``[..., dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=sigma.device, dtype=torch.float32) / half)
    args = 1000.0 * sigma.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block with adaLN-zero modulation per frame (DiT)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # h: (B, F, N, D) tokens; c: (B, F, D) per-frame conditioning
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(c))[:, :, None].chunk(6, dim=-1)
        B, Fr, N, D = h.shape
        x = self.norm1(h) * (1 + scale1) + shift1
        q, k, v = rearrange(self.qkv(x), "b f n (three hd d) -> three b hd (f n) d", three=3, hd=self.heads)
        a = F.scaled_dot_product_attention(q, k, v)  # full spatio-temporal attention over the window
        h = h + gate1 * self.proj(rearrange(a, "b hd (f n) d -> b f n (hd d)", f=Fr))
        x = self.norm2(h) * (1 + scale2) + shift2
        return h + gate2 * self.mlp(x)


class ToyDiT(nn.Module):
    """``v = model(x [B, C, F, H, W], sigma [B, F], cond [B, D])``: velocity per latent frame."""

    def __init__(self, config: ToyDiTConfig = ToyDiTConfig()) -> None:
        super().__init__()
        self.config = config
        c, p, d = config.channels, config.patch, config.dim
        self.patch_embed = nn.Linear(c * p * p, d)
        self.pos_space = nn.Parameter(torch.randn(1, 1, config.tokens_per_frame, d) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(1, config.frames, 1, d) * 0.02)
        self.attributes = nn.ModuleList(nn.Embedding(n + 1, d) for n in config.vocab)  # index n = null
        self.t_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(Block(d, config.heads) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mod_out = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, c * p * p)
        for layer in (self.mod_out, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def embed_prompt(self, attributes: torch.Tensor) -> torch.Tensor:
        """``[..., 4]`` attribute indices (vocab size = null) -> ``[..., D]`` prompt embedding."""
        return sum(table(attributes[..., i]) for i, table in enumerate(self.attributes))

    def null_attributes(self, *shape: int, device=None) -> torch.Tensor:
        """The null prompt's attribute indices ``[*shape, 4]`` (used for CFG and prompt dropout)."""
        return torch.tensor(self.config.vocab, device=device).expand(*shape, len(self.config.vocab))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        B, C, Fr, H, W = x.shape
        if Fr > cfg.frames or H != cfg.size or W != cfg.size or C != cfg.channels:
            raise ValueError(f"ToyDiT input {tuple(x.shape)}: allowed is [B, {cfg.channels}, <= {cfg.frames}, {cfg.size}, {cfg.size}]. "
                             f"Fix: use window_length <= {cfg.frames} and {cfg.size}x{cfg.size} frames.")
        p = cfg.patch
        h = self.patch_embed(rearrange(x, "b c f (h p1) (w p2) -> b f (h w) (c p1 p2)", p1=p, p2=p))
        h = h + self.pos_space + self.pos_time[:, :Fr]
        c = self.t_mlp(timestep_embedding(sigma).to(h.dtype)) + cond[:, None].to(h.dtype)  # (B, F, D): one level per frame
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.mod_out(F.silu(c))[:, :, None].chunk(2, dim=-1)
        v = self.out(self.norm_out(h) * (1 + scale) + shift)
        return rearrange(v, "b f (h w) (c p1 p2) -> b c f (h p1) (w p2)", h=H // p, p1=p, p2=p)


class ToyDenoiser:
    """miga_core's denoiser over a ToyDiT with CFG: ``D(x [R,C,F,H,W], sigma [R,F], prompt [R,P]) -> x0``.

    Args:
        model: a trained :class:`ToyDiT`.
        attributes: ``[V, P, 4]`` attribute indices of each video's P scheduled prompts (row r of a
            window batch is video ``r % V``, as miga_core stacks windows).
        cfg_scale: guidance scale (1 = conditional only).
    """

    def __init__(self, model: ToyDiT, attributes: torch.Tensor, cfg_scale: float = 3.0) -> None:
        self.model, self.attributes, self.cfg_scale = model, attributes, cfg_scale
        self.calls = 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        R, V = x.shape[0], self.attributes.shape[0]
        attrs = self.attributes.to(x.device)[torch.arange(R, device=x.device) % V]  # [R, P, 4]
        cond = torch.einsum("rp,rpd->rd", prompt.to(x.device, torch.float32), self.model.embed_prompt(attrs).float())
        dtype = next(self.model.parameters()).dtype
        xin, sin = x.to(dtype), sigma.to(x.device)
        if self.cfg_scale == 1.0:
            v = self.model(xin, sin, cond.to(dtype)).float()
        else:
            null = self.model.embed_prompt(self.model.null_attributes(R, device=x.device))
            v_c, v_u = self.model(torch.cat([xin, xin]), torch.cat([sin, sin]), torch.cat([cond, null]).to(dtype)).float().chunk(2)
            v = v_u + self.cfg_scale * (v_c - v_u)
        return (x.float() - sigma[:, None, :, None, None].float() * v).to(x.dtype)


def save_model(model: ToyDiT, path: str, dtype: torch.dtype = torch.float16) -> None:
    """Weights as safetensors (``dtype``, fp16 by default: 2 bytes a parameter); the model's
    :class:`ToyDiTConfig` as JSON under the metadata key ``"config"`` (read back by :func:`load_model`)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, path, metadata={"config": json.dumps(asdict(model.config))})


def config_from_metadata(metadata: dict[str, str] | None) -> ToyDiTConfig:
    """The :class:`ToyDiTConfig` a safetensors file's metadata describes.

    No metadata, or none under ``"config"`` (files written before the size was saved): the
    default ``ToyDiTConfig()``, the size every such file has. Fields missing from the JSON take
    their defaults too.

    Raises:
        MigaValueError: the ``"config"`` entry is not JSON, names fields ToyDiTConfig does not
            have, or describes a size that cannot be built.
    """
    if not metadata or "config" not in metadata:
        return ToyDiTConfig()
    names = [f.name for f in fields(ToyDiTConfig)]
    try:
        options = json.loads(metadata["config"])
    except ValueError as err:
        raise MigaValueError(bad_value("safetensors metadata 'config'", metadata["config"][:80], "the JSON of a ToyDiTConfig",
                                       "re-save the model with toyworld.model.save_model")) from err
    unknown = sorted(set(options) - set(names)) if isinstance(options, dict) else ["<not a JSON object>"]
    if unknown:
        raise MigaValueError(bad_value("safetensors metadata 'config'", unknown, f"fields of ToyDiTConfig {names}",
                                       "load it with the toyworld version that wrote it, or re-save it with save_model"))
    if "vocab" in options:
        options["vocab"] = tuple(options["vocab"])
    return ToyDiTConfig(**options)


def load_model(path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> ToyDiT:
    """Load a :func:`save_model` file (no pickle) as the size its metadata names (:func:`config_from_metadata`).

    Returns the model on ``device`` in ``dtype``, in eval mode. Raises MigaValueError for bad
    metadata; torch's RuntimeError (``load_state_dict``) when the tensors do not fit that size.
    """
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        config = config_from_metadata(f.metadata())
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    model = ToyDiT(config)
    model.load_state_dict(state)
    return model.to(device, dtype).eval()
