"""Preconditioning of the network (Karras et al. 2022, "EDM", Table 1): for noise level sigma,
D(x, sigma) = c_skip * x + c_out * F(c_in * x, c_noise)."""
from abc import ABC, abstractmethod
from typing import Tuple

import torch

Scalings = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class DenoiserScaling(ABC):
    @abstractmethod
    def __call__(self, sigma: torch.Tensor) -> Scalings:
        """(c_skip, c_out, c_in, c_noise) for noise levels `sigma`."""


class EDMScaling(DenoiserScaling):
    """EDM preconditioning; sigma_data: standard deviation of the data."""

    def __init__(self, sigma_data: float = 0.5):
        self.sigma_data = sigma_data

    def __call__(self, sigma: torch.Tensor) -> Scalings:
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2) ** 0.5
        c_in = 1 / (sigma**2 + sd2) ** 0.5
        c_noise = 0.25 * sigma.log()
        return c_skip, c_out, c_in, c_noise


class EpsScaling(DenoiserScaling):
    """Epsilon prediction (DDPM); c_noise is sigma itself (a discrete denoiser maps it to a timestep)."""

    def __call__(self, sigma: torch.Tensor) -> Scalings:
        c_skip = torch.ones_like(sigma)
        c_out = -sigma
        c_in = 1 / (sigma**2 + 1.0) ** 0.5
        c_noise = sigma.clone()
        return c_skip, c_out, c_in, c_noise


class VScaling(DenoiserScaling):
    """v prediction (Salimans & Ho 2022) with unit data variance; c_noise is sigma."""

    def __call__(self, sigma: torch.Tensor) -> Scalings:
        c_skip = 1.0 / (sigma**2 + 1.0)
        c_out = -sigma / (sigma**2 + 1.0) ** 0.5
        c_in = 1.0 / (sigma**2 + 1.0) ** 0.5
        c_noise = sigma.clone()
        return c_skip, c_out, c_in, c_noise


class VScalingWithEDMcNoise(VScaling):
    """v prediction with EDM's continuous noise input c_noise = log(sigma) / 4 (SVD)."""

    def __call__(self, sigma: torch.Tensor) -> Scalings:
        c_skip, c_out, c_in, _ = super().__call__(sigma)
        return c_skip, c_out, c_in, 0.25 * sigma.log()
