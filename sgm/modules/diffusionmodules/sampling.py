"""Samplers of the probability-flow ODE / SDE over a discretization (after k-diffusion).

Every sampler sees only the guided denoiser `D(x, sigma) -> x0` and the sigmas. One loop
(`BaseDiffusionSampler.__call__`) owns the progress bar and the per-step callback; each sampler
family advances one step in `sampler_step`, with the original sgm's signatures, so a subclass that
overrides `sampler_step`, `possible_correction_step`, `denoise` or `get_sigma_gen` changes the run.
`sampler(denoiser, x, cond, uc)` starts from unit noise `x` (it is scaled to the first sigma here)
and never modifies `x` in place.

Noise drawn during sampling (churn, ancestral steps) comes from `self.noise_sampler(x)`, by default
`torch.randn_like` (the global RNG, as in the original); a caller may set another, or pass a
`generator` for one call.
"""
import copy
import logging
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional

import torch
from tqdm.auto import tqdm

from ...util import append_dims, default, instantiate_from_config
from .sampling_utils import get_ancestral_step, linear_multistep_coeff, to_d, to_neg_log_sigma, to_sigma

logger = logging.getLogger(__name__)

DEFAULT_GUIDER = {"target": "sgm.modules.diffusionmodules.guiders.IdentityGuider"}


@dataclass(frozen=True)
class SamplerStep:
    """What a sampling callback sees after step `i` (0-based) of `num_steps`: the state `x` at
    noise level `sigma_next`, reached from `sigma`."""

    i: int
    num_steps: int
    sigma: float
    sigma_next: float
    x: torch.Tensor


# Called after every step; a tensor it returns replaces x for the rest of the run (e.g. to put known
# latents back in place), None keeps x.
StepCallback = Callable[[SamplerStep], Optional[torch.Tensor]]


def randn_noise(x: torch.Tensor) -> torch.Tensor:
    """The default noise sampler: standard normal like x from the global RNG (as the original)."""
    return torch.randn_like(x)


