"""The training loss: weightings, noise-level sampling, video batches, conditioning dropout, LR warm-up."""
import math

import pytest
import torch

from sgm.lr_scheduler import LambdaLinearScheduler
from sgm.modules.diffusionmodules.denoiser_scaling import EDMScaling
from sgm.modules.diffusionmodules.loss import StandardDiffusionLoss, expand_cond_per_frame, frames_per_video
from sgm.modules.diffusionmodules.loss_weighting import EDMWeighting, EpsWeighting, UnitWeighting, VWeighting
from sgm.modules.diffusionmodules.sigma_sampling import DiscreteSampling, EDMSampling

SIGMAS = torch.tensor([0.002, 0.1, 0.5, 1.0, 3.0, 80.0, 700.0], dtype=torch.float64)


def test_weightings_match_their_formulas():
    s, sd = SIGMAS, 0.5
    torch.testing.assert_close(EDMWeighting(sd)(s), (s**2 + sd**2) / (s * sd) ** 2)
    torch.testing.assert_close(VWeighting()(s), (s**2 + 1) / s**2)
    torch.testing.assert_close(EpsWeighting()(s), 1 / s**2)
    torch.testing.assert_close(UnitWeighting()(s), torch.ones_like(s))
    # EDM's weighting is 1 / c_out^2 of its preconditioning: the network's target has unit weight.
    _, c_out, _, _ = EDMScaling(sd)(s)
    torch.testing.assert_close(EDMWeighting(sd)(s), 1 / c_out**2)
    # likewise VWeighting for SVD's v-scaling (sigma_data = 1), whose c_noise is EDM's log(sigma) / 4
    from sgm.modules.diffusionmodules.denoiser_scaling import VScalingWithEDMcNoise

    _, c_out, _, c_noise = VScalingWithEDMcNoise()(s)
    torch.testing.assert_close(VWeighting()(s), 1 / c_out**2)
    torch.testing.assert_close(c_noise, s.log() / 4)


def test_edm_sampling_is_log_normal():
    torch.manual_seed(0)
    sigmas = EDMSampling(p_mean=1.0, p_std=1.6)(40000)
    assert sigmas.shape == (40000,) and (sigmas > 0).all()
    log = sigmas.log()
    assert abs(log.mean().item() - 1.0) < 0.03
    assert abs(log.std().item() - 1.6) < 0.03
    torch.testing.assert_close(EDMSampling(-1.2, 1.2)(3, rand=torch.tensor([0.0, 1.0, -1.0])),
                               torch.tensor([math.exp(-1.2), math.exp(0.0), math.exp(-2.4)]))
    with pytest.raises(ValueError, match="p_std"):
        EDMSampling(0.0, 0.0)


def test_discrete_sampling_draws_from_the_table():
    s = DiscreteSampling({"target": "sgm.modules.diffusionmodules.discretizer.LegacyDDPMDiscretization"}, num_idx=1000)
    assert s.sigmas.shape == (1000,) and (s.sigmas[1:] > s.sigmas[:-1]).all()
    draws = s(500)
    assert torch.isin(draws, s.sigmas).all()
    torch.testing.assert_close(s(2, rand=torch.tensor([0, 999])), s.sigmas[[0, 999]])


class Recorder(torch.nn.Module):
    """A denoiser stand-in: records its inputs and predicts zeros."""

    def forward(self, network, x, sigma, cond, **kwargs):
        self.x, self.sigma, self.cond, self.kwargs = x, sigma, cond, kwargs
        return torch.zeros_like(x)


class FakeConditioner(torch.nn.Module):
    """Per-video conditioning, different for every video."""

    def forward(self, batch):
        b = batch["fps_id"].shape[0]
        ids = torch.arange(b, dtype=torch.float32)
        return {"vector": ids[:, None].repeat(1, 3), "crossattn": ids[:, None, None].repeat(1, 2, 5),
                "concat": ids[:, None, None, None].repeat(1, 4, 2, 2)}


def _loss(**params):
    cfg = {"sigma_sampler_config": {"target": "sgm.modules.diffusionmodules.sigma_sampling.EDMSampling"},
           "loss_weighting_config": {"target": "sgm.modules.diffusionmodules.loss_weighting.VWeighting"}}
    return StandardDiffusionLoss(**cfg, **params)


