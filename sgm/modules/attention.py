"""Transformer layers of the UNet: attention through `F.scaled_dot_product_attention`, GEGLU feed-forward,
the spatial transformer block. xformers is not needed: the original's xformers attention modes map onto SDPA."""
from typing import List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .diffusionmodules.util import zero_module

# NOTE: the original configs name "softmax-xformers" / "vanilla-xformers" attention; with PyTorch 2
# SDPA picks a flash or memory-efficient kernel itself, so every name runs the same SDPA code.
SPATIAL_ATTENTION_MODES = ("softmax", "softmax-xformers")


def check_attn_mode(attn_mode: str) -> str:
    if attn_mode not in SPATIAL_ATTENTION_MODES:
        raise ValueError(f"attention mode must be one of {SPATIAL_ATTENTION_MODES}, got {attn_mode!r}")
    return attn_mode


def maybe_checkpoint(fn, *args, enabled: bool):
    """Gradient checkpointing of `fn(*args)` when `enabled` and gradients are being recorded."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


class GEGLU(nn.Module):
    """Gated GELU projection: `a * gelu(b)` with `[a | b] = proj(x)`."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """Two-layer MLP on the last dimension.

    dim: input width. dim_out: output width (default `dim`). mult: hidden width = `dim * mult`.
    glu: gated GELU input projection (GEGLU) instead of Linear + GELU. dropout: after the activation.

    `chunk_size` (attribute, default None) runs the MLP over at most that many tokens at a time
    (dimension 1), which lowers peak memory and leaves the result unchanged: the MLP is per-token.
    """

    def __init__(self, dim: int, dim_out: Optional[int] = None, mult: int = 4, glu: bool = False, dropout: float = 0.0):
        super().__init__()
        inner_dim = int(dim * mult)
        dim_out = dim if dim_out is None else dim_out
        project_in = GEGLU(dim, inner_dim) if glu else nn.Sequential(nn.Linear(dim, inner_dim), nn.GELU())
        self.net = nn.Sequential(project_in, nn.Dropout(dropout), nn.Linear(inner_dim, dim_out))
        self.chunk_size: Optional[int] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chunk_size is None or x.ndim < 3 or x.shape[1] <= self.chunk_size:
            return self.net(x)
        return torch.cat([self.net(part) for part in x.split(self.chunk_size, dim=1)], dim=1)


class CrossAttention(nn.Module):
    """Multi-head attention of `x` over `context` (self-attention when context is None).

    query_dim: width of x. context_dim: width of the context (default query_dim). heads, dim_head:
    number and width of heads. dropout: on the output projection. backend: accepted for config
    compatibility and ignored (SDPA chooses its kernel).
    """

    def __init__(self, query_dim: int, context_dim: Optional[int] = None, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0, backend=None, **unused):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                **unused) -> torch.Tensor:
        # x: (B, N, query_dim); context: (B, M, context_dim), or (B / r, M, context_dim) whose every row
        # serves r consecutive rows of x (the temporal layers: one image context per video)
        if context is not None and context.shape[1] == 1 and mask is None and not torch.is_grad_enabled():
            out = self.single_token_attention(context)  # (B / r, 1, query_dim)
            return out.repeat_interleave(x.shape[0] // context.shape[0], dim=0).expand(-1, x.shape[1], -1)
        if context is not None and context.shape[0] != x.shape[0]:
            context = context.repeat_interleave(x.shape[0] // context.shape[0], dim=0)  # (B, M, context_dim)
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        q, k, v = (t.unflatten(-1, (self.heads, self.dim_head)).transpose(1, 2) for t in (q, k, v))  # (B, heads, N, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, N, dim_head)
        return self.to_out(out.transpose(1, 2).flatten(2))  # (B, N, heads * dim_head) -> (B, N, query_dim)

    def single_token_attention(self, context: torch.Tensor) -> torch.Tensor:
        """Attention over a single context token: the softmax over one key is exactly 1, so every query
        gets that token's value. context: (B, 1, context_dim) -> (B, 1, query_dim), the same for every query.

        SVD's image conditioning is one CLIP token, so this skips the query and key projections and the
        attention itself. Used only without gradients: in training the query and key projections would
        otherwise go unused (their gradient is zero either way), which distributed training refuses.
        """
        return self.to_out(self.to_v(context))  # (B, 1, query_dim)


# The original names its xformers variant separately; both run the SDPA path here.
MemoryEfficientCrossAttention = CrossAttention


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention and a GEGLU MLP, each pre-normed and residual.

    dim: token width. n_heads, d_head: attention heads. dropout: in attention outputs and MLP.
    context_dim: width of the cross-attention context. gated_ff: GEGLU MLP. checkpoint: gradient
    checkpointing in training. disable_self_attn: make attn1 a cross-attention over the context too.
    attn_mode: "softmax" or "softmax-xformers" (same SDPA kernel). sdp_backend: ignored.
    """

    def __init__(self, dim: int, n_heads: int, d_head: int, dropout: float = 0.0, context_dim: Optional[int] = None,
                 gated_ff: bool = True, checkpoint: bool = True, disable_self_attn: bool = False,
                 attn_mode: str = "softmax", sdp_backend=None):
        super().__init__()
        check_attn_mode(attn_mode)
        self.disable_self_attn = disable_self_attn
        self.attn1 = CrossAttention(dim, context_dim=context_dim if disable_self_attn else None, heads=n_heads, dim_head=d_head,
                                    dropout=dropout)
        self.ff = FeedForward(dim, dropout=dropout, glu=gated_ff)
        self.attn2 = CrossAttention(dim, context_dim=context_dim, heads=n_heads, dim_head=d_head, dropout=dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.checkpoint = checkpoint

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        return maybe_checkpoint(self._forward, x, context, enabled=self.checkpoint)

    def _forward(self, x: torch.Tensor, context: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.attn1(self.norm1(x), context=context if self.disable_self_attn else None) + x
        x = self.attn2(self.norm2(x), context=context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Transformer over the H*W positions of a feature map, with cross-attention to `context`.

    in_channels: feature channels. n_heads, d_head: attention heads (inner width n_heads*d_head).
    depth: number of transformer blocks. dropout: inside the blocks. context_dim: width of the
    context, an int or one per block. disable_self_attn: see BasicTransformerBlock. use_linear:
    project in/out with Linear layers on tokens instead of 1x1 convs. attn_type: attention mode.
    use_checkpoint: gradient checkpointing. sdp_backend: ignored.
    """

    def __init__(self, in_channels: int, n_heads: int, d_head: int, depth: int = 1, dropout: float = 0.0,
                 context_dim: Optional[Union[int, List[int]]] = None, disable_self_attn: bool = False,
                 use_linear: bool = False, attn_type: str = "softmax", use_checkpoint: bool = True, sdp_backend=None):
        super().__init__()
        if context_dim is None or isinstance(context_dim, int):
            context_dims = [context_dim] * depth
        else:
            context_dims = list(context_dim)
            if len(context_dims) != depth:
                if len(set(context_dims)) != 1:
                    raise ValueError(f"context_dim {context_dims} must have one entry per block (depth {depth})")
                context_dims = context_dims[:1] * depth
        self.in_channels = in_channels
        inner_dim = n_heads * d_head
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6)
        self.use_linear = use_linear
        if use_linear:
            self.proj_in = nn.Linear(in_channels, inner_dim)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner_dim, n_heads, d_head, dropout=dropout, context_dim=context_dims[d],
                                  disable_self_attn=disable_self_attn, attn_mode=attn_type, checkpoint=use_checkpoint)
            for d in range(depth)
        )
        if use_linear:
            self.proj_out = zero_module(nn.Linear(inner_dim, in_channels))
        else:
            self.proj_out = zero_module(nn.Conv2d(inner_dim, in_channels, kernel_size=1))

    def _project_in(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, H*W, inner)
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2).contiguous()  # (B, H*W, C)
        return self.proj_in(x) if self.use_linear else x

    def _project_out(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        # (B, H*W, inner) -> (B, C, H, W); with Linear projections a strided view, which the residual
        # sum that follows lays out (one copy fewer)
        if self.use_linear:
            return self.proj_out(x).transpose(1, 2).unflatten(2, (h, w))
        return self.proj_out(x.transpose(1, 2).unflatten(2, (h, w)).contiguous())

    def unet_forward(self, x: torch.Tensor, emb: torch.Tensor, context=None, **unused) -> torch.Tensor:
        """Call from a UNet block: only the cross-attention context is used."""
        return self(x, context)

    def forward(self, x: torch.Tensor, context: Optional[Union[torch.Tensor, List[torch.Tensor]]] = None) -> torch.Tensor:
        contexts = context if isinstance(context, list) else [context]
        _, _, h, w = x.shape
        x_in = x
        x = self._project_in(x)
        for i, block in enumerate(self.transformer_blocks):
            x = block(x, context=contexts[i if len(contexts) > 1 else 0])
        return x_in + self._project_out(x, h, w)  # x_in first: the sum takes its (contiguous) layout
