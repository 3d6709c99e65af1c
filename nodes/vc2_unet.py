"""The VideoCrafter2 denoising network (the LVDM 3D UNet), written for this pack in torch + einops.

VideoCrafter2 text-to-video (Chen et al. 2024, "VideoCrafter2: Overcoming Data Limitations for
High-Quality Video Diffusion Models") predicts the noise ``eps`` of latent videos ``[B, 4, F, H/8, W/8]``.
Its network is the LVDM UNet of github:AILab-CVC/VideoCrafter, ``lvdm/modules/networks/openaimodel3d.py``
(class ``UNetModel``) with the blocks of ``lvdm/modules/attention.py``, built from
``configs/inference_t2v_512_v2.0.yaml``. This module was written from reading that code (not copied): it
builds the same layers under the same parameter names, so the ``model.diffusion_model.*`` tensors of the
released ``model.ckpt`` (1484 tensors, 1.41e9 parameters, the key typo ``temopral_conv`` included)
load strictly, and computes the same function (tests/test_vc2_unet.py checks it against outputs of the
reference code).

Layout: frames are folded into the batch, ``[B, C, F, H, W] -> [(B F), C, H, W]``, for the 2-D layers
(ResBlock convolutions, spatial transformers, up/down sampling); the temporal layers (the temporal
convolutions inside every ResBlock and the temporal transformers) unfold them again.

Beyond the reference: timesteps may be given per frame (``[B, F]``); each frame then gets the time
embedding of its own timestep, which is what FIFO-Diffusion's diagonal denoising and MIGA need
(FIFO-Diffusion's fork of this file, github:jjihwan/FIFO-Diffusion_public, does the same with
flattened ``[(B F)]`` timesteps). The VC2 options this file does not build (relative positions,
causal temporal attention, temporal cross-attention, scale-shift norm, resblock up/down sampling,
image cross-attention, adapters) are off in the VC2 config.

Built for inference: the dropout layers are kept (probability 0) only so that the parameter indices match.
GroupNorms run in the input dtype (the reference upcasts its ResBlock norms to fp32; in fp32 both agree).
CFG: stack the conditional and unconditional rows along ``B``; rows never mix (every layer is per video).

Only torch, einops and the pack's error type are imported, so ComfyUI's model wrapper can build it with
its own ``operations`` (``comfy.ops``) and attention function (``optimized_attention``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..miga_core.errors import MigaTypeError, MigaValueError, bad_value

__all__ = ["VC2UNetConfig", "VC2_T2V_512_V2", "VC2UNet", "timestep_embedding", "sdpa_attention"]

# (q [N, Lq, heads * d], k [N, Lk, heads * d], v [N, Lk, heads * d], heads) -> [N, Lq, heads * d]
AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class VC2UNetConfig:
    """Sizes of the LVDM UNet (the ``unet_config.params`` of VideoCrafter's configs; fixed options omitted).

    The defaults are ``configs/inference_t2v_512_v2.0.yaml`` (VideoCrafter2 t2v 512): see ``VC2_T2V_512_V2``.
    Every channel count must be a multiple of ``norm_groups`` (the GroupNorms use 32 groups).
    """

    in_channels: int = 4                                  # latent channels in (SD KL-f8 VAE)
    out_channels: int = 4                                 # eps channels out
    model_channels: int = 320                             # channels of the first level
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)          # channels of level i = model_channels * channel_mult[i]
    num_res_blocks: int = 2                               # ResBlocks per level (encoder; decoder has one more)
    attention_resolutions: tuple[int, ...] = (4, 2, 1)    # downsampling factors that get transformers
    num_head_channels: int = 64                           # channels per attention head (heads = channels // this)
    transformer_depth: int = 1                            # BasicTransformerBlocks per spatial transformer
    temporal_transformer_depth: int = 1                   # ... per temporal transformer
    context_dim: int = 1024                               # text-token width (OpenCLIP ViT-H/14, penultimate layer)
    init_attention_heads: int = 8                         # heads of the temporal transformer after the first conv
    norm_groups: int = 32                                 # GroupNorm groups everywhere
    fps_cond: bool = True                                 # add an fps embedding to the time embedding


VC2_T2V_512_V2 = VC2UNetConfig()
"""VideoCrafter2 text-to-video, ``configs/inference_t2v_512_v2.0.yaml`` (latents 40x64 for 320x512 video)."""


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[N] -> [N, dim]`` (fp32): ``[cos(t w_i), sin(t w_i)]``, ``w_i = max_period^(-i/half)``.

    Timesteps are DDPM indices (0..999, may be fractional). Source: ``timestep_embedding`` of LVDM's
    ``lvdm/models/utils_diffusion.py`` (cosines first; a zero column pads an odd ``dim``).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head softmax attention with scale ``d^-1/2``: ``[N, L, heads*d]`` in and out (torch SDPA)."""
    q, k, v = (rearrange(t, "n l (h d) -> n h l d", h=heads) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return rearrange(out, "n h l d -> n l (h d)")


def _ops(operations: Any) -> Any:
    return operations if operations is not None else SimpleNamespace(
        Linear=nn.Linear, Conv1d=nn.Conv1d, Conv2d=nn.Conv2d, Conv3d=nn.Conv3d, GroupNorm=nn.GroupNorm,
        LayerNorm=nn.LayerNorm)


class TemporalConvBlock(nn.Module):
    """Four residual-free temporal convolutions with one skip: ``x + conv4(conv3(conv2(conv1(x))))``.

    ``x [B, C, F, H, W] -> [B, C, F, H, W]``; each ``convN`` is GroupNorm (over channels, frames and pixels
    of one video), SiLU, (dropout), Conv3d with kernel (3, 1, 1) and zero padding in time. Source:
    ``TemporalConvBlock`` of ``openaimodel3d.py`` (from ModelScope's video UNet), stored under the key
    ``temopral_conv`` of each ResBlock.
    """

    def __init__(self, channels: int, groups: int, ops: Any, **kw: Any) -> None:
        super().__init__()

        def layer(dropout: bool) -> nn.Sequential:
            mods = [ops.GroupNorm(groups, channels, **kw), nn.SiLU()]
            mods += [nn.Dropout(0.0)] if dropout else []
            return nn.Sequential(*mods, ops.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), **kw))

        self.conv1, self.conv2, self.conv3, self.conv4 = layer(False), layer(True), layer(True), layer(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding, then a temporal convolution block.

    ``x [(B F), C, H, W]``, ``emb [(B F), E]`` -> ``[(B F), C_out, H, W]``:
    ``h = conv(SiLU(GN(x))) + Linear(SiLU(emb)); h = conv(SiLU(GN(h))) + skip(x)`` (skip: identity or a
    1x1 conv), then ``h += temporal convs of h`` on ``[B, C_out, F, H, W]``. Source: ``ResBlock`` of
    ``openaimodel3d.py`` with ``use_temporal_conv=True`` (no scale-shift norm, no up/down sampling).
    """

    def __init__(self, channels: int, emb_channels: int, out_channels: int, groups: int, ops: Any, **kw: Any) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(ops.GroupNorm(groups, channels, **kw), nn.SiLU(),
                                       ops.Conv2d(channels, out_channels, 3, padding=1, **kw))
        self.emb_layers = nn.Sequential(nn.SiLU(), ops.Linear(emb_channels, out_channels, **kw))
        self.out_layers = nn.Sequential(ops.GroupNorm(groups, out_channels, **kw), nn.SiLU(), nn.Dropout(0.0),
                                        ops.Conv2d(out_channels, out_channels, 3, padding=1, **kw))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else ops.Conv2d(channels, out_channels, 1, **kw))
        self.temopral_conv = TemporalConvBlock(out_channels, groups, ops, **kw)  # (sic) the checkpoint's key

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_frames: int) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb).to(x.dtype)[:, :, None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        h = rearrange(h, "(b f) c h w -> b c f h w", f=num_frames)
        return rearrange(self.temopral_conv(h), "b c f h w -> (b f) c h w")


class Downsample(nn.Module):
    """3x3 convolution with stride 2: ``[N, C, H, W] -> [N, C, H/2, W/2]`` (``Downsample`` of ``openaimodel3d.py``)."""

    def __init__(self, channels: int, ops: Any, **kw: Any) -> None:
        super().__init__()
        self.op = ops.Conv2d(channels, channels, 3, stride=2, padding=1, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest 2x upsampling then a 3x3 conv: ``[N, C, H, W] -> [N, C, 2H, 2W]`` (``Upsample`` of ``openaimodel3d.py``)."""

    def __init__(self, channels: int, ops: Any, **kw: Any) -> None:
        super().__init__()
        self.conv = ops.Conv2d(channels, channels, 3, padding=1, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class CrossAttention(nn.Module):
    """Multi-head attention of ``x [N, Lq, D]`` over ``context [N, Lk, Dc]`` (itself when None) -> ``[N, Lq, D]``.

    Bias-free q/k/v projections to ``heads * head_dim``, an output Linear (+ dropout). Source:
    ``CrossAttention`` of ``lvdm/modules/attention.py`` (its relative-position and image-token options unused).
    """

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None, attention: AttentionFn,
                 ops: Any, **kw: Any) -> None:
        super().__init__()
        inner = heads * head_dim
        context_dim = dim if context_dim is None else context_dim
        self.heads = heads
        self.attention = attention
        self.to_q = ops.Linear(dim, inner, bias=False, **kw)
        self.to_k = ops.Linear(context_dim, inner, bias=False, **kw)
        self.to_v = ops.Linear(context_dim, inner, bias=False, **kw)
        self.to_out = nn.Sequential(ops.Linear(inner, dim, **kw), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        out = self.attention(self.to_q(x), self.to_k(context), self.to_v(context), self.heads)
        return self.to_out(out)


class GEGLU(nn.Module):
    """``a * GELU(g)`` with ``[a, g] = Linear(x)``: ``[..., D] -> [..., D_out]`` (``GEGLU`` of ``attention.py``)."""

    def __init__(self, dim: int, dim_out: int, ops: Any, **kw: Any) -> None:
        super().__init__()
        self.proj = ops.Linear(dim, dim_out * 2, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward ``D -> 4D -> D`` (``FeedForward(glu=True)`` of ``attention.py``)."""

    def __init__(self, dim: int, ops: Any, **kw: Any) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, 4 * dim, ops, **kw), nn.Dropout(0.0), ops.Linear(4 * dim, dim, **kw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm transformer block on tokens ``[N, L, D]``: self-attention, attention, feed-forward.

    ``attn2`` attends to ``context`` when given (spatial: the text tokens) and to the tokens themselves
    otherwise (temporal: two self-attentions). Source: ``BasicTransformerBlock`` of ``attention.py``.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None, attention: AttentionFn,
                 ops: Any, **kw: Any) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, head_dim, None, attention, ops, **kw)
        self.ff = FeedForward(dim, ops, **kw)
        self.attn2 = CrossAttention(dim, heads, head_dim, context_dim, attention, ops, **kw)
        self.norm1 = ops.LayerNorm(dim, **kw)
        self.norm2 = ops.LayerNorm(dim, **kw)
        self.norm3 = ops.LayerNorm(dim, **kw)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Per-frame transformer over the ``H*W`` pixels, cross-attending to the text.

    ``x [(B F), C, H, W]``, ``context [(B F), L, Dc]`` -> ``[(B F), C, H, W]``: GroupNorm (eps 1e-6),
    Linear in, blocks, Linear out, plus ``x``. Source: ``SpatialTransformer(use_linear=True)`` of ``attention.py``.
    """

    def __init__(self, channels: int, heads: int, head_dim: int, depth: int, context_dim: int, groups: int,
                 attention: AttentionFn, ops: Any, **kw: Any) -> None:
        super().__init__()
        inner = heads * head_dim
        self.norm = ops.GroupNorm(groups, channels, eps=1e-6, **kw)
        self.proj_in = ops.Linear(channels, inner, **kw)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, head_dim, context_dim, attention, ops, **kw) for _ in range(depth))
        self.proj_out = ops.Linear(inner, channels, **kw)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        h = self.proj_in(rearrange(self.norm(x), "n c h w -> n (h w) c"))
        for block in self.transformer_blocks:
            h = block(h, context)
        return x + rearrange(self.proj_out(h), "n (h w) c -> n c h w", h=height, w=width)


class TemporalTransformer(nn.Module):
    """Per-pixel transformer over the ``F`` frames (self-attention only, no positional encoding).

    ``x [B, C, F, H, W] -> [B, C, F, H, W]``: GroupNorm (eps 1e-6) over channels, frames and pixels of
    one video, projection in, blocks on the ``(B H W)`` sequences of ``F`` tokens, projection out, plus ``x``.
    The projections are Linear layers, or 1x1 Conv1d (``conv_proj``, the temporal transformer right after
    the first convolution, whose checkpoint weights are ``[out, in, 1]``). Source: ``TemporalTransformer``
    of ``attention.py`` with ``only_self_att=True``, no relative position, no causal mask.
    """

    def __init__(self, channels: int, heads: int, head_dim: int, depth: int, groups: int, attention: AttentionFn,
                 ops: Any, conv_proj: bool = False, **kw: Any) -> None:
        super().__init__()
        inner = heads * head_dim
        self.conv_proj = conv_proj
        self.norm = ops.GroupNorm(groups, channels, eps=1e-6, **kw)
        proj = (lambda i, o: ops.Conv1d(i, o, 1, **kw)) if conv_proj else (lambda i, o: ops.Linear(i, o, **kw))
        self.proj_in = proj(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, head_dim, None, attention, ops, **kw) for _ in range(depth))
        self.proj_out = proj(inner, channels)

    def _project(self, layer: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
        if self.conv_proj:  # Conv1d wants channels before the sequence
            return layer(tokens.transpose(1, 2)).transpose(1, 2)
        return layer(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _, height, width = x.shape
        h = self._project(self.proj_in, rearrange(self.norm(x), "b c f h w -> (b h w) f c"))
        for block in self.transformer_blocks:
            h = block(h)
        h = self._project(self.proj_out, h)
        return x + rearrange(h, "(b h w) f c -> b c f h w", b=b, h=height, w=width)


class Stage(nn.ModuleList):
    """One entry of ``input_blocks``/``output_blocks`` (``TimestepEmbedSequential`` of ``openaimodel3d.py``).

    Runs its layers in order on ``h [(B F), C, H, W]``, giving each what it takes: ResBlocks the time
    embedding, spatial transformers the text, temporal transformers the frames unfolded to
    ``[B, C, F, H, W]``.
    """

    def forward(self, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                h = layer(h, emb, num_frames)
            elif isinstance(layer, SpatialTransformer):
                h = layer(h, context)
            elif isinstance(layer, TemporalTransformer):
                h = rearrange(layer(rearrange(h, "(b f) c h w -> b c f h w", f=num_frames)),
                              "b c f h w -> (b f) c h w")
            else:
                h = layer(h)
        return h


class VC2UNet(nn.Module):
    """The VideoCrafter2 3D UNet: ``(x, timesteps, context, fps) -> eps``.

    Same parameters (names and shapes) as ``UNetModel`` of VideoCrafter's ``openaimodel3d.py`` built from
    ``config``; ``load_state_dict(strict=True)`` takes the checkpoint's ``model.diffusion_model.*``
    tensors with that prefix removed.

    Args:
        config: sizes (default: VideoCrafter2 t2v 512, :data:`VC2_T2V_512_V2`).
        operations: a namespace with ``Linear``, ``Conv1d``, ``Conv2d``, ``Conv3d``, ``GroupNorm``,
            ``LayerNorm`` classes (e.g. ``comfy.ops.manual_cast``); default ``torch.nn``.
        attention: ``(q, k, v, heads) -> out`` on ``[N, L, heads*d]`` tensors (e.g. ComfyUI's
            ``optimized_attention``); default :func:`sdpa_attention`.
        dtype, device: passed to every layer (``device="meta"`` builds without memory).
    """

    def __init__(self, config: VC2UNetConfig = VC2_T2V_512_V2, *, operations: Any = None,
                 attention: AttentionFn | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.config = cfg = config
        ops, attn, groups = _ops(operations), attention or sdpa_attention, config.norm_groups
        kw = {"dtype": dtype, "device": device}
        mc, emb_dim, hc = cfg.model_channels, 4 * cfg.model_channels, cfg.num_head_channels

        def transformers(ch: int) -> list[nn.Module]:
            heads = ch // hc
            return [SpatialTransformer(ch, heads, hc, cfg.transformer_depth, cfg.context_dim, groups, attn, ops, **kw),
                    TemporalTransformer(ch, heads, hc, cfg.temporal_transformer_depth, groups, attn, ops, **kw)]

        def embedding() -> nn.Sequential:
            return nn.Sequential(ops.Linear(mc, emb_dim, **kw), nn.SiLU(), ops.Linear(emb_dim, emb_dim, **kw))

        self.time_embed = embedding()
        if cfg.fps_cond:
            self.fps_embedding = embedding()
        self.input_blocks = nn.ModuleList([Stage([ops.Conv2d(cfg.in_channels, mc, 3, padding=1, **kw)])])
        self.init_attn = Stage([TemporalTransformer(mc, cfg.init_attention_heads, hc, cfg.transformer_depth, groups,
                                                    attn, ops, conv_proj=True, **kw)])
        skip_channels, ch, factor = [mc], mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [ResBlock(ch, emb_dim, mult * mc, groups, ops, **kw)]
                ch = mult * mc
                if factor in cfg.attention_resolutions:
                    layers += transformers(ch)
                self.input_blocks.append(Stage(layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Stage([Downsample(ch, ops, **kw)]))
                skip_channels.append(ch)
                factor *= 2
        self.middle_block = Stage([ResBlock(ch, emb_dim, ch, groups, ops, **kw), *transformers(ch),
                                   ResBlock(ch, emb_dim, ch, groups, ops, **kw)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, mult * mc, groups, ops, **kw)]
                ch = mult * mc
                if factor in cfg.attention_resolutions:
                    layers += transformers(ch)
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch, ops, **kw))
                    factor //= 2
                self.output_blocks.append(Stage(layers))
        self.out = nn.Sequential(ops.GroupNorm(groups, ch, **kw), nn.SiLU(),
                                 ops.Conv2d(mc, cfg.out_channels, 3, padding=1, **kw))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                fps: int | float | torch.Tensor = 8) -> torch.Tensor:
        """Predict the noise of each latent frame.

        Args:
            x: noisy latents ``[B, C, F, H, W]`` (DDPM space, ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps``);
                ``H`` and ``W`` divisible by ``2^(levels - 1)`` (8 for VC2).
            timesteps: DDPM timestep indices (0..999, may be fractional), ``[B]`` (one per video) or
                ``[B, F]`` (one per frame: frame ``f`` of video ``b`` is embedded at ``timesteps[b, f]``).
            context: text tokens ``[B, L, context_dim]`` (VC2: ``[B, 77, 1024]``); CFG stacks the
                conditional and unconditional rows along ``B``.
            fps: frames per second the video is conditioned on, a number or ``[B]`` (VC2 default in
                FIFO-Diffusion and MIGA: 8); ignored when ``config.fps_cond`` is False.

        Returns:
            eps ``[B, out_channels, F, H, W]`` in the dtype of ``x``.

        Raises:
            MigaValueError / MigaTypeError: a shape or type outside the above, naming the argument.
        """
        b, f = self._check(x, timesteps, context, fps)
        t = timesteps.reshape(b, 1).expand(b, f) if timesteps.ndim == 1 else timesteps
        emb = self.time_embed(timestep_embedding(t.reshape(b * f), self.config.model_channels).to(x.dtype))
        if self.config.fps_cond:
            fps_t = torch.as_tensor(fps, device=x.device).reshape(-1).expand(b)
            fps_emb = timestep_embedding(fps_t.repeat_interleave(f), self.config.model_channels).to(x.dtype)
            emb = emb + self.fps_embedding(fps_emb)
        context = context.repeat_interleave(f, dim=0)              # [(B F), L, Dc]
        h = rearrange(x, "b c f h w -> (b f) c h w")
        skips = []
        for i, stage in enumerate(self.input_blocks):
            h = stage(h, emb, context, f)
            if i == 0:
                h = self.init_attn(h, emb, context, f)
            skips.append(h)
        h = self.middle_block(h, emb, context, f)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, context, f)
        return rearrange(self.out(h), "(b f) c h w -> b c f h w", f=f)

    def _check(self, x: torch.Tensor, timesteps: Any, context: Any, fps: Any) -> tuple[int, int]:
        cfg = self.config
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[1] != cfg.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise MigaValueError(bad_value("x", shape, f"a tensor [B, {cfg.in_channels}, F, H, W]",
                                           "pass latent videos with channels on dim 1 and frames on dim 2",
                                           problem="has the wrong shape"))
        b, _, f, height, width = x.shape
        step = 2 ** (len(cfg.channel_mult) - 1)
        if height % step or width % step:
            raise MigaValueError(bad_value("x", tuple(x.shape), f"H and W multiples of {step}",
                                           f"crop or pad the latents to multiples of {step} (pixels: {8 * step})",
                                           problem="has a spatial size the UNet cannot halve"))
        if not isinstance(timesteps, torch.Tensor) or tuple(timesteps.shape) not in ((b,), (b, f)):
            shape = tuple(timesteps.shape) if isinstance(timesteps, torch.Tensor) else type(timesteps).__name__
            raise MigaValueError(bad_value("timesteps", shape, f"a tensor [{b}] or [{b}, {f}] (B or B x F of x)",
                                           "give one timestep per video or one per frame",
                                           problem="has the wrong shape"))
        if (not isinstance(context, torch.Tensor) or context.ndim != 3 or context.shape[0] != b
                or context.shape[2] != cfg.context_dim):
            shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
            raise MigaValueError(bad_value("context", shape, f"a tensor [{b}, L, {cfg.context_dim}]",
                                           "stack one text encoding per row of x (CFG: cond and uncond rows)",
                                           problem="has the wrong shape"))
        if isinstance(fps, bool) or not isinstance(fps, (int, float, torch.Tensor)):
            raise MigaTypeError(bad_value("fps", type(fps).__name__, f"a number or a tensor [{b}]",
                                          "pass e.g. fps=8", problem="has the wrong type"))
        if isinstance(fps, torch.Tensor) and tuple(fps.shape) not in ((), (b,)):
            raise MigaValueError(bad_value("fps", tuple(fps.shape), f"a number or a tensor [{b}]",
                                           "give one fps per video", problem="has the wrong shape"))
        return b, f
