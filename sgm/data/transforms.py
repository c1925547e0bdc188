"""Image/frame transforms: resize to cover a target size, crop to it, and scale pixels to [-1, 1]."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["CROP_MODES", "resize_cover_crop", "to_signed_unit"]

CROP_MODES = ("center", "random")


def to_signed_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (..., H, W, 3) -> float32 (..., 3, H, W) in [-1, 1]."""
    return pixels.movedim(-1, -3).float().div(127.5).sub(1.0)


def resize_cover_crop(
    x: torch.Tensor, size: Tuple[int, int], crop: str = "center", generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Resize (N, C, h, w) so it covers `size` = (H, W) keeping its aspect ratio, then crop to exactly (H, W).

    Args:
        x: images (N, C, h, w), float; a video's frames share one resize and one crop.
        size: output (H, W).
        crop: "center", or "random" (uniform offset along the axis that overhangs).
        generator: random generator for the "random" crop (None: torch's global one).
    """
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    out_h, out_w = size
    h, w = x.shape[-2:]
    scale = max(out_h / h, out_w / w)
    new_h, new_w = max(out_h, round(h * scale)), max(out_w, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1)
    if crop == "center":
        top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    else:
        top = int(torch.randint(0, new_h - out_h + 1, (), generator=generator))
        left = int(torch.randint(0, new_w - out_w + 1, (), generator=generator))
    return x[..., top : top + out_h, left : left + out_w]
