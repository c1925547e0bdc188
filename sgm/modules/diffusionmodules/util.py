"""Layer helpers shared by the UNets: sinusoidal embeddings, normalisation, n-d convs, the alpha blender."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000, repeat_only: bool = False) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, `[cos | sin]` halves.

    timesteps: (N,). Returns (N, dim), float32 unless `repeat_only`.
    """
    if repeat_only:
        return timesteps[:, None].expand(-1, dim)
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(timesteps.device)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def zero_module(module: nn.Module) -> nn.Module:
    """Zero the parameters of `module` (a no-op on the meta device) and return it."""
    for p in module.parameters():
        p.detach().zero_()
    return module


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input and weight dtypes, cast back to the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def normalization(channels: int) -> nn.Module:
    """The UNet's normalisation: 32 groups, eps 1e-5, in float32."""
    return GroupNorm32(32, channels)


def conv_nd(dims: int, *args, **kwargs) -> nn.Module:
    if dims == 1:
        return nn.Conv1d(*args, **kwargs)
    if dims == 2:
        return nn.Conv2d(*args, **kwargs)
    if dims == 3:
        return nn.Conv3d(*args, **kwargs)
    raise ValueError(f"unsupported dimensions: {dims}")


def avg_pool_nd(dims: int, *args, **kwargs) -> nn.Module:
    if dims == 1:
        return nn.AvgPool1d(*args, **kwargs)
    if dims == 2:
        return nn.AvgPool2d(*args, **kwargs)
    if dims == 3:
        return nn.AvgPool3d(*args, **kwargs)
    raise ValueError(f"unsupported dimensions: {dims}")


def linear(*args, **kwargs) -> nn.Linear:
    return nn.Linear(*args, **kwargs)


# The patterns the UNet and the video decoder use, as plain views (no einops call in a compiled graph).
_ALPHA_SHAPES = {
    "b t -> (b t) 1 1": lambda alpha: alpha.reshape(-1, 1, 1),  # against (B*T, S, C) tokens
    "b t -> b 1 t 1 1": lambda alpha: alpha[:, None, :, None, None],  # against (B, C, T, H, W) features
}


class AlphaBlender(nn.Module):
    """Mixes a spatial and a temporal branch: `alpha * x_spatial + (1 - alpha) * x_temporal`.

    alpha: initial mix factor (a logit for the learned strategies).
    merge_strategy: "fixed" (alpha as is, a buffer), "learned" (sigmoid(alpha), a parameter) or
        "learned_with_images" (like "learned", but alpha = 1, i.e. purely spatial, for frames flagged
        as still images by `image_only_indicator`).
    rearrange_pattern: how the (B, T) alpha map is shaped to broadcast against the features.
    """

    strategies = ("learned", "fixed", "learned_with_images")

    def __init__(self, alpha: float, merge_strategy: str = "learned_with_images", rearrange_pattern: str = "b t -> (b t) 1 1"):
        super().__init__()
        if merge_strategy not in self.strategies:
            raise ValueError(f"merge_strategy must be one of {self.strategies}, got {merge_strategy!r}")
        self.merge_strategy = merge_strategy
        self.rearrange_pattern = rearrange_pattern
        if merge_strategy == "fixed":
            self.register_buffer("mix_factor", torch.tensor([float(alpha)]))
        else:
            self.mix_factor = nn.Parameter(torch.tensor([float(alpha)]))

    def get_alpha(self, image_only_indicator: Optional[torch.Tensor]) -> torch.Tensor:
        if self.merge_strategy == "fixed":
            return self.mix_factor
        if self.merge_strategy == "learned":
            return torch.sigmoid(self.mix_factor)
        if image_only_indicator is None:
            raise ValueError("merge_strategy 'learned_with_images' needs image_only_indicator of shape (B, T)")
        alpha = torch.where(
            image_only_indicator.bool(),
            torch.ones(1, 1, device=image_only_indicator.device),
            torch.sigmoid(self.mix_factor)[..., None],
        )
        shape = _ALPHA_SHAPES.get(self.rearrange_pattern)
        return shape(alpha) if shape is not None else rearrange(alpha, self.rearrange_pattern)

    def forward(self, x_spatial: torch.Tensor, x_temporal: torch.Tensor,
                image_only_indicator: Optional[torch.Tensor] = None) -> torch.Tensor:
        alpha = self.get_alpha(image_only_indicator).to(x_spatial.dtype)
        return alpha * x_spatial + (1.0 - alpha) * x_temporal
