"""The denoiser contract shared by training and every sampler:
`denoiser(network, x, sigma, cond, **model_inputs) -> x0`, the network preconditioned by a scaling."""
from typing import Dict, Union

import torch
import torch.nn as nn

from ...util import append_dims, instantiate_from_config
from .denoiser_scaling import DenoiserScaling


class Denoiser(nn.Module):
    """D(x, sigma) = c_skip x + c_out F(c_in x, c_noise, cond) (EDM eq. 7).

    scaling_config: the preconditioning (e.g. VScalingWithEDMcNoise for SVD).
    """

    def __init__(self, scaling_config: Dict):
        super().__init__()
        self.scaling: DenoiserScaling = instantiate_from_config(scaling_config)

    def possibly_quantize_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma

    def possibly_quantize_c_noise(self, c_noise: torch.Tensor) -> torch.Tensor:
        return c_noise

    def forward(self, network: nn.Module, input: torch.Tensor, sigma: torch.Tensor, cond: Dict,
                **additional_model_inputs) -> torch.Tensor:
        """input: (N, C, H, W) noisy latents; sigma: (N,) noise levels. Returns the denoised (N, C, H, W)."""
        sigma = self.possibly_quantize_sigma(sigma)
        sigma_shape = sigma.shape
        sigma = append_dims(sigma, input.ndim)
        c_skip, c_out, c_in, c_noise = self.scaling(sigma)
        c_noise = self.possibly_quantize_c_noise(c_noise.reshape(sigma_shape))
        return network(input * c_in, c_noise, cond, **additional_model_inputs) * c_out + input * c_skip


class DiscreteDenoiser(Denoiser):
    """A denoiser for networks trained on a discrete timestep index (Stable Diffusion): sigma snaps
    to the nearest of `num_idx` training noise levels and c_noise becomes that level's index.

    scaling_config: preconditioning (EpsScaling / VScaling). num_idx: number of training timesteps.
    discretization_config: their noise levels (LegacyDDPMDiscretization). do_append_zero, flip: how
    the level table is built (ascending, without zero, by default). quantize_c_noise: pass the index
    (True) or sigma itself as c_noise.
    """

    def __init__(self, scaling_config: Dict, num_idx: int, discretization_config: Dict, do_append_zero: bool = False,
                 quantize_c_noise: bool = True, flip: bool = True):
        super().__init__(scaling_config)
        discretization = instantiate_from_config(discretization_config)
        sigmas = discretization(num_idx, do_append_zero=do_append_zero, flip=flip, device="cpu")
        # NOTE: kept as a persistent buffer as in sgm, whose checkpoints carry `denoiser.sigmas`.
        self.register_buffer("sigmas", sigmas)
        self.quantize_c_noise = quantize_c_noise
        self.num_idx = num_idx

    def sigma_to_idx(self, sigma: torch.Tensor) -> torch.Tensor:
        dists = sigma - self.sigmas.to(sigma.device)[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape)

    def idx_to_sigma(self, idx: Union[torch.Tensor, int]) -> torch.Tensor:
        return self.sigmas[idx]

    def possibly_quantize_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.idx_to_sigma(self.sigma_to_idx(sigma))

    def possibly_quantize_c_noise(self, c_noise: torch.Tensor) -> torch.Tensor:
        return self.sigma_to_idx(c_noise) if self.quantize_c_noise else c_noise
