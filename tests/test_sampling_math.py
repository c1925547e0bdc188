"""Unit tests of the diffusion math: scalings, discretizations, samplers and guiders."""
import math

import numpy as np
import pytest
import torch

from sgm.modules.diffusionmodules.denoiser import Denoiser, DiscreteDenoiser
from sgm.modules.diffusionmodules.denoiser_scaling import EDMScaling, VScaling, VScalingWithEDMcNoise
from sgm.modules.diffusionmodules.discretizer import EDMDiscretization, LegacyDDPMDiscretization
from sgm.modules.diffusionmodules.guiders import (IdentityGuider, LinearPredictionGuider, TrapezoidPredictionGuider,
                                                  TrianglePredictionGuider, VanillaCFG)
from sgm.modules.diffusionmodules.sampling import (DPMPP2MSampler, DPMPP2SAncestralSampler, EulerAncestralSampler,
                                                   EulerEDMSampler, HeunEDMSampler, LinearMultistepSampler)
from sgm.modules.diffusionmodules.sampling_utils import get_ancestral_step, linear_multistep_coeff

EDM = {"target": "sgm.modules.diffusionmodules.discretizer.EDMDiscretization", "params": {"sigma_max": 80.0}}
SIGMAS = torch.tensor([0.01, 0.5, 1.0, 3.7, 80.0, 700.0], dtype=torch.float64)


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_edm_scaling_identities(sigma_data):
    c_skip, c_out, c_in, c_noise = EDMScaling(sigma_data)(SIGMAS)
    # EDM eq. 7 / App. B.6: unit-variance network input and target, c_skip^2 s_d^2 ... identities
    assert torch.allclose(c_in**2 * (SIGMAS**2 + sigma_data**2), torch.ones_like(SIGMAS))
    assert torch.allclose(c_skip + (c_out / sigma_data) ** 2, torch.ones_like(SIGMAS))
    assert torch.allclose(c_out**2, c_skip * SIGMAS**2)
    assert torch.allclose(c_noise, SIGMAS.log() / 4)


def test_v_scaling_is_edm_with_unit_sigma_data():
    edm = EDMScaling(sigma_data=1.0)(SIGMAS)
    v = VScalingWithEDMcNoise()(SIGMAS)
    assert torch.allclose(edm[0], v[0]) and torch.allclose(edm[2], v[2]) and torch.allclose(edm[3], v[3])
    assert torch.allclose(edm[1], -v[1])  # v predicts the negated target direction
    assert torch.allclose(VScaling()(SIGMAS)[3], SIGMAS)


def test_eps_scaling_denoises_exactly_with_true_noise():
    x0 = torch.randn(3, 4, 5, 5)
    eps = torch.randn_like(x0)
    sigma = torch.tensor([0.3, 2.0, 9.0])
    x = x0 + eps * sigma[:, None, None, None]

    def network(inp, c_noise, cond):  # returns the true eps
        return eps

    out = Denoiser({"target": "sgm.modules.diffusionmodules.denoiser_scaling.EpsScaling"})(network, x, sigma, {})
    assert torch.allclose(out, x0, atol=1e-5)


def test_denoiser_passes_scaled_input_and_noise():
    seen = {}

    def network(inp, c_noise, cond, **kw):
        seen.update(inp=inp, c_noise=c_noise, kw=kw)
        return torch.zeros_like(inp)

    x = torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([1.0, 3.0])
    d = Denoiser({"target": "sgm.modules.diffusionmodules.denoiser_scaling.VScalingWithEDMcNoise"})
    out = d(network, x, sigma, {}, num_video_frames=2)
    assert torch.allclose(seen["inp"], x / (sigma**2 + 1).sqrt()[:, None, None, None])
    assert torch.allclose(seen["c_noise"], sigma.log() / 4) and seen["kw"] == {"num_video_frames": 2}
    assert torch.allclose(out, x / (sigma**2 + 1)[:, None, None, None])


def test_edm_discretization_ends_and_monotone():
    s = EDMDiscretization(sigma_min=0.002, sigma_max=700.0)(10)
    assert len(s) == 11 and s[-1] == 0
    assert math.isclose(float(s[0]), 700.0, rel_tol=1e-5) and math.isclose(float(s[-2]), 0.002, rel_tol=1e-4)
    assert torch.all(s[:-1] > s[1:])


