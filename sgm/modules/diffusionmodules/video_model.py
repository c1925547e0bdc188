"""The video UNet of Stable Video Diffusion: the SD image UNet with a temporal res block after every
spatial res block and a temporal transformer after every spatial transformer, each blended in by a
learned alpha (Blattmann et al. 2023, "Stable Video Diffusion", Sec. 3 and App. D)."""
from typing import List, Optional, Sequence, Union

import torch

from ..video_attention import SpatialVideoTransformer
from .openaimodel import ResBlock, UNetBase
from .util import AlphaBlender


class VideoResBlock(ResBlock):
    """A spatial ResBlock followed by a temporal ResBlock (3-d conv over frames), blended by alpha.

    channels, emb_channels, dropout, out_channels, use_conv, use_scale_shift_norm, dims,
    use_checkpoint, up, down: as in ResBlock (the spatial part). video_kernel_size: kernel of the
    temporal convs, e.g. [3, 1, 1]. merge_strategy, merge_factor: the AlphaBlender's strategy and
    initial value.
    """

    def __init__(self, channels: int, emb_channels: int, dropout: float, video_kernel_size: Union[int, List[int]] = 3,
                 merge_strategy: str = "fixed", merge_factor: float = 0.5, out_channels: Optional[int] = None,
                 use_conv: bool = False, use_scale_shift_norm: bool = False, dims: int = 2,
                 use_checkpoint: bool = False, up: bool = False, down: bool = False):
        super().__init__(channels, emb_channels, dropout, out_channels=out_channels, use_conv=use_conv,
                         use_scale_shift_norm=use_scale_shift_norm, dims=dims, use_checkpoint=use_checkpoint, up=up, down=down)
        out = out_channels or channels
        self.time_stack = ResBlock(out, emb_channels, dropout=dropout, dims=3, out_channels=out,
                                   use_scale_shift_norm=False, use_conv=False, kernel_size=video_kernel_size,
                                   use_checkpoint=use_checkpoint, exchange_temb_dims=True)
        self.time_mixer = AlphaBlender(alpha=merge_factor, merge_strategy=merge_strategy, rearrange_pattern="b t -> b 1 t 1 1")

    def unet_forward(self, x, emb, num_video_frames=None, image_only_indicator=None, **unused):
        return self(x, emb, num_video_frames, image_only_indicator)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_video_frames: int,
                image_only_indicator: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = super().forward(x, emb)  # (B*T, C, H, W)
        x_spatial = x.unflatten(0, (-1, num_video_frames)).transpose(1, 2)  # (B, C, T, H, W), a view
        x_temporal = self.time_stack(x_spatial, emb.unflatten(0, (-1, num_video_frames)))  # emb: (B, T, C)
        x = self.time_mixer(x_spatial=x_spatial, x_temporal=x_temporal, image_only_indicator=image_only_indicator)
        return x.transpose(1, 2).flatten(0, 1)  # (B*T, C, H, W)


