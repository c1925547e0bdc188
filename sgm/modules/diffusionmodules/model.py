"""The KL autoencoder's convolutional encoder and decoder (the SD VAE layout)."""
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def nonlinearity(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x)


def Normalize(in_channels: int, num_groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=num_groups, num_channels=in_channels, eps=1e-6, affine=True)


class Upsample(nn.Module):
    """2x nearest upsampling, then a 3x3 conv if `with_conv`."""

    def __init__(self, in_channels: int, with_conv: bool):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x


class Downsample(nn.Module):
    """2x downsampling: a stride-2 3x3 conv on the input padded right and bottom, or average pooling."""

    def __init__(self, in_channels: int, with_conv: bool):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_conv:
            return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class ResnetBlock(nn.Module):
    """Pre-activation residual block (GroupNorm, SiLU, 3x3 conv) x 2.

    in_channels, out_channels: widths (out defaults to in). conv_shortcut: 3x3 (not 1x1) conv on the
    skip path when widths differ. dropout: before the second conv. temb_channels: width of an
    optional timestep embedding (0: none).
    """

    def __init__(self, *, in_channels: int, out_channels: Optional[int] = None, conv_shortcut: bool = False,
                 dropout: float, temb_channels: int = 512):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_conv_shortcut = conv_shortcut
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if temb_channels > 0:
            self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            if conv_shortcut:
                self.conv_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
            else:
                self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor, temb: Optional[torch.Tensor] = None, **unused) -> torch.Tensor:
        h = self.conv1(nonlinearity(self.norm1(x)))
        if temb is not None:
            h = h + self.temb_proj(nonlinearity(temb))[:, :, None, None]
        h = self.conv2(self.dropout(nonlinearity(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions, through SDPA."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.norm = Normalize(in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, kernel_size=1)
        self.k = nn.Conv2d(in_channels, in_channels, kernel_size=1)
        self.v = nn.Conv2d(in_channels, in_channels, kernel_size=1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, kernel_size=1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        q, k, v = self.q(x), self.k(x), self.v(x)
        b, c, h, w = q.shape
        q, k, v = (t.flatten(2).transpose(1, 2).unsqueeze(1).contiguous() for t in (q, k, v))  # (B, 1, H*W, C)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, 1, H*W, C)
        return out.squeeze(1).transpose(1, 2).unflatten(2, (h, w))  # (B, C, H, W), a view

    def forward(self, x: torch.Tensor, **unused) -> torch.Tensor:
        return x + self.proj_out(self.attention(x))


ATTN_TYPES = ("vanilla", "vanilla-xformers", "none")


def make_attn(in_channels: int, attn_type: str = "vanilla", attn_kwargs=None) -> nn.Module:
    """The autoencoder's attention layer. NOTE: "vanilla-xformers" runs the same SDPA code as "vanilla"."""
    if attn_type not in ATTN_TYPES:
        raise ValueError(f"attn_type must be one of {ATTN_TYPES}, got {attn_type!r}")
    if attn_type == "none":
        return nn.Identity()
    return AttnBlock(in_channels)


class Encoder(nn.Module):
    """Image -> latent moments. (B, in_channels, H, W) -> (B, 2*z_channels if double_z else z_channels, H/f, W/f)
    with f = 2**(len(ch_mult) - 1).

    ch: base width. out_ch: unused here (shared ddconfig). ch_mult: width multiplier per level.
    num_res_blocks: res blocks per level. attn_resolutions: resolutions (relative to `resolution`)
    with attention. dropout: in res blocks. resamp_with_conv: learned downsampling. in_channels: image
    channels. resolution: nominal input size (only locates attn_resolutions). z_channels: latent
    channels. double_z: output mean and log-variance. use_linear_attn: not supported.
    attn_type: "vanilla", "vanilla-xformers" (same) or "none".
    """

    def __init__(self, *, ch: int, out_ch: int, ch_mult: Sequence[int] = (1, 2, 4, 8), num_res_blocks: int,
                 attn_resolutions: Sequence[int], dropout: float = 0.0, resamp_with_conv: bool = True,
                 in_channels: int, resolution: int, z_channels: int, double_z: bool = True,
                 use_linear_attn: bool = False, attn_type: str = "vanilla", **ignore_kwargs):
        super().__init__()
        if use_linear_attn:
            raise ValueError("use_linear_attn is not supported; use attn_type 'vanilla'")
        self.ch = ch
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.resolution = resolution
        self.in_channels = in_channels
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)
        curr_res = resolution
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = ch * in_ch_mult[i_level], ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(in_channels=block_in, out_channels=block_out, temb_channels=0, dropout=dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(make_attn(block_in, attn_type=attn_type))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in, resamp_with_conv)
                curr_res //= 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=dropout)
        self.mid.attn_1 = make_attn(block_in, attn_type=attn_type)
        self.mid.block_2 = ResnetBlock(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=dropout)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i_level, down in enumerate(self.down):
            for i_block, block in enumerate(down.block):
                h = block(h)
                if len(down.attn) > 0:
                    h = down.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = down.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(nonlinearity(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent -> image. (B, z_channels, h, w) -> (B, out_ch, h*f, w*f).

    Arguments as in Encoder, plus give_pre_end (return features before the output conv) and
    tanh_out (squash the output). Keyword arguments of `forward` (e.g. `timesteps` for the video
    decoder) reach every res block, attention layer and the output conv.
    """

    def __init__(self, *, ch: int, out_ch: int, ch_mult: Sequence[int] = (1, 2, 4, 8), num_res_blocks: int,
                 attn_resolutions: Sequence[int], dropout: float = 0.0, resamp_with_conv: bool = True,
                 in_channels: int, resolution: int, z_channels: int, give_pre_end: bool = False,
                 tanh_out: bool = False, use_linear_attn: bool = False, attn_type: str = "vanilla", **ignorekwargs):
        super().__init__()
        if use_linear_attn:
            raise ValueError("use_linear_attn is not supported; use attn_type 'vanilla'")
        self.ch = ch
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.resolution = resolution
        self.in_channels = in_channels
        self.give_pre_end = give_pre_end
        self.tanh_out = tanh_out
        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        make_attn_cls, make_resblock, make_conv = self._make_attn(), self._make_resblock(), self._make_conv()

        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = make_resblock(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=dropout)
        self.mid.attn_1 = make_attn_cls(block_in, attn_type=attn_type)
        self.mid.block_2 = make_resblock(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=dropout)
        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.append(make_resblock(in_channels=block_in, out_channels=block_out, temb_channels=0, dropout=dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(make_attn_cls(block_in, attn_type=attn_type))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample(block_in, resamp_with_conv)
                curr_res *= 2
            self.up.insert(0, up)  # index by level, lowest resolution last
        self.norm_out = Normalize(block_in)
        self.conv_out = make_conv(block_in, out_ch, kernel_size=3, stride=1, padding=1)

    def _make_attn(self) -> Callable:
        return make_attn

    def _make_resblock(self) -> Callable:
        return ResnetBlock

    def _make_conv(self) -> Callable:
        return nn.Conv2d

    def get_last_layer(self, **kwargs) -> torch.Tensor:
        return self.conv_out.weight

    def _conv_out(self, h: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.conv_out(h)

    def forward(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_1(h, None, **kwargs)
        h = self.mid.attn_1(h, **kwargs)
        h = self.mid.block_2(h, None, **kwargs)
        for i_level in reversed(range(self.num_resolutions)):
            up = self.up[i_level]
            for i_block, block in enumerate(up.block):
                h = block(h, None, **kwargs)
                if len(up.attn) > 0:
                    h = up.attn[i_block](h, **kwargs)
            if i_level != 0:
                h = up.upsample(h)
        if self.give_pre_end:
            return h
        h = self._conv_out(nonlinearity(self.norm_out(h)), **kwargs)
        return torch.tanh(h) if self.tanh_out else h
