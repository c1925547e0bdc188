"""Latent regularizers of the autoencoders."""
from typing import Any, Dict, Tuple

import torch
import torch.nn as nn

from ...distributions.distributions import DiagonalGaussianDistribution


class AbstractRegularizer(nn.Module):
    """Maps encoder output to a latent and a log dict (with the regularization loss)."""

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, Any]]:
        raise NotImplementedError

    def get_trainable_parameters(self):
        return []


class IdentityRegularizer(AbstractRegularizer):
    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, dict]:
        return z, {}


class DiagonalGaussianRegularizer(AbstractRegularizer):
    """Treats the encoder output as [mean | logvar] and returns a sample (or the mean, `sample=False`)
    with the KL to N(0, I) per item, averaged over the batch, as `kl_loss`."""

    def __init__(self, sample: bool = True):
        super().__init__()
        self.sample = sample

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, dict]:
        posterior = DiagonalGaussianDistribution(z)
        z = posterior.sample() if self.sample else posterior.mode()
        kl_loss = posterior.kl()
        return z, {"kl_loss": kl_loss.sum() / kl_loss.shape[0]}
