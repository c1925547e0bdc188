"""Temporal attention of the video UNet: a transformer over frames at each spatial position, mixed
into the spatial transformer with a learned alpha (SVD paper, Sec. 3 / Blattmann et al. 2023)."""
from typing import Optional

import torch
import torch.nn as nn

from .attention import CrossAttention, FeedForward, SpatialTransformer, check_attn_mode, maybe_checkpoint
from .diffusionmodules.util import AlphaBlender, linear, timestep_embedding


class VideoTransformerBlock(nn.Module):
    """Attention across the T frames of each token position.

    dim: token width. n_heads, d_head: attention heads. dropout: in attention and MLPs.
    context_dim: width of the cross-attention context (None: no context, attn2 attends to x).
    gated_ff: GEGLU MLPs. checkpoint: gradient checkpointing. timesteps: fixed number of frames
    (else given per call). ff_in: an extra input MLP (norm_in + ff_in) before attention.
    inner_dim: working width (default dim; ff_in maps dim -> inner_dim). attn_mode: attention mode.
    disable_self_attn: attn1 attends to the context. disable_temporal_crossattention: no attn2.
    switch_temporal_ca_to_sa: attn2 is a second self-attention.
    """

    def __init__(self, dim: int, n_heads: int, d_head: int, dropout: float = 0.0, context_dim: Optional[int] = None,
                 gated_ff: bool = True, checkpoint: bool = True, timesteps: Optional[int] = None, ff_in: bool = False,
                 inner_dim: Optional[int] = None, attn_mode: str = "softmax", disable_self_attn: bool = False,
                 disable_temporal_crossattention: bool = False, switch_temporal_ca_to_sa: bool = False):
        super().__init__()
        check_attn_mode(attn_mode)
        self.ff_in = ff_in or inner_dim is not None
        inner_dim = dim if inner_dim is None else inner_dim
        assert n_heads * d_head == inner_dim, "n_heads * d_head must equal the inner width"
        self.is_res = inner_dim == dim
        if self.ff_in:
            self.norm_in = nn.LayerNorm(dim)
            self.ff_in = FeedForward(dim, dim_out=inner_dim, dropout=dropout, glu=gated_ff)
        self.timesteps = timesteps
        self.disable_self_attn = disable_self_attn
        self.attn1 = CrossAttention(inner_dim, context_dim=context_dim if disable_self_attn else None,
                                    heads=n_heads, dim_head=d_head, dropout=dropout)
        self.ff = FeedForward(inner_dim, dim_out=dim, dropout=dropout, glu=gated_ff)
        self.switch_temporal_ca_to_sa = switch_temporal_ca_to_sa
        if disable_temporal_crossattention:
            if switch_temporal_ca_to_sa:
                raise ValueError("switch_temporal_ca_to_sa needs the temporal cross-attention enabled")
            self.attn2 = None
        else:
            self.norm2 = nn.LayerNorm(inner_dim)
            self.attn2 = CrossAttention(inner_dim, context_dim=None if switch_temporal_ca_to_sa else context_dim,
                                        heads=n_heads, dim_head=d_head, dropout=dropout)
        self.norm1 = nn.LayerNorm(inner_dim)
        self.norm3 = nn.LayerNorm(inner_dim)
        self.checkpoint = checkpoint

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None, timesteps: Optional[int] = None) -> torch.Tensor:
        timesteps = self.timesteps or timesteps
        assert timesteps, "the number of frames must be given"
        return maybe_checkpoint(self._forward, x, context, timesteps, enabled=self.checkpoint)

    def _forward(self, x: torch.Tensor, context: Optional[torch.Tensor], timesteps: int) -> torch.Tensor:
        bt, s, c = x.shape  # (B*T, S, C)
        x = x.unflatten(0, (-1, timesteps)).transpose(1, 2).flatten(0, 1)  # (B*S, T, C)
        if self.ff_in:
            h = self.ff_in(self.norm_in(x))
            x = h + x if self.is_res else h
        if self.disable_self_attn:
            x = self.attn1(self.norm1(x), context=context) + x
        else:
            x = self.attn1(self.norm1(x)) + x
        if self.attn2 is not None:
            ctx = None if self.switch_temporal_ca_to_sa else context
            x = self.attn2(self.norm2(x), context=ctx) + x
        h = self.ff(self.norm3(x))
        x = h + x if self.is_res else h
        return x.unflatten(0, (-1, s)).transpose(1, 2).flatten(0, 1)  # (B*T, S, C)


