"""The temporal VAE decoder of SVD: the image decoder with temporal res blocks and a temporal output
conv, so decoded frames are consistent over time (SVD paper, Sec. 4; finetuned decoder)."""
from functools import partial
from typing import Callable, List, Union

import torch
import torch.nn as nn
from einops import rearrange

from ..diffusionmodules.model import AttnBlock, Decoder, ResnetBlock, make_attn
from ..diffusionmodules.openaimodel import ResBlock
from ..diffusionmodules.util import timestep_embedding
from ..video_attention import VideoTransformerBlock


def _learned_or_fixed(module: nn.Module, alpha: float, merge_strategy: str) -> None:
    if merge_strategy == "fixed":
        module.register_buffer("mix_factor", torch.tensor([float(alpha)]))
    elif merge_strategy == "learned":
        module.mix_factor = nn.Parameter(torch.tensor([float(alpha)]))
    else:
        raise ValueError(f"merge_strategy must be 'fixed' or 'learned', got {merge_strategy!r}")


def _alpha(module: nn.Module) -> torch.Tensor:
    return module.mix_factor if module.merge_strategy == "fixed" else torch.sigmoid(module.mix_factor)


class VideoResBlock(ResnetBlock):
    """A ResnetBlock followed by a temporal ResBlock over the frames of each clip.

    out_channels: output width. dropout: as in ResnetBlock. video_kernel_size: temporal conv kernel
    (default [3, 1, 1]). alpha, merge_strategy: blend of the temporal result. Other ResnetBlock
    arguments pass through.

    NOTE: here alpha weights the temporal branch (`alpha * temporal + (1 - alpha) * spatial`), the
    reverse of the UNet's AlphaBlender; the checkpoints were trained this way.
    """

    def __init__(self, out_channels: int, *args, dropout: float = 0.0, video_kernel_size=3, alpha: float = 0.0,
                 merge_strategy: str = "learned", **kwargs):
        super().__init__(*args, out_channels=out_channels, dropout=dropout, **kwargs)
        self.time_stack = ResBlock(channels=out_channels, emb_channels=0, dropout=dropout, dims=3,
                                   use_scale_shift_norm=False, use_conv=False, up=False, down=False,
                                   kernel_size=[3, 1, 1] if video_kernel_size is None else video_kernel_size,
                                   use_checkpoint=False, skip_t_emb=True)
        self.merge_strategy = merge_strategy
        _learned_or_fixed(self, alpha, merge_strategy)

    def forward(self, x: torch.Tensor, temb=None, skip_video: bool = False, timesteps: int = None) -> torch.Tensor:
        x = super().forward(x, temb)  # (B*T, C, H, W)
        if skip_video:
            return x
        x_spatial = rearrange(x, "(b t) c h w -> b c t h w", t=timesteps)
        x_temporal = self.time_stack(x_spatial, None)
        alpha = _alpha(self).to(x.dtype)
        return rearrange(alpha * x_temporal + (1.0 - alpha) * x_spatial, "b c t h w -> (b t) c h w")