def test_legacy_ddpm_discretization_matches_alphas():
    d = LegacyDDPMDiscretization()
    s = d(1000, do_append_zero=False)
    expected = ((1 - d.alphas_cumprod) / d.alphas_cumprod) ** 0.5
    assert np.allclose(s.flip(0).numpy(), expected, rtol=1e-5)
    assert len(d(25)) == 26
    with pytest.raises(ValueError):
        d(1001)


def test_discrete_denoiser_snaps_to_training_levels():
    dd = DiscreteDenoiser(scaling_config={"target": "sgm.modules.diffusionmodules.denoiser_scaling.EpsScaling"},
                          num_idx=1000,
                          discretization_config={"target": "sgm.modules.diffusionmodules.discretizer.LegacyDDPMDiscretization"})
    idx = torch.tensor([0, 10, 999])
    sig = dd.idx_to_sigma(idx)
    assert torch.equal(dd.sigma_to_idx(sig * 1.0001), idx)
    assert torch.equal(dd.possibly_quantize_c_noise(sig), idx)


class ExactDenoiser:
    """The exact denoiser for data that is a single point x0: D(x, sigma) = x0, so the probability-flow
    ODE dx/dsigma = (x - x0)/sigma has the solution x(sigma) = x0 + (x_T - x0) sigma / sigma_T."""

    def __init__(self, x0):
        self.x0 = x0
        self.calls = []

    def __call__(self, x, sigma, cond):
        self.calls.append(sigma.clone())
        return self.x0.expand_as(x)


def _sampler(cls, steps=8, **kw):
    return cls(discretization_config=EDM, num_steps=steps, verbose=False, **kw)


@pytest.mark.parametrize("cls", [EulerEDMSampler, HeunEDMSampler, DPMPP2MSampler, LinearMultistepSampler])
def test_deterministic_samplers_solve_the_point_mass_ode(cls):
    x0 = torch.randn(1, 2, 3, 3)
    randn = torch.randn(1, 2, 3, 3)
    den = ExactDenoiser(x0)
    out = _sampler(cls)(den, randn, cond={})
    assert torch.allclose(out, x0, atol=1e-4)


def test_euler_on_linear_ode_intermediate_states():
    # With D = x0 the Euler update is exact for the linear solution at every step.
    x0 = torch.zeros(1, 1, 2, 2)
    randn = torch.ones(1, 1, 2, 2)
    sampler = _sampler(EulerEDMSampler, steps=5)
    sigmas = sampler.discretization(5)
    states = []
    sampler(ExactDenoiser(x0), randn, cond={}, callback=lambda step: states.append(step.x))
    x_T = randn * torch.sqrt(1 + sigmas[0] ** 2)
    for i, x in enumerate(states):
        assert torch.allclose(x, x_T * sigmas[i + 1] / sigmas[0], rtol=1e-5, atol=1e-6)


def test_heun_skips_the_evaluation_at_sigma_zero():
    den = ExactDenoiser(torch.zeros(1, 1, 2, 2))
    _sampler(HeunEDMSampler, steps=6)(den, torch.ones(1, 1, 2, 2), cond={})
    assert len(den.calls) == 2 * 6 - 1
    assert all(float(c.min()) > 0 for c in den.calls)


def test_sampler_leaves_input_noise_untouched():
    randn = torch.randn(2, 2, 3, 3)
    before = randn.clone()
    _sampler(EulerAncestralSampler)(ExactDenoiser(torch.zeros(1, 2, 3, 3)), randn, cond={})
    assert torch.equal(randn, before)


def test_ancestral_step_preserves_variance():
    sigma_from, sigma_to = torch.tensor(5.0), torch.tensor(2.0)
    down, up = get_ancestral_step(sigma_from, sigma_to, eta=1.0)
    assert torch.isclose(down**2 + up**2, sigma_to**2)
    down0, up0 = get_ancestral_step(sigma_from, sigma_to, eta=0.0)
    assert down0 == sigma_to and up0 == 0


@pytest.mark.parametrize("cls", [EulerAncestralSampler, DPMPP2SAncestralSampler])
def test_ancestral_samplers_marginal_variance(cls):
    # For data N(0, s_d^2) the exact denoiser is D(x, s) = x s_d^2 / (s^2 + s_d^2); ancestral sampling
    # must end with samples of variance s_d^2.
    s_d = 0.5

    def den(x, sigma, cond):
        s = sigma[:, None, None, None]
        return x * s_d**2 / (s**2 + s_d**2)

    errors = []
    for steps in (40, 640):  # first-order methods: the bias shrinks with the step size
        randn = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        out = _sampler(cls, steps=steps)(den, randn, cond={}, generator=torch.Generator().manual_seed(1))
        errors.append(abs(out.std().item() - s_d))
    assert errors[1] < errors[0] and errors[1] < 0.01, errors