class SpatialVideoTransformer(SpatialTransformer):
    """A SpatialTransformer whose every block is followed by a VideoTransformerBlock over frames,
    blended with the spatial result by an AlphaBlender.

    in_channels, n_heads, d_head, depth, dropout, use_linear, context_dim: as in SpatialTransformer.
    use_spatial_context: the temporal blocks cross-attend to the first frame's spatial context
    (SVD: the CLIP image embedding). timesteps: fixed frame count. merge_strategy, merge_factor: the
    AlphaBlender's strategy and initial value. time_context_dim: width of a separate temporal context.
    ff_in: extra input MLP in the temporal blocks. checkpoint: gradient checkpointing.
    time_depth: accepted for compatibility (one temporal block per spatial block).
    attn_mode, disable_self_attn, disable_temporal_crossattention: see the blocks.
    max_time_embed_period: period of the frame-index sinusoidal embedding.
    """

    def __init__(self, in_channels: int, n_heads: int, d_head: int, depth: int = 1, dropout: float = 0.0,
                 use_linear: bool = False, context_dim: Optional[int] = None, use_spatial_context: bool = False,
                 timesteps: Optional[int] = None, merge_strategy: str = "fixed", merge_factor: float = 0.5,
                 time_context_dim: Optional[int] = None, ff_in: bool = False, checkpoint: bool = False,
                 time_depth: int = 1, attn_mode: str = "softmax", disable_self_attn: bool = False,
                 disable_temporal_crossattention: bool = False, max_time_embed_period: int = 10000):
        super().__init__(in_channels, n_heads, d_head, depth=depth, dropout=dropout, attn_type=attn_mode,
                         use_checkpoint=checkpoint, context_dim=context_dim, use_linear=use_linear,
                         disable_self_attn=disable_self_attn)
        self.time_depth = time_depth
        self.depth = depth
        self.max_time_embed_period = max_time_embed_period
        inner_dim = n_heads * d_head
        if use_spatial_context:
            time_context_dim = context_dim
        self.time_stack = nn.ModuleList(
            VideoTransformerBlock(inner_dim, n_heads, d_head, dropout=dropout, context_dim=time_context_dim,
                                  timesteps=timesteps, checkpoint=checkpoint, ff_in=ff_in, inner_dim=inner_dim,
                                  attn_mode=attn_mode, disable_self_attn=disable_self_attn,
                                  disable_temporal_crossattention=disable_temporal_crossattention)
            for _ in range(depth)
        )
        self.use_spatial_context = use_spatial_context
        time_embed_dim = in_channels * 4
        self.time_pos_embed = nn.Sequential(linear(in_channels, time_embed_dim), nn.SiLU(), linear(time_embed_dim, in_channels))
        self.time_mixer = AlphaBlender(alpha=merge_factor, merge_strategy=merge_strategy)

    def _time_context(self, context, time_context, timesteps: int, hw: int) -> Optional[torch.Tensor]:
        """Context of the temporal blocks: (B, M, D), one row per video, which the attention spreads over
        the video's H*W positions (its rows of x are consecutive), or (B*H*W, M, D)."""
        if self.use_spatial_context:
            if context is None or context.ndim != 3:
                raise ValueError("use_spatial_context needs a (B*T, M, D) context")
            # NOTE: every frame of a video carries the same image context; the first frame's is used.
            return context[::timesteps]
        if time_context is None:
            return None
        time_context = time_context.repeat_interleave(hw, dim=0)  # (B*H*W, ...)
        return time_context[:, None] if time_context.ndim == 2 else time_context

    def unet_forward(self, x, emb, context=None, time_context=None, num_video_frames=None, image_only_indicator=None):
        """Call from a video UNet block."""
        return self(x, context, time_context, num_video_frames, image_only_indicator)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None, time_context: Optional[torch.Tensor] = None,
                timesteps: Optional[int] = None, image_only_indicator: Optional[torch.Tensor] = None) -> torch.Tensor:
        _, _, h, w = x.shape  # (B*T, C, H, W)
        x_in = x
        time_context = self._time_context(context, time_context, timesteps, h * w)
        x = self._project_in(x)  # (B*T, H*W, inner)

        frame_idx = torch.arange(timesteps, device=x.device).repeat(x.shape[0] // timesteps)
        t_emb = timestep_embedding(frame_idx, self.in_channels, max_period=self.max_time_embed_period)
        emb = self.time_pos_embed(t_emb.to(x.dtype))[:, None, :]  # (B*T, 1, C)

        for block, mix_block in zip(self.transformer_blocks, self.time_stack):
            x = block(x, context=context)
            x_mix = mix_block(x + emb, context=time_context, timesteps=timesteps)
            x = self.time_mixer(x_spatial=x, x_temporal=x_mix, image_only_indicator=image_only_indicator)
        return x_in + self._project_out(x, h, w)  # x_in first: the sum takes its (contiguous) layout
