"""Consistency models on the EDM noise scale (Song et al. 2023, "Consistency Models"; Luo et al. 2023,
"Latent Consistency Models"): the boundary-condition parametrisation, a schedule that steps over a
teacher's grid, and multistep consistency sampling.

A consistency function maps any point x_sigma of a probability-flow ODE trajectory to the trajectory's
clean end x_0. It is built from a denoiser D(x, sigma) -> x0 (the SVD network with its v-scaling
preconditioning) so that it is exactly the identity at the smallest noise level sigma_min:

    f(x, sigma) = c_skip(sigma) x + c_out(sigma) D(x, sigma)
    u = s (sigma - sigma_min)
    c_skip(sigma) = sigma_data^2 / (u^2 + sigma_data^2)
    c_out(sigma)  = u / sqrt(u^2 + sigma_data^2)

c_skip(sigma_min) = 1 and c_out(sigma_min) = 0 (the boundary condition f(x, sigma_min) = x). Song et al.
put c_out -> sigma_data around a raw network output; D is already a denoised estimate, so here c_out -> 1,
as in LCM, whose timestep scaling s (10 there) makes f equal D everywhere but close to sigma_min, so a
student initialised from the teacher starts as the teacher's one-step x0 prediction.
"""
import logging
from typing import Callable, Dict, Optional

import torch

from ...util import append_dims, default, instantiate_from_config
from .sampling import BaseDiffusionSampler

logger = logging.getLogger(__name__)

TEACHER_DISCRETIZATION = {"target": "sgm.modules.diffusionmodules.discretizer.EDMDiscretization",
                          "params": {"sigma_max": 700.0}}
IDENTITY_GUIDER = {"target": "sgm.modules.diffusionmodules.guiders.IdentityGuider"}


