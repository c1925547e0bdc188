"""Noise-level schedules for sampling: a decreasing sequence of sigmas, by default ending in 0."""
from abc import abstractmethod

import numpy as np
import torch

from ...util import append_zero


def make_beta_schedule(schedule: str, n_timestep: int, linear_start: float = 1e-4, linear_end: float = 2e-2) -> np.ndarray:
    """The "linear" DDPM beta schedule of Stable Diffusion (linear in sqrt(beta)), float64."""
    if schedule != "linear":
        raise ValueError(f"only the 'linear' beta schedule is supported, got {schedule!r}")
    return np.linspace(linear_start**0.5, linear_end**0.5, n_timestep, dtype=np.float64) ** 2


def generate_roughly_equally_spaced_steps(num_substeps: int, max_step: int) -> np.ndarray:
    return np.linspace(max_step - 1, 0, num_substeps, endpoint=False).astype(int)[::-1]


class Discretization:
    """`discretization(n)` -> n sigmas from high to low (+ a final 0 with do_append_zero), float32."""

    def __call__(self, n: int, do_append_zero: bool = True, device="cpu", flip: bool = False) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"the number of sampling steps must be at least 1, got {n}")
        sigmas = self.get_sigmas(n, device=device)
        sigmas = append_zero(sigmas) if do_append_zero else sigmas
        return torch.flip(sigmas, (0,)) if flip else sigmas

    @abstractmethod
    def get_sigmas(self, n: int, device="cpu") -> torch.Tensor:
        """n decreasing noise levels."""


class EDMDiscretization(Discretization):
    """Karras et al. 2022 (EDM) schedule: sigma_i = (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho.

    sigma_min, sigma_max: ends of the schedule (SVD samples from sigma_max 700). rho: curvature.
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.rho = rho

    def get_sigmas(self, n: int, device="cpu") -> torch.Tensor:
        ramp = torch.linspace(0, 1, n, device=device)
        min_inv_rho = self.sigma_min ** (1 / self.rho)
        max_inv_rho = self.sigma_max ** (1 / self.rho)
        return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** self.rho


class LegacyDDPMDiscretization(Discretization):
    """The noise levels of Stable Diffusion's 1000-step DDPM schedule, sigma = sqrt((1 - abar) / abar),
    subsampled to n roughly equally spaced steps.

    linear_start, linear_end: ends of the linear-in-sqrt beta schedule. num_timesteps: training steps.
    """

    def __init__(self, linear_start: float = 0.00085, linear_end: float = 0.0120, num_timesteps: int = 1000):
        self.num_timesteps = num_timesteps
        betas = make_beta_schedule("linear", num_timesteps, linear_start=linear_start, linear_end=linear_end)
        self.alphas_cumprod = np.cumprod(1.0 - betas, axis=0)

    def get_sigmas(self, n: int, device="cpu") -> torch.Tensor:
        if n > self.num_timesteps:
            raise ValueError(f"at most {self.num_timesteps} steps, got {n}")
        if n < self.num_timesteps:
            alphas_cumprod = self.alphas_cumprod[generate_roughly_equally_spaced_steps(n, self.num_timesteps)]
        else:
            alphas_cumprod = self.alphas_cumprod
        sigmas = torch.tensor((1 - alphas_cumprod) / alphas_cumprod, dtype=torch.float32, device=device) ** 0.5
        return torch.flip(sigmas, (0,))