class GeneratorNoise:
    """A noise sampler drawing from `generator` (on the generator's device, moved to x's)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        g = self.generator
        return torch.randn(x.shape, generator=g, device=g.device, dtype=x.dtype).to(x.device)


def _per_item(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) per-item noise levels broadcastable against x (N, ...)."""
    return append_dims(sigma, x.ndim)


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
        self.noise_sampler: Callable[[torch.Tensor], torch.Tensor] = randn_noise

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

    def get_sigma_gen(self, num_sigmas: int) -> Iterable[int]:
        """The step indices 0 .. num_sigmas - 2 (with a progress bar when verbose)."""
        steps = range(num_sigmas - 1)
        if self.verbose:
            logger.info("sampling with %s, %s, %s", type(self).__name__, type(self.discretization).__name__,
                        type(self.guider).__name__)
            steps = tqdm(steps, desc=type(self).__name__, total=num_sigmas - 1)
        return steps

    def run_step(self, i: int, x: torch.Tensor, s_in: torch.Tensor, sigmas: torch.Tensor, denoiser: Callable,
                 cond: Dict, uc: Dict, state: Dict) -> torch.Tensor:
        """Advance x from sigmas[i] to sigmas[i+1] (through `sampler_step`). state: this run's memory."""
        raise NotImplementedError

    def for_call(self, generator: Optional[torch.Generator]) -> "BaseDiffusionSampler":
        """This sampler, or a copy of it drawing its noise from `generator` (the original is left as is)."""
        if generator is None:
            return self
        if self.noise_sampler is not randn_noise:
            raise ValueError("this sampler has a noise_sampler set by the caller; pass either it or a generator, not both")
        run = copy.copy(self)
        run.noise_sampler = GeneratorNoise(generator)
        return run

    def __call__(self, denoiser: Callable, x: torch.Tensor, cond: Dict, uc: Optional[Dict] = None,
                 num_steps: Optional[int] = None, callback: Optional[StepCallback] = None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Sample from unit noise x (N, C, H, W). callback: see StepCallback.
        generator: the source of the noise drawn while sampling, for this call only."""
        run = self.for_call(generator)
        x, s_in, sigmas, num_sigmas, cond, uc = run.prepare_sampling_loop(x, cond, uc, num_steps)
        state: Dict = {}
        for i in run.get_sigma_gen(num_sigmas):
            x = run.run_step(i, x, s_in, sigmas, denoiser, cond, uc, state)
            if callback is not None:
                replaced = callback(SamplerStep(i, num_sigmas - 1, float(sigmas[i]), float(sigmas[i + 1]), x))
                x = x if replaced is None else replaced
        return x


class SingleStepDiffusionSampler(BaseDiffusionSampler):
    def sampler_step(self, sigma, next_sigma, denoiser, x, cond, uc, *args, **kwargs) -> torch.Tensor:
        raise NotImplementedError

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

    def possible_correction_step(self, euler_step, x, d, dt, next_sigma, denoiser, cond, uc) -> torch.Tensor:
        return euler_step

    def sampler_step(self, sigma, next_sigma, denoiser, x, cond, uc=None, gamma=0.0):
        """sigma, next_sigma: (N,). gamma: churn of this step (EDM Alg. 2)."""
        sigma_hat = sigma * (gamma + 1.0)
        if gamma > 0:
            x = x + self.noise_sampler(x) * self.s_noise * _per_item(sigma_hat**2 - sigma**2, x) ** 0.5
        denoised = self.denoise(x, denoiser, sigma_hat, cond, uc)
        d = to_d(x, sigma_hat, denoised)
        dt = _per_item(next_sigma - sigma_hat, x)
        return self.possible_correction_step(self.euler_step(x, d, dt), x, d, dt, next_sigma, denoiser, cond, uc)

    def run_step(self, i, x, s_in, sigmas, denoiser, cond, uc, state):
        n = len(sigmas) - 1
        gamma = min(self.s_churn / n, 2**0.5 - 1) if self.s_tmin <= sigmas[i] <= self.s_tmax else 0.0
        return self.sampler_step(s_in * sigmas[i], s_in * sigmas[i + 1], denoiser, x, cond, uc, gamma)


class EulerEDMSampler(EDMSampler):
    """Euler's method on the probability-flow ODE (EDM Alg. 2 without the second-order step)."""


class HeunEDMSampler(EDMSampler):
    """Heun's second-order method (EDM Alg. 2); the last step to sigma 0 is a plain Euler step, which
    saves one network evaluation."""

    def possible_correction_step(self, euler_step, x, d, dt, next_sigma, denoiser, cond, uc):
        if float(next_sigma.sum()) < 1e-14:
            return euler_step
        d_new = to_d(euler_step, next_sigma, self.denoise(euler_step, denoiser, next_sigma, cond, uc))
        return torch.where(_per_item(next_sigma, x) > 0.0, x + (d + d_new) / 2.0 * dt, euler_step)


class AncestralSampler(SingleStepDiffusionSampler):
    """Base of the ancestral samplers. eta: amount of fresh noise per step (0: deterministic).
    s_noise: scale of that noise."""

    def __init__(self, eta: float = 1.0, s_noise: float = 1.0, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.eta = eta
        self.s_noise = s_noise

    def ancestral_euler_step(self, x, denoised, sigma, sigma_down):
        return self.euler_step(x, to_d(x, sigma, denoised), _per_item(sigma_down - sigma, x))

    def ancestral_step(self, x, sigma, next_sigma, sigma_up):
        """Add fresh noise of std sigma_up, except where next_sigma is 0.

        NOTE: the noise is drawn on every step, the last included, as the original does (it evaluates
        both branches of a torch.where), so the RNG stream after sampling matches the original's."""
        noise = self.noise_sampler(x)
        return torch.where(_per_item(next_sigma, x) > 0.0, x + noise * self.s_noise * _per_item(sigma_up, x), x)

    def run_step(self, i, x, s_in, sigmas, denoiser, cond, uc, state):
        return self.sampler_step(s_in * sigmas[i], s_in * sigmas[i + 1], denoiser, x, cond, uc)


class EulerAncestralSampler(AncestralSampler):
    """Euler ancestral sampling (k-diffusion `sample_euler_ancestral`)."""

    def sampler_step(self, sigma, next_sigma, denoiser, x, cond, uc):
        sigma_down, sigma_up = get_ancestral_step(sigma, next_sigma, eta=self.eta)
        x = self.ancestral_euler_step(x, self.denoise(x, denoiser, sigma, cond, uc), sigma, sigma_down)
        return self.ancestral_step(x, sigma, next_sigma, sigma_up)


class DPMPP2SAncestralSampler(AncestralSampler):
    """DPM-Solver++(2S) ancestral (Lu et al. 2022; k-diffusion `sample_dpmpp_2s_ancestral`)."""

    def sampler_step(self, sigma, next_sigma, denoiser, x, cond, uc=None, **kwargs):
        sigma_down, sigma_up = get_ancestral_step(sigma, next_sigma, eta=self.eta)
        denoised = self.denoise(x, denoiser, sigma, cond, uc)
        x_euler = self.ancestral_euler_step(x, denoised, sigma, sigma_down)
        if float(sigma_down.sum()) < 1e-14:
            x = x_euler  # the last step: no second evaluation
        else:
            t, t_next = to_neg_log_sigma(sigma), to_neg_log_sigma(sigma_down)
            h = t_next - t
            s = t + 0.5 * h
            x2 = _per_item(to_sigma(s) / to_sigma(t), x) * x - _per_item((-0.5 * h).expm1(), x) * denoised
            denoised2 = self.denoise(x2, denoiser, to_sigma(s), cond, uc)
            x_2s = _per_item(to_sigma(t_next) / to_sigma(t), x) * x - _per_item((-h).expm1(), x) * denoised2
            x = torch.where(_per_item(sigma_down, x) > 0.0, x_2s, x_euler)
        return self.ancestral_step(x, sigma, next_sigma, sigma_up)


class DPMPP2MSampler(BaseDiffusionSampler):
    """DPM-Solver++(2M) (Lu et al. 2022; k-diffusion `sample_dpmpp_2m`): second-order multistep,
    reusing the previous step's denoised estimate."""

    def sampler_step(self, old_denoised, previous_sigma, sigma, next_sigma, denoiser, x, cond, uc=None):
        """One step; returns (x at next_sigma, this step's denoised estimate)."""
        denoised = self.denoise(x, denoiser, sigma, cond, uc)
        t, t_next = to_neg_log_sigma(sigma), to_neg_log_sigma(next_sigma)
        h = t_next - t
        ratio, expm1 = _per_item(to_sigma(t_next) / to_sigma(t), x), _per_item((-h).expm1(), x)
        x_standard = ratio * x - expm1 * denoised
        if old_denoised is None or float(next_sigma.sum()) < 1e-14:
            return x_standard, denoised  # first-order on the first and the last step
        r = _per_item((t - to_neg_log_sigma(previous_sigma)) / h, x)
        denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x_advanced = ratio * x - expm1 * denoised_d
        return torch.where(_per_item(next_sigma, x) > 0.0, x_advanced, x_standard), denoised

    def run_step(self, i, x, s_in, sigmas, denoiser, cond, uc, state):
        previous = None if i == 0 else s_in * sigmas[i - 1]
        x, state["old_denoised"] = self.sampler_step(state.get("old_denoised"), previous, s_in * sigmas[i],
                                                     s_in * sigmas[i + 1], denoiser, x, cond, uc=uc)
        return x

    def __call__(self, denoiser, x, cond, uc=None, num_steps=None, callback=None, generator=None, **kwargs):
        """As BaseDiffusionSampler. NOTE: further keyword arguments are accepted and ignored, as by the original."""
        return super().__call__(denoiser, x, cond, uc=uc, num_steps=num_steps, callback=callback, generator=generator)


class LinearMultistepSampler(BaseDiffusionSampler):
    """Linear multistep (Adams-Bashforth in sigma; k-diffusion `sample_lms`). order: steps of history."""

    def __init__(self, order: int = 4, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = order

    def run_step(self, i, x, s_in, sigmas, denoiser, cond, uc, state):
        ds: List[torch.Tensor] = state.setdefault("ds", [])
        sigma = s_in * sigmas[i]
        ds.append(to_d(x, sigma, self.denoise(x, denoiser, sigma, cond, uc)))
        if len(ds) > self.order:
            ds.pop(0)
        cur_order = min(i + 1, self.order)
        t = sigmas.detach().cpu().double().numpy()
        coeffs = [linear_multistep_coeff(cur_order, t, i, j) for j in range(cur_order)]
        return x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))

    def __call__(self, denoiser, x, cond, uc=None, num_steps=None, callback=None, generator=None, **kwargs):
        """As BaseDiffusionSampler; further keyword arguments go to every denoiser call, as in the original."""
        if kwargs:
            inner = denoiser

            def denoiser(*args):
                return inner(*args, **kwargs)
        return super().__call__(denoiser, x, cond, uc=uc, num_steps=num_steps, callback=callback, generator=generator)