@pytest.mark.parametrize("per_video", [True, False])
def test_video_batch_sigmas_conditioning_and_network_inputs(per_video):
    b, t = 3, 4
    x = torch.randn(b * t, 4, 2, 2)
    batch = {"fps_id": torch.zeros(b, dtype=torch.long), "num_video_frames": torch.full((b,), t)}
    rec = Recorder()
    loss = _loss(sigma_per_video=per_video)(None, rec, FakeConditioner(), x, batch)
    assert loss.shape == (b * t,)
    sig = rec.sigma.view(b, t)
    assert (sig == sig[:, :1]).all() == per_video  # one noise level per video, or one per frame
    for key, value in rec.cond.items():
        assert value.shape[0] == b * t, key
        per_frame = value.view(b, t, -1)
        assert (per_frame == per_frame[:, :1]).all()  # each video's rows repeat its conditioning
        assert per_frame[:, 0, 0].tolist() == [0.0, 1.0, 2.0]  # video-major order (b t)
    assert rec.kwargs["num_video_frames"] == t
    assert rec.kwargs["image_only_indicator"].shape == (b, t) and not rec.kwargs["image_only_indicator"].any()
    # zero prediction: loss = lambda(sigma) * mean(x^2) per frame
    expected = (rec.sigma**2 + 1) / rec.sigma**2 * (x**2).flatten(1).mean(1)
    torch.testing.assert_close(loss, expected)
    noise = (rec.x - x) / rec.sigma.view(-1, 1, 1, 1)
    assert abs(noise.std().item() - 1.0) < 0.35


def test_image_batch_gets_no_video_inputs_and_l1():
    x = torch.randn(2, 4, 2, 2)
    rec = Recorder()
    loss = _loss(loss_type="l1")(None, rec, FakeConditioner(), x, {"fps_id": torch.zeros(2)})
    assert rec.kwargs == {}
    torch.testing.assert_close(loss, (rec.sigma**2 + 1) / rec.sigma**2 * x.abs().flatten(1).mean(1))
    with pytest.raises(ValueError, match="loss_type"):
        _loss(loss_type="lpips")


def test_offset_noise_is_shared_by_the_frames_of_a_video():
    torch.manual_seed(0)
    b, t = 2, 3
    x = torch.zeros(b * t, 4, 16, 16)
    rec = Recorder()
    _loss(offset_noise_level=100.0)(None, rec, FakeConditioner(), x, {"fps_id": torch.zeros(b), "num_video_frames": t})
    noise = rec.x / rec.sigma.view(-1, 1, 1, 1)
    means = noise.mean(dim=(2, 3)).view(b, t, 4)  # dominated by the offset
    torch.testing.assert_close(means, means[:, :1].expand_as(means), atol=1.0, rtol=0)
    assert (means[0, 0] - means[1, 0]).abs().max() > 10  # different per video


def test_video_batch_shape_errors():
    assert frames_per_video({}, 6) is None
    with pytest.raises(ValueError, match="same number of frames"):
        frames_per_video({"num_video_frames": torch.tensor([2, 3])}, 5)
    with pytest.raises(ValueError, match="does not divide"):
        frames_per_video({"num_video_frames": 4}, 6)
    with pytest.raises(ValueError, match="n_copies"):
        expand_cond_per_frame({"concat": torch.zeros(5, 1)}, 2, 3)


def test_conditioning_dropout_drops_whole_videos():
    """ucg_rate in the conditioner zeroes the conditioning of a video, for all of its frames."""
    from tests.helpers import build_tiny_model
    from tests.training_helpers import fixed_batch

    model = build_tiny_model(seed=0)
    for e in model.conditioner.embedders:
        if e.input_key in ("cond_frames", "cond_frames_without_noise"):
            e.ucg_rate = 0.5
    batch = fixed_batch(batch_size=8, num_frames=2, size=64)
    torch.manual_seed(1)
    cond = model.conditioner(batch, dropout=True)  # as in training (the model is in eval mode here)
    assert cond["concat"].shape[0] == 8 and cond["crossattn"].shape[0] == 8
    dropped = (cond["concat"].flatten(1) == 0).all(1)
    assert 0 < dropped.sum() < 8
    per_frame = expand_cond_per_frame(cond, 8, 2)
    assert ((per_frame["concat"].flatten(1) == 0).all(1).view(8, 2) == dropped[:, None]).all()