class AE3DConv(nn.Conv2d):
    """A 2-d conv followed by a 3-d conv over (T, H, W) of each clip.

    in_channels, out_channels: of the 2-d conv. video_kernel_size: kernel of the 3-d conv.
    Remaining arguments go to nn.Conv2d.
    """

    def __init__(self, in_channels: int, out_channels: int, video_kernel_size=3, *args, **kwargs):
        super().__init__(in_channels, out_channels, *args, **kwargs)
        if isinstance(video_kernel_size, (list, tuple)):
            padding = [int(k // 2) for k in video_kernel_size]
        else:
            padding = int(video_kernel_size // 2)
        self.time_mix_conv = nn.Conv3d(out_channels, out_channels, kernel_size=video_kernel_size, padding=padding)

    def forward(self, input: torch.Tensor, timesteps: int = None, skip_video: bool = False) -> torch.Tensor:
        x = super().forward(input)
        if skip_video:
            return x
        x = rearrange(x, "(b t) c h w -> b c t h w", t=timesteps)
        return rearrange(self.time_mix_conv(x), "b c t h w -> (b t) c h w")


class VideoBlock(AttnBlock):
    """Spatial self-attention followed by single-head attention across frames, blended by alpha
    (the decoder's time_mode "all" / "attn-only").

    in_channels: width. alpha, merge_strategy: blend of the temporal result.
    """

    def __init__(self, in_channels: int, alpha: float = 0, merge_strategy: str = "learned"):
        super().__init__(in_channels)
        self.time_mix_block = VideoTransformerBlock(dim=in_channels, n_heads=1, d_head=in_channels,
                                                    checkpoint=False, ff_in=True, attn_mode="softmax")
        time_embed_dim = in_channels * 4
        self.video_time_embed = nn.Sequential(nn.Linear(in_channels, time_embed_dim), nn.SiLU(),
                                              nn.Linear(time_embed_dim, in_channels))
        self.merge_strategy = merge_strategy
        _learned_or_fixed(self, alpha, merge_strategy)

    def forward(self, x: torch.Tensor, timesteps: int = None, skip_video: bool = False) -> torch.Tensor:
        if skip_video:
            return super().forward(x)
        x_in = x
        x = self.attention(x)
        h, w = x.shape[2:]
        x = rearrange(x, "b c h w -> b (h w) c")
        frame_idx = torch.arange(timesteps, device=x.device).repeat(x.shape[0] // timesteps)
        emb = self.video_time_embed(timestep_embedding(frame_idx, self.in_channels).to(x.dtype))[:, None, :]
        x_mix = self.time_mix_block(x + emb, timesteps=timesteps)
        alpha = _alpha(self).to(x.dtype)
        x = alpha * x + (1.0 - alpha) * x_mix
        x = rearrange(x, "b (h w) c -> b c h w", h=h, w=w)
        return x_in + self.proj_out(x)


def make_time_attn(in_channels: int, attn_type: str = "vanilla", attn_kwargs=None, alpha: float = 0,
                   merge_strategy: str = "learned") -> nn.Module:
    if attn_type not in ("vanilla", "vanilla-xformers"):
        raise ValueError(f"attn_type {attn_type!r} is not supported for spatio-temporal attention; use 'vanilla'")
    return VideoBlock(in_channels, alpha=alpha, merge_strategy=merge_strategy)


class VideoDecoder(Decoder):
    """The SVD temporal decoder; `forward(z, timesteps=T)` decodes (B*T, z, h, w) clips of T frames.

    video_kernel_size: temporal kernel ([3, 1, 1] in SVD). alpha, merge_strategy: initial blend of
    the temporal layers. time_mode: "conv-only" (SVD: temporal res blocks and output conv),
    "attn-only" (temporal attention only) or "all". Other arguments as in Decoder.

    Receptive field over time: each temporal res block has two kernel-3 convs (+-2 frames) and the
    output conv one (+-1), so with the SVD layout a frame sees 2 * (2 + 3 * len(ch_mult)) + 1 = 29
    neighbours on each side (see `temporal_receptive_field`).
    """

    available_time_modes = ("all", "conv-only", "attn-only")

    def __init__(self, *args, video_kernel_size: Union[int, List[int]] = 3, alpha: float = 0.0,
                 merge_strategy: str = "learned", time_mode: str = "conv-only", **kwargs):
        if time_mode not in self.available_time_modes:
            raise ValueError(f"time_mode must be one of {self.available_time_modes}, got {time_mode!r}")
        self.video_kernel_size = video_kernel_size
        self.alpha = alpha
        self.merge_strategy = merge_strategy
        self.time_mode = time_mode
        super().__init__(*args, **kwargs)

    def get_last_layer(self, skip_time_mix: bool = False, **kwargs) -> torch.Tensor:
        if self.time_mode == "attn-only":
            return self.conv_out.weight
        return self.conv_out.weight if skip_time_mix else self.conv_out.time_mix_conv.weight

    def _make_attn(self) -> Callable:
        if self.time_mode == "conv-only":
            return make_attn
        return partial(make_time_attn, alpha=self.alpha, merge_strategy=self.merge_strategy)

    def _make_conv(self) -> Callable:
        if self.time_mode == "attn-only":
            return nn.Conv2d
        return partial(AE3DConv, video_kernel_size=self.video_kernel_size)

    def _make_resblock(self) -> Callable:
        if self.time_mode == "attn-only":
            return ResnetBlock
        return partial(VideoResBlock, video_kernel_size=self.video_kernel_size, alpha=self.alpha,
                       merge_strategy=self.merge_strategy)

    def _conv_out(self, h: torch.Tensor, **kwargs) -> torch.Tensor:
        if isinstance(self.conv_out, AE3DConv):
            return self.conv_out(h, **kwargs)
        return self.conv_out(h)

    def temporal_receptive_field(self) -> int:
        """Frames on each side that can influence one output frame."""
        radius = 0
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                radius += m.kernel_size[0] // 2
            elif isinstance(m, VideoTransformerBlock):
                return -1  # temporal attention sees the whole clip
        return radius


@torch.no_grad()
def init_temporal_as_identity_(decoder: VideoDecoder) -> VideoDecoder:
    """Make the temporal layers of a "conv-only" VideoDecoder pass their input through, so that it decodes
    each frame exactly as the image decoder with the same spatial weights (the start of a temporal-decoder
    finetune, or a video decoder carried over from an image autoencoder). In place; returns the decoder.

    Temporal res blocks: their last convolution is zeroed (the block is `x + h`, so it returns x, and any
    blend of x with x is x). Output conv: the 3-d mixing kernel becomes a centred Dirac, bias zero.
    """
    if decoder.time_mode != "conv-only":
        raise ValueError(f"identity initialisation covers time_mode 'conv-only', not {decoder.time_mode!r}")
    for module in decoder.modules():
        if isinstance(module, VideoResBlock):
            last = module.time_stack.out_layers[-1]
            last.weight.zero_()
            if last.bias is not None:
                last.bias.zero_()
        elif isinstance(module, AE3DConv):
            nn.init.dirac_(module.time_mix_conv.weight)
            nn.init.zeros_(module.time_mix_conv.bias)
    return decoder
