"""lambda(sigma): the per-noise-level weight of the denoising loss ||D(x + sigma n, sigma) - x||^2."""
from abc import ABC, abstractmethod

import torch


class DiffusionLossWeighting(ABC):
    @abstractmethod
    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        """Weights, same shape as `sigma`."""


class UnitWeighting(DiffusionLossWeighting):
    """lambda = 1."""

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(sigma)


class EDMWeighting(DiffusionLossWeighting):
    """lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2 of EDM preconditioning
    (Karras et al. 2022, Table 1), so the network's own target has unit weight.

    sigma_data: standard deviation of the data (0.5 in EDM).
    """

    def __init__(self, sigma_data: float = 0.5):
        self.sigma_data = sigma_data

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2


class VWeighting(EDMWeighting):
    """lambda = (sigma^2 + 1) / sigma^2: the EDM weighting with unit data variance, which makes the
    x0 loss equal to the v-prediction loss (SVD: v-scaling with EDM c_noise)."""

    def __init__(self):
        super().__init__(sigma_data=1.0)


class EpsWeighting(DiffusionLossWeighting):
    """lambda = 1 / sigma^2: the x0 loss becomes the epsilon-prediction loss (DDPM)."""

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma**-2.0