def test_lambda_linear_scheduler_warm_up_then_constant():
    s = LambdaLinearScheduler(warm_up_steps=[10], f_min=[1.0], f_max=[1.0], f_start=[1e-6], cycle_lengths=[10**13])
    assert s(0) == pytest.approx(1e-6)
    assert s(5) == pytest.approx(0.5, rel=1e-4)
    assert s(10) == 1.0 and s(10**6) == 1.0
    two = LambdaLinearScheduler(warm_up_steps=4, f_min=0.0, f_max=1.0, f_start=0.0, cycle_lengths=[8, 8])
    assert [two(n) for n in (0, 2, 4, 6, 8, 10, 16, 100)] == pytest.approx([0, 0.5, 0.5, 0.25, 0, 0.5, 0, 0])
    with pytest.raises(ValueError, match="one per cycle"):
        LambdaLinearScheduler([1, 2], [0.0], [1.0], [0.0], [5])


def test_training_conditioning_per_frame_equals_the_sampling_conditioning():
    """What the network sees in training (per-video batch, conditioning repeated per frame) is what the
    golden-matched sampling path (sgm.inference.conditioning) gives each video."""
    from sgm.inference.conditioning import video_batch, video_conditioning
    from tests.helpers import build_tiny_model

    torch.set_num_threads(1)
    model = build_tiny_model(seed=0)
    b, t = 2, 3
    g = torch.Generator().manual_seed(0)
    images = torch.rand(b, 3, 64, 64, generator=g) * 2 - 1
    noise = torch.randn(b, 3, 64, 64, generator=g)
    cond_aug = torch.tensor([0.02, 0.1])
    fps_id, motion = torch.tensor([5, 9]), torch.tensor([127, 30])
    batch = {"cond_frames_without_noise": images, "cond_frames": images + cond_aug[:, None, None, None] * noise,
             "cond_aug": cond_aug, "fps_id": fps_id, "motion_bucket_id": motion, "num_video_frames": torch.full((b,), t)}
    rec = Recorder()
    with torch.no_grad():
        _loss()(None, rec, model.conditioner, torch.zeros(b * t, 4, 8, 8), batch)
        for i in range(b):
            single = video_batch(images[i:i + 1], noise[i:i + 1], t, int(fps_id[i]), int(motion[i]), float(cond_aug[i]))
            c, _ = video_conditioning(model.conditioner, single, t)
            assert set(c) == set(rec.cond)
            for key, value in c.items():
                torch.testing.assert_close(rec.cond[key][i * t:(i + 1) * t], value, msg=f"{key} of video {i}")


def test_guidance_conditioning_uses_the_dropout_value_the_model_was_trained_with():
    """The sampling callback's unconditional branch: the empty caption for a text embedder trained with
    legacy_ucg_value "", zeros for an embedder whose dropout zeroes it."""
    from omegaconf import OmegaConf

    from sgm.training.video_logger import guidance_conditioning
    from sgm.util import instantiate_from_config
    from tests.training_helpers import REPO

    conditioner = instantiate_from_config(OmegaConf.create({"target": "sgm.modules.GeneralConditioner", "params": {
        "emb_models": [
            {"input_key": "txt", "ucg_rate": 0.1, "legacy_ucg_value": "",
             "target": "sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder",
             "params": {"arch": str(REPO / "configs/curriculum/toy/tiny_text_clip.json"), "layer": "penultimate"}},
            {"input_key": "fps_id", "ucg_rate": 0.5,
             "target": "sgm.modules.encoders.modules.ConcatTimestepEmbedderND", "params": {"outdim": 4}}]}}))
    batch = {"txt": ["a red square", "a blue circle"], "fps_id": torch.tensor([5, 6])}
    with torch.no_grad():
        c, uc = guidance_conditioning(conditioner, batch)
        empty = conditioner.embedders[0](["", ""])
    assert not torch.equal(c["crossattn"], empty)
    torch.testing.assert_close(uc["crossattn"], empty)
    assert not uc["vector"].any() and c["vector"].any()
    _, uc_zero = guidance_conditioning(conditioner, batch, uc_keys=["txt"])  # explicit keys: zeroed
    assert not uc_zero["crossattn"].any() and uc_zero["vector"].any()


def test_logged_videos_play_at_the_frame_rate_they_were_conditioned_on():
    from sgm.training.video_logger import VideoLogger

    batch = {"fps_id": torch.tensor([5, 11])}
    assert [VideoLogger().video_fps(batch, i) for i in (0, 1)] == [6, 12]  # NOTE: fps_id = fps - 1
    assert VideoLogger(fps=10).video_fps(batch, 0) == 10
    assert VideoLogger().video_fps({"txt": ["a"]}, 0) == 7  # image batches have no frame rate