class ConsistencyBoundary:
    """The coefficients (c_skip, c_out) of f(x, sigma) = c_skip x + c_out D(x, sigma).

    sigma_data: the data standard deviation in the formula (0.5 as in EDM and LCM). sigma_min: the noise
    level where f is the identity (the end of the teacher's grid: 0.002 for SVD's EDM schedule).
    timestep_scaling: s, how fast f turns from the identity into the denoiser above sigma_min.
    """

    def __init__(self, sigma_data: float = 0.5, sigma_min: float = 0.002, timestep_scaling: float = 10.0):
        if sigma_data <= 0 or timestep_scaling <= 0:
            raise ValueError(f"sigma_data and timestep_scaling must be positive, got {sigma_data} and {timestep_scaling}")
        self.sigma_data = sigma_data
        self.sigma_min = sigma_min
        self.timestep_scaling = timestep_scaling

    def __call__(self, sigma: torch.Tensor):
        u = self.timestep_scaling * (sigma - self.sigma_min).clamp(min=0.0)
        c_skip = self.sigma_data**2 / (u**2 + self.sigma_data**2)
        c_out = u / (u**2 + self.sigma_data**2) ** 0.5
        return c_skip, c_out

    def apply(self, x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """f(x, sigma) from x (N, ...) and D(x, sigma) (N, ...) at per-item sigma (N,)."""
        c_skip, c_out = self(append_dims(sigma, x.ndim).to(x.dtype))
        return c_skip * x + c_out * denoised


class TeacherGridDiscretization:
    """`num_steps` noise levels taken from a teacher's grid of `num_teacher_steps` levels, evenly spaced in
    index from the top (LCM's skipping-step schedule), plus a final 0: the student is only ever trained
    on the teacher's grid, so it is sampled there too.

    discretization_config: the teacher's schedule (default EDM with sigma_max 700, SVD's). num_teacher_steps:
    N, the length of the teacher's grid used in distillation (without its final 0).
    """

    def __init__(self, discretization_config: Optional[Dict] = None, num_teacher_steps: int = 25):
        if num_teacher_steps < 2:
            raise ValueError(f"num_teacher_steps must be at least 2, got {num_teacher_steps}")
        self.teacher = instantiate_from_config(default(discretization_config, TEACHER_DISCRETIZATION))
        self.num_teacher_steps = num_teacher_steps

    def indices(self, n: int) -> torch.Tensor:
        """(n,) indices into the teacher's grid: 0, N/n, 2N/n, ... (floored)."""
        if not 1 <= n <= self.num_teacher_steps:
            raise ValueError(f"consistency sampling takes 1 to {self.num_teacher_steps} steps "
                             f"(the distillation grid), got {n}")
        return torch.div(torch.arange(n) * self.num_teacher_steps, n, rounding_mode="floor")

    def __call__(self, n: int, do_append_zero: bool = True, device="cpu", flip: bool = False) -> torch.Tensor:
        grid = self.teacher(self.num_teacher_steps, do_append_zero=False, device=device)  # (N,) high -> low
        sigmas = grid[self.indices(n).to(grid.device)]
        if do_append_zero:
            sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
        return torch.flip(sigmas, (0,)) if flip else sigmas


class ConsistencySampler(BaseDiffusionSampler):
    """Multistep consistency sampling (Song et al. 2023, Alg. 1): x0 = f(x, sigma_i), then re-noise x0 to
    sigma_{i+1}; the last x0 is the sample. One network call per step and no guidance (a distilled student
    carries the teacher's guidance).

    The re-noising noise is sqrt(1 - eta^2) eps_hat + eta z, with eps_hat = (x - x0) / sigma_i the noise
    the step removed and z fresh noise (the gamma of Trajectory Consistency Distillation, Zheng et al.
    2024). eta = 1 is Song et al.'s sampler (each step draws a new sample around x0); eta = 0 stays on the
    trajectory of the starting noise, like DDIM, so the video is a deterministic function of that noise
    and more steps refine the same video the one-step student and the teacher make from it.

    num_steps: default number of steps (1 to num_teacher_steps). num_teacher_steps, discretization_config:
    the teacher's grid the student was distilled on (see TeacherGridDiscretization). boundary_config:
    params of ConsistencyBoundary, the same as in the distillation loss. eta: in [0, 1], see above.
    guider_config: IdentityGuider by default; a guider here would apply guidance a second time.
    verbose, device: as BaseDiffusionSampler.
    """

    def __init__(self, num_steps: Optional[int] = 4, num_teacher_steps: int = 25,
                 discretization_config: Optional[Dict] = None, boundary_config: Optional[Dict] = None,
                 eta: float = 0.0, guider_config: Optional[Dict] = None, verbose: bool = False, device: str = "cuda"):
        super().__init__(discretization_config=default(discretization_config, TEACHER_DISCRETIZATION),
                         num_steps=num_steps, guider_config=default(guider_config, IDENTITY_GUIDER),
                         verbose=verbose, device=device)
        self.discretization = TeacherGridDiscretization(default(discretization_config, TEACHER_DISCRETIZATION),
                                                        num_teacher_steps)
        self.boundary = ConsistencyBoundary(**(boundary_config or {}))
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        self.eta = eta

    def sampler_step(self, sigma: torch.Tensor, next_sigma: torch.Tensor, denoiser: Callable, x: torch.Tensor,
                     cond: Dict, uc: Optional[Dict] = None) -> torch.Tensor:
        """sigma, next_sigma: (N,). x0 = f(x, sigma), re-noised to next_sigma (returned as is at 0)."""
        x0 = self.boundary.apply(x, self.denoise(x, denoiser, sigma, cond, uc), sigma)
        if float(next_sigma.max()) == 0.0:
            return x0
        eps = (x - x0) / append_dims(sigma, x.ndim)  # the noise this step removed
        if self.eta > 0:
            eps = (1 - self.eta**2) ** 0.5 * eps + self.eta * self.noise_sampler(x0)
        return x0 + eps * append_dims(next_sigma, x0.ndim)

    def run_step(self, i, x, s_in, sigmas, denoiser, cond, uc, state):
        return self.sampler_step(s_in * sigmas[i], s_in * sigmas[i + 1], denoiser, x, cond, uc)
