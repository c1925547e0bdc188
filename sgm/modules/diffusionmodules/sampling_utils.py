"""Small numerical pieces of the samplers (after k-diffusion)."""
from typing import Tuple

import numpy as np
import torch

from ...util import append_dims


def linear_multistep_coeff(order: int, t: np.ndarray, i: int, j: int) -> float:
    """Weight of the derivative j steps back in the order-`order` Adams-Bashforth step from t[i] to
    t[i+1]: the exact integral of its Lagrange basis polynomial over [t[i], t[i+1]]."""
    if order - 1 > i:
        raise ValueError(f"order {order} too high for step {i}")
    t = np.asarray(t, dtype=np.float64)
    basis = np.poly1d([1.0])
    for k in range(order):
        if k != j:
            basis = basis * np.poly1d([1.0, -t[i - k]]) / (t[i - j] - t[i - k])
    antiderivative = basis.integ()
    return float(antiderivative(t[i + 1]) - antiderivative(t[i]))


def get_ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sigma_down, sigma_up) of an ancestral step: go deterministically to sigma_down, then add fresh
    noise of std sigma_up, so that sigma_down^2 + sigma_up^2 = sigma_to^2. eta=0 is deterministic."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    sigma_up = torch.minimum(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE derivative dx/dsigma = (x - D(x)) / sigma."""
    return (x - denoised) / append_dims(sigma, x.ndim)


def to_neg_log_sigma(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.log().neg()


def to_sigma(neg_log_sigma: torch.Tensor) -> torch.Tensor:
    return neg_log_sigma.neg().exp()
