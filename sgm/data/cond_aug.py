"""Noise augmentation of the conditioning frame (SVD's `cond_aug`).

SVD conditions on the first frame plus Gaussian noise of a random level sigma, with log sigma ~ N(mean, std^2)
(mean -3.0, std 0.5 in the paper's training); the network also sees sigma (`cond_aug`) as a vector condition.
"""
from typing import Optional, Tuple

import torch

__all__ = ["sample_cond_aug", "noise_cond_frame"]


def sample_cond_aug(mean: float = -3.0, std: float = 0.5, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One noise level sigma = exp(mean + std * n), n ~ N(0, 1), as a float32 scalar tensor."""
    if std < 0:
        raise ValueError(f"cond_aug std must be >= 0, got {std}")
    n = torch.randn((), generator=generator)
    return torch.exp(mean + std * n).float()


def noise_cond_frame(
    frame: torch.Tensor, sigma: torch.Tensor, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(cond_frames, cond_frames_without_noise): `frame + sigma * randn` and `frame` itself (3, H, W)."""
    noise = torch.randn(frame.shape, generator=generator, dtype=frame.dtype)
    return frame + sigma * noise, frame
