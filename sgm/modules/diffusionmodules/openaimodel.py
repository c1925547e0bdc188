"""The image UNet (ADM / Stable Diffusion layout) and its building blocks.

The block layout (input blocks, middle block, output blocks with skip connections) is built once in
`UNetBase`; `UNetModel` fills it with image layers and `VideoUNet` (video_model.py) with video layers,
so both lay out their state dicts exactly as the original checkpoints do.
"""
from typing import Callable, Iterable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attention import SpatialTransformer, maybe_checkpoint
from .util import avg_pool_nd, conv_nd, linear, normalization, timestep_embedding, zero_module


class TimestepBlock(nn.Module):
    """A layer that takes the timestep embedding as a second input."""

    def unet_forward(self, x, emb, **cond):
        return self(x, emb)


class TimestepEmbedSequential(nn.Sequential):
    """Runs its layers in order, handing each the conditioning it takes.

    A layer with an `unet_forward(x, emb, context=..., time_context=..., num_video_frames=...,
    image_only_indicator=...)` method gets the conditioning; any other layer is called as `layer(x)`.
    """

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: Optional[torch.Tensor] = None,
                image_only_indicator: Optional[torch.Tensor] = None, time_context: Optional[torch.Tensor] = None,
                num_video_frames: Optional[int] = None) -> torch.Tensor:
        cond = dict(context=context, image_only_indicator=image_only_indicator, time_context=time_context,
                    num_video_frames=num_video_frames)
        for layer in self:
            x = layer.unet_forward(x, emb, **cond) if hasattr(layer, "unet_forward") else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling (height and width; time too if `third_up`), then an optional conv.

    channels: input channels. use_conv: apply a 3x3 conv after upsampling. dims: 2 or 3 (3: the
    input is (B, C, T, H, W)). out_channels: conv output channels (default channels).
    padding, kernel_size: of the conv. third_up: also double T. scale_factor: upsampling factor.
    """

    def __init__(self, channels: int, use_conv: bool, dims: int = 2, out_channels: Optional[int] = None,
                 padding: int = 1, third_up: bool = False, kernel_size: int = 3, scale_factor: int = 2):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.dims = dims
        self.third_up = third_up
        self.scale_factor = scale_factor
        if use_conv:
            self.conv = conv_nd(dims, channels, self.out_channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.channels
        if self.dims == 3:
            t = x.shape[2] * (self.scale_factor if self.third_up else 1)
            x = F.interpolate(x, (t, x.shape[3] * self.scale_factor, x.shape[4] * self.scale_factor), mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=self.scale_factor, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """2x downsampling by a strided 3x3 conv (`use_conv`) or average pooling.

    channels: input channels. use_conv: strided conv instead of pooling. dims: 2 or 3.
    out_channels: output channels (must equal channels without a conv). padding: of the conv.
    third_down: also halve T (dims 3).
    """

    def __init__(self, channels: int, use_conv: bool, dims: int = 2, out_channels: Optional[int] = None,
                 padding: int = 1, third_down: bool = False):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.dims = dims
        stride = 2 if dims != 3 else ((2, 2, 2) if third_down else (1, 2, 2))
        if use_conv:
            self.op = conv_nd(dims, channels, self.out_channels, 3, stride=stride, padding=padding)
        else:
            assert self.channels == self.out_channels
            self.op = avg_pool_nd(dims, kernel_size=stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.channels
        return self.op(x)


class ResBlock(TimestepBlock):
    """Residual block conditioned on the timestep embedding (added, or FiLM with use_scale_shift_norm).

    channels: input channels. emb_channels: timestep embedding width. dropout: before the last conv.
    out_channels: output channels (default channels). use_conv: a kxk conv (not 1x1) on the skip
    path when channels change. use_scale_shift_norm: FiLM conditioning. dims: 2 or 3.
    use_checkpoint: gradient checkpointing. up, down: resample inside the block. kernel_size: conv
    kernel (int or per-dim list). exchange_temb_dims: the embedding arrives as (B, T, C) for a
    (B, C, T, H, W) input. skip_t_emb: no timestep conditioning (emb_channels unused).
    """

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: Optional[int] = None,
                 use_conv: bool = False, use_scale_shift_norm: bool = False, dims: int = 2,
                 use_checkpoint: bool = False, up: bool = False, down: bool = False,
                 kernel_size: Union[int, Sequence[int]] = 3, exchange_temb_dims: bool = False, skip_t_emb: bool = False):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_checkpoint = use_checkpoint
        self.use_scale_shift_norm = use_scale_shift_norm
        self.exchange_temb_dims = exchange_temb_dims
        padding = [k // 2 for k in kernel_size] if isinstance(kernel_size, Iterable) else kernel_size // 2

        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), conv_nd(dims, channels, self.out_channels, kernel_size, padding=padding)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False, dims), Upsample(channels, False, dims)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False, dims), Downsample(channels, False, dims)
        else:
            self.h_upd = self.x_upd = nn.Identity()

        self.skip_t_emb = skip_t_emb
        if skip_t_emb:
            assert not use_scale_shift_norm
            self.emb_layers = None
        else:
            emb_out = 2 * self.out_channels if use_scale_shift_norm else self.out_channels
            self.emb_layers = nn.Sequential(nn.SiLU(), linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            normalization(self.out_channels), nn.SiLU(), nn.Dropout(p=dropout),
            zero_module(conv_nd(dims, self.out_channels, self.out_channels, kernel_size, padding=padding)),
        )
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        elif use_conv:
            self.skip_connection = conv_nd(dims, channels, self.out_channels, kernel_size, padding=padding)
        else:
            self.skip_connection = conv_nd(dims, channels, self.out_channels, 1)

    def forward(self, x: torch.Tensor, emb: Optional[torch.Tensor]) -> torch.Tensor:
        return maybe_checkpoint(self._forward, x, emb, enabled=self.use_checkpoint)

    def _forward(self, x: torch.Tensor, emb: Optional[torch.Tensor]) -> torch.Tensor:
        if self.updown:
            h = self.h_upd(self.in_layers[:-1](x))
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        if self.skip_t_emb:
            return self.skip_connection(x) + self.out_layers(h)

        emb_out = self.emb_layers(emb).to(h.dtype)
        emb_out = emb_out[(...,) + (None,) * (h.ndim - emb_out.ndim)]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            if self.exchange_temb_dims:
                emb_out = emb_out.transpose(1, 2)  # (B, T, C, 1, 1) -> (B, C, T, 1, 1)
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class Timestep(nn.Module):
    """Sinusoidal embedding of a scalar per item: (N,) -> (N, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return timestep_embedding(t, self.dim)


def heads_for(ch: int, num_heads: int, num_head_channels: int):
    """(heads, head width) of an attention layer on `ch` channels: a fixed head count or a fixed head width."""
    if num_head_channels == -1:
        return num_heads, ch // num_heads
    return ch // num_head_channels, num_head_channels


class UNetBase(nn.Module):
    """Timestep/label embeddings, the UNet block layout and the forward pass shared by the image and video UNets.

    Subclasses call `_build(...)` with two factories: `make_resblock(ch_in, ch_out, up=, down=)` and
    `make_attention(ch, heads, dim_head, level, index, middle)` (returning None for no attention).
    """

    def _build_embeddings(self, model_channels: int, num_classes, adm_in_channels: Optional[int]):
        time_embed_dim = model_channels * 4
        self.time_embed = nn.Sequential(linear(model_channels, time_embed_dim), nn.SiLU(), linear(time_embed_dim, time_embed_dim))
        if num_classes is None:
            return time_embed_dim
        if isinstance(num_classes, int):
            self.label_emb = nn.Embedding(num_classes, time_embed_dim)
        elif num_classes == "continuous":
            self.label_emb = nn.Linear(1, time_embed_dim)
        elif num_classes == "timestep":
            self.label_emb = nn.Sequential(
                Timestep(model_channels),
                nn.Sequential(linear(model_channels, time_embed_dim), nn.SiLU(), linear(time_embed_dim, time_embed_dim)),
            )
        elif num_classes == "sequential":
            if adm_in_channels is None:
                raise ValueError("num_classes 'sequential' needs adm_in_channels (the width of the 'vector' conditioning)")
            self.label_emb = nn.Sequential(
                nn.Sequential(linear(adm_in_channels, time_embed_dim), nn.SiLU(), linear(time_embed_dim, time_embed_dim))
            )
        else:
            raise ValueError(f"num_classes must be an int, 'continuous', 'timestep', 'sequential' or None, got {num_classes!r}")
        return time_embed_dim

    def _build(self, *, in_channels: int, model_channels: int, out_channels: int, num_res_blocks: List[int],
               attention_resolutions, channel_mult, conv_resample: bool, dims: int, num_heads: int,
               num_head_channels: int, resblock_updown: bool, make_resblock: Callable, make_attention: Callable,
               time_downup: bool = False):
        if num_heads == -1 and num_head_channels == -1:
            raise ValueError("set either num_heads or num_head_channels")

        def block(*layers):
            return TimestepEmbedSequential(*[layer for layer in layers if layer is not None])

        def attention(ch, level, index, middle=False):
            heads, dim_head = heads_for(ch, num_heads, num_head_channels)
            return make_attention(ch, heads, dim_head, level, index, middle)

        # 1. Encoder: per level, res blocks (with attention at the chosen resolutions), then a downsample.
        self.input_blocks = nn.ModuleList([block(conv_nd(dims, in_channels, model_channels, 3, padding=1))])
        skip_chans, ch, ds = [model_channels], model_channels, 1
        for level, mult in enumerate(channel_mult):
            for index in range(num_res_blocks[level]):
                out = mult * model_channels
                attn = attention(out, level, index) if ds in attention_resolutions else None
                self.input_blocks.append(block(make_resblock(ch, out), attn))
                ch = out
                skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                down = (make_resblock(ch, ch, down=True) if resblock_updown
                        else Downsample(ch, conv_resample, dims=dims, out_channels=ch, **({"third_down": True} if time_downup else {})))
                self.input_blocks.append(block(down))
                skip_chans.append(ch)
                ds *= 2

        # 2. Middle: res block, attention, res block.
        self.middle_block = block(make_resblock(ch, ch), attention(ch, len(channel_mult) - 1, 0, middle=True), make_resblock(ch, ch))

        # 3. Decoder: per level (reversed), res blocks fed the matching skip, then an upsample.
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for index in range(num_res_blocks[level] + 1):
                out = model_channels * mult
                layers = [make_resblock(ch + skip_chans.pop(), out)]
                ch = out
                layers.append(attention(ch, level, index) if ds in attention_resolutions else None)
                if level and index == num_res_blocks[level]:
                    layers.append(make_resblock(ch, ch, up=True) if resblock_updown
                                  else Upsample(ch, conv_resample, dims=dims, out_channels=ch,
                                                **({"third_up": True} if time_downup else {})))
                    ds //= 2
                self.output_blocks.append(block(*layers))

        self.out = nn.Sequential(normalization(ch), nn.SiLU(), zero_module(conv_nd(dims, model_channels, out_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: Optional[torch.Tensor] = None,
                y: Optional[torch.Tensor] = None, **block_inputs) -> torch.Tensor:
        """x: (N, C_in, H, W); timesteps: (N,) noise levels (c_noise); context: (N, M, D) cross-attention
        tokens; y: (N, adm_in_channels) vector conditioning. Returns (N, C_out, H, W)."""
        if (y is not None) != (self.num_classes is not None):
            raise ValueError("pass y (the 'vector' conditioning) if and only if the model has num_classes set")
        wdtype = self.time_embed[0].weight.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(wdtype))
        if self.num_classes is not None:
            assert y.shape[0] == x.shape[0], "y must have one row per input item"
            emb = emb + self.label_emb(y.to(wdtype) if y.is_floating_point() else y)
        if context is not None:
            context = context.to(wdtype)
        h, hs = x.to(wdtype), []
        for module in self.input_blocks:
            h = module(h, emb, context=context, **block_inputs)
            hs.append(h)
        h = self.middle_block(h, emb, context=context, **block_inputs)
        for module in self.output_blocks:
            h = module(torch.cat([h, hs.pop()], dim=1), emb, context=context, **block_inputs)
        return self.out(h).to(x.dtype)


class UNetModel(UNetBase):
    """The image UNet of Stable Diffusion (stage 1 of the curriculum).

    in_channels, out_channels: latent channels in and out. model_channels: base width.
    num_res_blocks: res blocks per level (int or per-level list). attention_resolutions: downsample
    factors at which to attend (e.g. [4, 2, 1]). dropout: in res blocks and transformers.
    channel_mult: width multiplier per level. conv_resample: learned up/down convs. dims: 2.
    num_classes: None, int, "continuous", "timestep" or "sequential" (vector conditioning `y`).
    use_checkpoint: gradient checkpointing. num_heads / num_head_channels: fixed head count or head
    width (-1 for the other). num_heads_upsample: deprecated, ignored. use_scale_shift_norm: FiLM.
    resblock_updown: resample with res blocks. transformer_depth: blocks per transformer (int or per
    level). context_dim: cross-attention context width. disable_self_attentions: per level.
    num_attention_blocks: per level, how many res blocks get attention. disable_middle_self_attn,
    disable_middle_transformer: for the middle block. use_linear_in_transformer: Linear projections.
    spatial_transformer_attn_type: attention mode. adm_in_channels: width of `y` for "sequential".
    """

    def __init__(self, in_channels: int, model_channels: int, out_channels: int, num_res_blocks, attention_resolutions,
                 dropout: float = 0.0, channel_mult=(1, 2, 4, 8), conv_resample: bool = True, dims: int = 2,
                 num_classes=None, use_checkpoint: bool = False, num_heads: int = -1, num_head_channels: int = -1,
                 num_heads_upsample: int = -1, use_scale_shift_norm: bool = False, resblock_updown: bool = False,
                 transformer_depth=1, context_dim: Optional[int] = None, disable_self_attentions=None,
                 num_attention_blocks=None, disable_middle_self_attn: bool = False,
                 disable_middle_transformer: bool = False, use_linear_in_transformer: bool = False,
                 spatial_transformer_attn_type: str = "softmax", adm_in_channels: Optional[int] = None):
        super().__init__()
        self.in_channels, self.model_channels, self.out_channels = in_channels, model_channels, out_channels
        self.num_classes = num_classes
        levels = len(channel_mult)
        if isinstance(num_res_blocks, int):
            num_res_blocks = [num_res_blocks] * levels
        if len(num_res_blocks) != levels:
            raise ValueError("num_res_blocks must be an int or a list with one entry per channel_mult level")
        depth = [transformer_depth] * levels if isinstance(transformer_depth, int) else list(transformer_depth)
        if disable_self_attentions is not None and len(disable_self_attentions) != levels:
            raise ValueError("disable_self_attentions needs one entry per channel_mult level")
        if num_attention_blocks is not None and len(num_attention_blocks) != levels:
            raise ValueError("num_attention_blocks needs one entry per channel_mult level")
        self.num_res_blocks = num_res_blocks
        emb_dim = self._build_embeddings(model_channels, num_classes, adm_in_channels)

        def make_resblock(ch_in, ch_out, up=False, down=False):
            return ResBlock(ch_in, emb_dim, dropout, out_channels=ch_out, dims=dims, use_checkpoint=use_checkpoint,
                            use_scale_shift_norm=use_scale_shift_norm, up=up, down=down)

        def make_attention(ch, heads, dim_head, level, index, middle):
            if middle:
                if disable_middle_transformer:
                    return nn.Identity()
                disabled_sa, layer_depth = disable_middle_self_attn, depth[-1]
            else:
                if num_attention_blocks is not None and index >= num_attention_blocks[level]:
                    return None
                disabled_sa = bool(disable_self_attentions[level]) if disable_self_attentions is not None else False
                layer_depth = depth[level]
            return SpatialTransformer(ch, heads, dim_head, depth=layer_depth, context_dim=context_dim,
                                      disable_self_attn=disabled_sa, use_linear=use_linear_in_transformer,
                                      attn_type=spatial_transformer_attn_type, use_checkpoint=use_checkpoint)

        self._build(in_channels=in_channels, model_channels=model_channels, out_channels=out_channels,
                    num_res_blocks=num_res_blocks, attention_resolutions=attention_resolutions,
                    channel_mult=channel_mult, conv_resample=conv_resample, dims=dims, num_heads=num_heads,
                    num_head_channels=num_head_channels, resblock_updown=resblock_updown,
                    make_resblock=make_resblock, make_attention=make_attention)