def test_ancestral_sampler_generator_reproducible():
    den = ExactDenoiser(torch.zeros(1, 2, 3, 3))
    randn = torch.randn(1, 2, 3, 3)
    a = _sampler(EulerAncestralSampler)(den, randn, cond={}, generator=torch.Generator().manual_seed(5))
    b = _sampler(EulerAncestralSampler)(den, randn, cond={}, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_churn_adds_noise_only_when_enabled():
    den = ExactDenoiser(torch.zeros(1, 2, 3, 3))
    randn = torch.randn(1, 2, 3, 3)
    a = _sampler(EulerEDMSampler, s_churn=0.0)(den, randn, cond={})
    b = _sampler(EulerEDMSampler, s_churn=5.0)(den, randn, cond={}, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, torch.zeros_like(a), atol=1e-5) and torch.allclose(b, torch.zeros_like(b), atol=1e-5)


def test_linear_multistep_coefficients_integrate_polynomials():
    t = np.array([10.0, 7.0, 4.5, 2.0, 1.0])
    # Order-k coefficients integrate degree < k polynomials exactly: with f = 1 the sum is the step.
    for order in (1, 2, 3):
        i = order - 1 + 1
        coeffs = [linear_multistep_coeff(order, t, i, j) for j in range(order)]
        assert math.isclose(sum(coeffs), t[i + 1] - t[i], rel_tol=1e-9)
    with pytest.raises(ValueError):
        linear_multistep_coeff(3, t, 1, 0)


def test_cfg_scale_one_is_the_conditional_output():
    x_u, x_c = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.allclose(VanillaCFG(1.0)(torch.cat([x_u, x_c]), None), x_c)
    assert torch.allclose(VanillaCFG(0.0)(torch.cat([x_u, x_c]), None), x_u)


def test_cfg_prepare_inputs_puts_uncond_first():
    c = {"crossattn": torch.ones(1, 1, 2), "vector": torch.ones(1, 3)}
    uc = {"crossattn": torch.zeros(1, 1, 2), "vector": torch.zeros(1, 3)}
    x, s, cond = VanillaCFG(2.0).prepare_inputs(torch.randn(1, 4), torch.ones(1), c, uc)
    assert x.shape[0] == 2 and s.shape[0] == 2
    assert cond["crossattn"][0].sum() == 0 and cond["crossattn"][1].sum() == 2


def test_linear_guider_per_frame_scales():
    T = 5
    guider = LinearPredictionGuider(max_scale=3.0, min_scale=1.0, num_frames=T)
    assert torch.allclose(guider.frame_scales(), torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0]))
    x_u = torch.zeros(2 * T, 1)  # two videos
    x_c = torch.ones(2 * T, 1)
    out = guider(torch.cat([x_u, x_c]), None)
    assert torch.allclose(out[:, 0], guider.frame_scales().repeat(2))
    guider.num_frames = 3
    assert torch.allclose(guider.frame_scales(), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="num_frames"):
        guider(torch.cat([torch.zeros(4, 1), torch.ones(4, 1)]), None)


def test_linear_guider_with_min_equal_max_is_vanilla_cfg():
    x = torch.randn(8, 3)
    assert torch.allclose(LinearPredictionGuider(2.0, 4, 2.0)(x, None), VanillaCFG(2.0)(x, None))


def test_triangle_and_trapezoid_shapes():
    tri = TrianglePredictionGuider(max_scale=3.0, min_scale=1.0, num_frames=5).frame_scales()
    assert torch.allclose(tri, torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0]))
    trap = TrapezoidPredictionGuider(max_scale=3.0, min_scale=1.0, num_frames=10, edge_perc=0.3).frame_scales()
    assert torch.allclose(trap, torch.tensor([1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0, 3.0, 2.0, 1.0]))


def test_identity_guider_passes_through():
    g = IdentityGuider()
    x = torch.randn(2, 3)
    assert torch.equal(g(x, None), x)
    xi, si, ci = g.prepare_inputs(x, torch.ones(2), {"vector": x}, {"vector": x * 0})
    assert xi is x and torch.equal(ci["vector"], x)
