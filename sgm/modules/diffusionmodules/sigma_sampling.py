"""Training noise levels: which sigma each training example is noised to."""
from typing import Dict, Optional

import torch

from ...util import default, instantiate_from_config


class EDMSampling:
    """log(sigma) ~ N(P_mean, P_std^2) (Karras et al. 2022, "EDM", section 5).

    p_mean: P_mean, the mean of log sigma (EDM: -1.2; SVD shifts it up for video, see configs/svd*.yaml).
    p_std: P_std, the standard deviation of log sigma (EDM: 1.2).
    """

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2):
        if p_std <= 0:
            raise ValueError(f"p_std must be positive, got {p_std}")
        self.p_mean = p_mean
        self.p_std = p_std

    def __call__(self, n_samples: int, rand: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(n_samples,) noise levels; `rand` replaces the standard normal draws (for tests)."""
        log_sigma = self.p_mean + self.p_std * default(rand, lambda: torch.randn((n_samples,)))
        return log_sigma.exp()


class DiscreteSampling:
    """sigma uniform over the `num_idx` levels of a discretization (DDPM-style training).

    discretization_config: the noise levels (e.g. LegacyDDPMDiscretization). num_idx: how many.
    do_append_zero, flip: how the table is built (ascending, without zero, by default; the same
    table as DiscreteDenoiser's).
    """

    def __init__(self, discretization_config: Dict, num_idx: int, do_append_zero: bool = False, flip: bool = True):
        self.num_idx = num_idx
        self.sigmas = instantiate_from_config(discretization_config)(num_idx, do_append_zero=do_append_zero, flip=flip)

    def idx_to_sigma(self, idx: torch.Tensor) -> torch.Tensor:
        return self.sigmas[idx]

    def __call__(self, n_samples: int, rand: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(n_samples,) noise levels; `rand` gives the level indices instead of random ones."""
        idx = default(rand, lambda: torch.randint(0, self.num_idx, (n_samples,)))
        return self.idx_to_sigma(idx)
