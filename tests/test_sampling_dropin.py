"""The sampler and guider surfaces of the original sgm, as its client code uses them.

Expected numbers marked "original:" were produced by running Stability-AI/generative-models
(commit 0ad7de9) on the same inputs on CPU; its code is not part of this repository.
"""
import pytest
import torch

from sgm.modules.diffusionmodules.guiders import (LinearPredictionGuider, SpatiotemporalPredictionGuider,
                                                  TrapezoidPredictionGuider, TrianglePredictionGuider, VanillaCFG)
from sgm.modules.diffusionmodules.sampling import (DPMPP2MSampler, DPMPP2SAncestralSampler, EulerAncestralSampler,
                                                   EulerEDMSampler, HeunEDMSampler, LinearMultistepSampler, SamplerStep)

EDM = {"target": "sgm.modules.diffusionmodules.discretizer.EDMDiscretization"}


def half(x, sigma, cond):
    return 0.5 * x


@pytest.mark.parametrize("cls", [EulerAncestralSampler, DPMPP2SAncestralSampler])
def test_ancestral_samplers_leave_the_rng_where_the_original_does(cls):
    torch.manual_seed(0)
    x = torch.randn(1, 4, 8, 8)
    cls(discretization_config=EDM, num_steps=3)(half, x, {})
    # original: one noise draw per step, the last included
    assert torch.allclose(torch.randn(2), torch.tensor([-0.2907, -1.5105]), atol=1e-4)


def test_caller_set_noise_sampler_is_used_and_generator_is_per_call():
    sampler = EulerAncestralSampler(discretization_config=EDM, num_steps=3)
    draws = []

    def zeros(x):
        draws.append(x.shape)
        return torch.zeros_like(x)

    sampler.noise_sampler = zeros
    x = torch.randn(1, 1, 2, 2)
    out = sampler(half, x, {})
    assert len(draws) == 3
    assert torch.equal(out, sampler(half, x, {}))  # no global-RNG noise was drawn
    with pytest.raises(ValueError, match="noise_sampler"):
        sampler(half, x, {}, generator=torch.Generator().manual_seed(0))
    plain = EulerAncestralSampler(discretization_config=EDM, num_steps=3)
    a = plain(half, x, {}, generator=torch.Generator().manual_seed(3))
    assert plain.noise_sampler.__name__ == "randn_noise"  # the generator did not stay on the sampler
    assert torch.equal(a, plain(half, x, {}, generator=torch.Generator().manual_seed(3)))


def test_subclass_overrides_of_sampler_step_and_get_sigma_gen_take_effect():
    seen = []

    class Logged(EulerEDMSampler):
        def get_sigma_gen(self, num_sigmas):
            return range(num_sigmas - 2)  # skip the last step

        def sampler_step(self, sigma, next_sigma, denoiser, x, cond, uc=None, gamma=0.0):
            seen.append(float(sigma[0]))
            return super().sampler_step(sigma, next_sigma, denoiser, x, cond, uc, gamma)

    Logged(discretization_config=EDM, num_steps=4)(half, torch.randn(2, 1, 2, 2), {})
    assert len(seen) == 3


def test_multistep_samplers_take_extra_keyword_arguments_like_the_original():
    got = []

    def den(x, sigma, cond, **kw):
        got.append(kw)
        return 0.5 * x

    LinearMultistepSampler(discretization_config=EDM, num_steps=2)(den, torch.randn(1, 1, 2, 2), {}, flag=1)
    assert got == [{"flag": 1}] * 2  # passed on to the denoiser
    got.clear()
    DPMPP2MSampler(discretization_config=EDM, num_steps=2)(den, torch.randn(1, 1, 2, 2), {}, flag=1)
    assert got == [{}] * 2  # ignored


def test_callback_sees_every_step_and_may_replace_x():
    steps = []

    def callback(step: SamplerStep):
        steps.append((step.i, step.num_steps, step.sigma > step.sigma_next))
        return torch.zeros_like(step.x)

    out = HeunEDMSampler(discretization_config=EDM, num_steps=3)(half, torch.randn(1, 1, 2, 2), {}, callback=callback)
    assert steps == [(0, 3, True), (1, 3, True), (2, 3, True)] and torch.equal(out, torch.zeros_like(out))


def test_trapezoid_gives_the_original_scales_and_the_plateau_on_request():
    guider = TrapezoidPredictionGuider(max_scale=2.5, num_frames=5, edge_perc=0.4)
    assert torch.allclose(guider.scale, torch.tensor([[1.0, 2.5, 1.0, 2.5, 1.0]]))  # original
    flat = TrapezoidPredictionGuider(max_scale=2.5, num_frames=5, edge_perc=0.4, plateau_at_max=True)
    assert torch.allclose(flat.scale, torch.tensor([[1.0, 2.5, 2.5, 2.5, 1.0]]))


def test_spatiotemporal_and_triangle_scales_match_the_original():
    st = SpatiotemporalPredictionGuider(max_scale=2.5, num_frames=6, num_views=3)
    assert torch.allclose(st.scale, torch.tensor([[1.0, 1.75, 1.0, 1.75, 2.5, 1.75]]))  # original
    tri = TrianglePredictionGuider(max_scale=3.0, num_frames=7, period=[1.0, 0.5], period_fusing="mean")
    assert torch.allclose(tri.scale, torch.tensor([[1.0, 2.0, 7 / 3, 2.0, 7 / 3, 2.0, 1.0]]), atol=1e-4)  # original
    with pytest.raises(ValueError, match="num_views"):
        SpatiotemporalPredictionGuider(max_scale=2.5, num_frames=5, num_views=3)


def test_guider_scale_can_be_assigned():
    guider = LinearPredictionGuider(max_scale=3.0, num_frames=3)
    guider.scale = 2.0
    x = torch.cat([torch.zeros(3, 1), torch.ones(3, 1)])
    assert torch.allclose(guider(x, None), torch.full((3, 1), 2.0))
    guider.scale = torch.tensor([[1.0, 2.0, 4.0]])
    assert torch.allclose(guider(x, None)[:, 0], torch.tensor([1.0, 2.0, 4.0]))
    with pytest.raises(ValueError, match="num_frames=3"):
        guider.scale = [1.0, 2.0]
    cfg = VanillaCFG(2.0)
    cfg.scale = 3.0
    assert torch.allclose(cfg(x, None), torch.full((3, 1), 3.0))
