"""Samplers of the probability-flow ODE / SDE over a discretization (after k-diffusion).

Every sampler sees only the guided denoiser `D(x, sigma) -> x0` and the sigmas. One loop
(`BaseDiffusionSampler.__call__`) owns the progress bar and the per-step callback; each sampler is a
short `step`. `sampler(denoiser, x, cond, uc)` starts from unit noise `x` (it is scaled to the first
sigma here) and never modifies `x` in place.
"""
import logging
import math
from typing import Callable, Dict, Optional, Union

import torch
from tqdm.auto import tqdm

from ...util import append_dims, default, instantiate_from_config
from .sampling_utils import get_ancestral_step, linear_multistep_coeff, randn_like, to_d, to_neg_log_sigma, to_sigma

logger = logging.getLogger(__name__)

DEFAULT_GUIDER = {"target": "sgm.modules.diffusionmodules.guiders.IdentityGuider"}
StepCallback = Callable[[Dict], None]


class BaseDiffusionSampler:
    """discretization_config: the sigma schedule. num_steps: default number of steps.
    guider_config: guidance (default none). verbose: show a progress bar. device: kept for config
    compatibility; sigmas are made on the device of the noise.
    """

    def __init__(self, discretization_config: Dict, num_steps: Optional[int] = None, guider_config: Optional[Dict] = None,
                 verbose: bool = False, device: str = "cuda"):
        self.num_steps = num_steps
        self.discretization = instantiate_from_config(discretization_config)
        self.guider = instantiate_from_config(default(guider_config, DEFAULT_GUIDER))
        self.verbose = verbose
        self.device = device

    def prepare_sampling_loop(self, x: torch.Tensor, cond: Dict, uc: Optional[Dict] = None, num_steps: Optional[int] = None):
        num_steps = self.num_steps if num_steps is None else num_steps
        if num_steps is None:
            raise ValueError("number of sampling steps not set: pass num_steps or set sampler_config.params.num_steps")
        sigmas = self.discretization(num_steps, device=x.device)
        uc = default(uc, cond)
        x = x * torch.sqrt(1.0 + sigmas[0] ** 2.0)  # unit noise -> noise at the first sigma (never in place)
        s_in = x.new_ones([x.shape[0]])
        return x, s_in, sigmas, len(sigmas), cond, uc

    def denoise(self, x: torch.Tensor, denoiser: Callable, sigma: torch.Tensor, cond: Dict, uc: Dict) -> torch.Tensor:
        """One guided evaluation of the denoiser at per-item noise levels sigma (N,)."""
        return self.guider(denoiser(*self.guider.prepare_inputs(x, sigma, cond, uc)), sigma)

    def step(self, i: int, x: torch.Tensor, sigmas: torch.Tensor, model: Callable, state: Dict,
             generator: Optional[torch.Generator]) -> torch.Tensor:
        """Advance x from sigmas[i] to sigmas[i+1]; `model(x, sigma_vec)` is the guided denoiser."""
        raise NotImplementedError

    def __call__(self, denoiser: Callable, x: torch.Tensor, cond: Dict, uc: Optional[Dict] = None,
                 num_steps: Optional[int] = None, callback: Optional[StepCallback] = None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Sample from unit noise x (N, C, H, W). callback(info) is called after every step with
        i, num_steps, x, denoised, sigma and sigma_next. generator: for the stochastic samplers."""
        x, s_in, sigmas, num_sigmas, cond, uc = self.prepare_sampling_loop(x, cond, uc, num_steps)
        state: Dict = {}

        def model(x_: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            state["denoised"] = self.denoise(x_, denoiser, sigma, cond, uc)
            return state["denoised"]

        steps = range(num_sigmas - 1)
        if self.verbose:
            steps = tqdm(steps, desc=f"{type(self).__name__}", total=num_sigmas - 1)
        for i in steps:
            x = self.step(i, x, sigmas, lambda x_, s: model(x_, s_in * s), state, generator)
            if callback is not None:
                callback({"i": i, "num_steps": num_sigmas - 1, "x": x, "denoised": state.get("denoised"),
                          "sigma": sigmas[i], "sigma_next": sigmas[i + 1]})
        return x


class SingleStepDiffusionSampler(BaseDiffusionSampler):
    def euler_step(self, x: torch.Tensor, d: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        return x + dt * d


class EDMSampler(SingleStepDiffusionSampler):
    """EDM stochastic sampler (Karras et al. 2022, Alg. 2) with Euler steps; Heun adds the correction.

    s_churn: total noise re-injected over the run (0: deterministic ODE). s_tmin, s_tmax: sigma range
    where churn applies. s_noise: scale of the injected noise. Other arguments as BaseDiffusionSampler.
    """

    def __init__(self, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                 *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.s_churn, self.s_tmin, self.s_tmax, self.s_noise = s_churn, s_tmin, s_tmax, s_noise

    def possible_correction_step(self, euler_step, x, d, dt, next_sigma, model) -> torch.Tensor:
        return euler_step

    def step(self, i, x, sigmas, model, state, generator):
        sigma, next_sigma = sigmas[i], sigmas[i + 1]
        n = len(sigmas) - 1
        gamma = min(self.s_churn / n, 2**0.5 - 1) if self.s_tmin <= sigma <= self.s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1.0)
        if gamma > 0:
            x = x + randn_like(x, generator) * self.s_noise * (sigma_hat**2 - sigma**2) ** 0.5
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        dt = next_sigma - sigma_hat
        return self.possible_correction_step(self.euler_step(x, d, dt), x, d, dt, next_sigma, model)


class EulerEDMSampler(EDMSampler):
    """Euler's method on the probability-flow ODE (EDM Alg. 2 without the second-order step)."""


class HeunEDMSampler(EDMSampler):
    """Heun's second-order method (EDM Alg. 2); the last step to sigma 0 is a plain Euler step, which
    saves one network evaluation."""

    def possible_correction_step(self, euler_step, x, d, dt, next_sigma, model):
        if float(next_sigma) == 0.0:
            return euler_step
        d_new = to_d(euler_step, next_sigma, model(euler_step, next_sigma))
        return x + (d + d_new) / 2.0 * dt


class AncestralSampler(SingleStepDiffusionSampler):
    """Base of the ancestral samplers. eta: amount of fresh noise per step (0: deterministic).
    s_noise: scale of that noise."""

    def __init__(self, eta: float = 1.0, s_noise: float = 1.0, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.eta = eta
        self.s_noise = s_noise

    def ancestral_euler_step(self, x, denoised, sigma, sigma_down):
        return self.euler_step(x, to_d(x, sigma, denoised), sigma_down - sigma)

    def ancestral_step(self, x, next_sigma, sigma_up, generator):
        if float(next_sigma) == 0.0:
            return x
        return x + randn_like(x, generator) * self.s_noise * sigma_up


class EulerAncestralSampler(AncestralSampler):
    """Euler ancestral sampling (k-diffusion `sample_euler_ancestral`)."""

    def step(self, i, x, sigmas, model, state, generator):
        sigma, next_sigma = sigmas[i], sigmas[i + 1]
        sigma_down, sigma_up = get_ancestral_step(sigma, next_sigma, eta=self.eta)
        x = self.ancestral_euler_step(x, model(x, sigma), sigma, sigma_down)
        return self.ancestral_step(x, next_sigma, sigma_up, generator)


class DPMPP2SAncestralSampler(AncestralSampler):
    """DPM-Solver++(2S) ancestral (Lu et al. 2022; k-diffusion `sample_dpmpp_2s_ancestral`)."""

    def step(self, i, x, sigmas, model, state, generator):
        sigma, next_sigma = sigmas[i], sigmas[i + 1]
        sigma_down, sigma_up = get_ancestral_step(sigma, next_sigma, eta=self.eta)
        denoised = model(x, sigma)
        if float(sigma_down) == 0.0:
            x = self.ancestral_euler_step(x, denoised, sigma, sigma_down)
        else:
            t, t_next = to_neg_log_sigma(sigma), to_neg_log_sigma(sigma_down)
            h = t_next - t
            s = t + 0.5 * h
            x2 = (to_sigma(s) / to_sigma(t)) * x - (-0.5 * h).expm1() * denoised
            denoised2 = model(x2, to_sigma(s))
            x = (to_sigma(t_next) / to_sigma(t)) * x - (-h).expm1() * denoised2
        return self.ancestral_step(x, next_sigma, sigma_up, generator)


class DPMPP2MSampler(BaseDiffusionSampler):
    """DPM-Solver++(2M) (Lu et al. 2022; k-diffusion `sample_dpmpp_2m`): second-order multistep,
    reusing the previous step's denoised estimate."""

    def step(self, i, x, sigmas, model, state, generator):
        sigma, next_sigma = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma)
        old_denoised = state.get("old_denoised")
        state["old_denoised"] = denoised
        t = to_neg_log_sigma(sigma)
        if float(next_sigma) == 0.0:
            return denoised  # the limit of the update at sigma_next -> 0
        t_next = to_neg_log_sigma(next_sigma)
        h = t_next - t
        if old_denoised is not None:
            r = (t - to_neg_log_sigma(sigmas[i - 1])) / h
            denoised = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        return (to_sigma(t_next) / to_sigma(t)) * x - (-h).expm1() * denoised


class LinearMultistepSampler(BaseDiffusionSampler):
    """Linear multistep (Adams-Bashforth in sigma; k-diffusion `sample_lms`). order: steps of history."""

    def __init__(self, order: int = 4, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = order

    def step(self, i, x, sigmas, model, state, generator):
        sigma = sigmas[i]
        ds = state.setdefault("ds", [])
        ds.append(to_d(x, sigma, model(x, sigma)))
        if len(ds) > self.order:
            ds.pop(0)
        cur_order = min(i + 1, self.order)
        t = sigmas.detach().cpu().double().numpy()
        coeffs = [linear_multistep_coeff(cur_order, t, i, j) for j in range(cur_order)]
        return x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))