class VideoUNet(UNetBase):
    """The SVD denoiser network. Inputs are frames flattened into the batch: (B*T, C, H, W).

    in_channels: noisy latent + concatenated conditioning-frame latent (8 for SVD). model_channels:
    base width. out_channels: latent channels. num_res_blocks: res blocks per level.
    attention_resolutions: downsample factors with attention. dropout: everywhere.
    channel_mult: width multiplier per level. conv_resample: learned up/down convs. dims: 2.
    num_classes: "sequential" for SVD's vector conditioning (fps, motion bucket, cond_aug).
    use_checkpoint: gradient checkpointing. num_heads / num_head_channels: fixed head count or
    width. num_heads_upsample: ignored. use_scale_shift_norm: FiLM. resblock_updown: resample with
    res blocks. transformer_depth: per level (int or list). transformer_depth_middle: middle block
    depth (default the last level's). context_dim: width of the CLIP image context.
    time_downup: also resample time. time_context_dim: width of a separate temporal context.
    extra_ff_mix_layer: extra input MLP in the temporal transformers. use_spatial_context: temporal
    cross-attention to the spatial context. merge_strategy, merge_factor: spatial/temporal blend.
    spatial_transformer_attn_type: "softmax" or "softmax-xformers" (both SDPA).
    video_kernel_size: temporal conv kernel. use_linear_in_transformer: Linear projections.
    adm_in_channels: width of the vector conditioning. disable_temporal_crossattention: no temporal
    cross-attention. max_ddpm_temb_period: period of the frame-index embedding.
    """

    def __init__(self, in_channels: int, model_channels: int, out_channels: int, num_res_blocks: int,
                 attention_resolutions: Sequence[int], dropout: float = 0.0, channel_mult: Sequence[int] = (1, 2, 4, 8),
                 conv_resample: bool = True, dims: int = 2, num_classes=None, use_checkpoint: bool = False,
                 num_heads: int = -1, num_head_channels: int = -1, num_heads_upsample: int = -1,
                 use_scale_shift_norm: bool = False, resblock_updown: bool = False,
                 transformer_depth: Union[List[int], int] = 1, transformer_depth_middle: Optional[int] = None,
                 context_dim: Optional[int] = None, time_downup: bool = False, time_context_dim: Optional[int] = None,
                 extra_ff_mix_layer: bool = False, use_spatial_context: bool = False, merge_strategy: str = "fixed",
                 merge_factor: float = 0.5, spatial_transformer_attn_type: str = "softmax",
                 video_kernel_size: Union[int, List[int]] = 3, use_linear_in_transformer: bool = False,
                 adm_in_channels: Optional[int] = None, disable_temporal_crossattention: bool = False,
                 max_ddpm_temb_period: int = 10000):
        super().__init__()
        if context_dim is None:
            raise ValueError("VideoUNet needs context_dim (the width of the image embedding it cross-attends to)")
        self.in_channels, self.model_channels, self.out_channels = in_channels, model_channels, out_channels
        self.num_classes = num_classes
        self.use_checkpoint = use_checkpoint
        levels = len(channel_mult)
        depth = [transformer_depth] * levels if isinstance(transformer_depth, int) else list(transformer_depth)
        depth_middle = depth[-1] if transformer_depth_middle is None else transformer_depth_middle
        emb_dim = self._build_embeddings(model_channels, num_classes, adm_in_channels)

        def make_resblock(ch_in, ch_out, up=False, down=False):
            return VideoResBlock(ch_in, emb_dim, dropout, video_kernel_size=video_kernel_size, merge_strategy=merge_strategy,
                                 merge_factor=merge_factor, out_channels=ch_out, dims=dims, use_checkpoint=use_checkpoint,
                                 use_scale_shift_norm=use_scale_shift_norm, up=up, down=down)

        def make_attention(ch, heads, dim_head, level, index, middle):
            return SpatialVideoTransformer(
                ch, heads, dim_head, depth=depth_middle if middle else depth[level], context_dim=context_dim,
                time_context_dim=time_context_dim, dropout=dropout, ff_in=extra_ff_mix_layer,
                use_spatial_context=use_spatial_context, merge_strategy=merge_strategy, merge_factor=merge_factor,
                checkpoint=use_checkpoint, use_linear=use_linear_in_transformer, attn_mode=spatial_transformer_attn_type,
                disable_self_attn=False, disable_temporal_crossattention=disable_temporal_crossattention,
                max_time_embed_period=max_ddpm_temb_period)

        self._build(in_channels=in_channels, model_channels=model_channels, out_channels=out_channels,
                    num_res_blocks=[num_res_blocks] * levels, attention_resolutions=attention_resolutions,
                    channel_mult=channel_mult, conv_resample=conv_resample, dims=dims, num_heads=num_heads,
                    num_head_channels=num_head_channels, resblock_updown=resblock_updown,
                    make_resblock=make_resblock, make_attention=make_attention, time_downup=time_downup)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: Optional[torch.Tensor] = None,
                y: Optional[torch.Tensor] = None, time_context: Optional[torch.Tensor] = None,
                num_video_frames: Optional[int] = None, image_only_indicator: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B*T, C_in, H, W); timesteps: (B*T,); context: (B*T, M, D); y: (B*T, adm_in_channels);
        num_video_frames: T; image_only_indicator: (B, T), 1 where a frame is a still image."""
        if num_video_frames is None:
            raise ValueError("VideoUNet needs num_video_frames (frames per video in the flattened batch)")
        if x.shape[0] % num_video_frames:
            raise ValueError(f"batch of {x.shape[0]} frames is not a whole number of {num_video_frames}-frame videos")
        if image_only_indicator is None:
            image_only_indicator = torch.zeros(x.shape[0] // num_video_frames, num_video_frames, device=x.device)
        return super().forward(x, timesteps, context=context, y=y, time_context=time_context,
                               num_video_frames=num_video_frames, image_only_indicator=image_only_indicator)
