"""DiffusionEngine.sample_video: the one owner of a video sampling run."""
import pytest
import torch

from sgm.inference.conditioning import UC_ZERO_KEYS, video_batch
from sgm.models.video_sampling import build_sampler
from sgm.modules.diffusionmodules.guiders import LinearPredictionGuider
from sgm.modules.diffusionmodules.sampling import EulerEDMSampler
from tests.helpers import build_tiny_model, tiny_config

T, H, W = 3, 64, 64  # the tiny config's guider says 4 frames: the call's T must win


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_tiny_model(seed=0)


def _batch():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, H, W, generator=g) * 2 - 1
    return video_batch(image, torch.randn(image.shape, generator=g), T, fps_id=5, motion_bucket_id=100, cond_aug=0.02)


@torch.no_grad()
def test_sample_video_is_the_original_loop(model):
    """The same numbers as the original client's loop, written out by hand."""
    batch = _batch()
    noise = torch.randn(T, *model.latent_shape(H, W), generator=torch.Generator().manual_seed(2))
    z = model.sample_video(batch, T, noise, num_steps=3, min_cfg=1.5, max_cfg=3.0, uc_keys=UC_ZERO_KEYS)

    c, uc = model.conditioner.get_unconditional_conditioning(batch, batch_uc=batch, force_uc_zero_embeddings=UC_ZERO_KEYS)
    for k in ("crossattn", "concat"):
        c[k], uc[k] = c[k].repeat_interleave(T, 0), uc[k].repeat_interleave(T, 0)
    sampler = EulerEDMSampler(discretization_config=model.sampler_config["params"]["discretization_config"], num_steps=3,
                              guider_config={"target": "sgm.modules.diffusionmodules.guiders.LinearPredictionGuider",
                                             "params": {"max_scale": 3.0, "min_scale": 1.5, "num_frames": T}})
    kw = dict(image_only_indicator=torch.zeros(2, T), num_video_frames=T)
    expected = sampler(lambda x, s, cc: model.denoiser(model.model, x, s, cc, **kw), noise.clone(), c, uc)
    assert torch.allclose(z, expected, atol=1e-6)


@torch.no_grad()
def test_a_call_leaves_no_state_behind(model):
    before = (model.sampler.guider.num_frames, model.sampler.guider.max_scale, model.en_and_decode_n_samples_a_time)
    steps = []
    noise = torch.randn(T, *model.latent_shape(H, W))
    model.sample_video(_batch(), T, noise, sampler="euler_a", num_steps=2, max_cfg=5.0, uc_keys=UC_ZERO_KEYS,
                       generator=torch.Generator().manual_seed(0), callback=lambda s: steps.append(s.i))
    assert steps == [0, 1]
    assert (model.sampler.guider.num_frames, model.sampler.guider.max_scale, model.en_and_decode_n_samples_a_time) == before
    x = model.decode_first_stage(noise, n_samples_a_time=1)
    assert x.shape == (T, 3, H, W) and model.en_and_decode_n_samples_a_time == before[2]


@pytest.mark.parametrize("target,expected", [
    ("LinearPredictionGuider", [1.0, 1.5, 2.0, 2.5, 3.0]),       # min on the first frame, max on the last
    ("TrianglePredictionGuider", [1.0, 2.0, 3.0, 2.0, 1.0]),     # min at both ends, max in the middle
    ("TrapezoidPredictionGuider", [1.0, 3.0, 1.0, 3.0, 1.0]),    # the original's ramps, edge_perc 0.4
])
def test_guidance_options_build_the_guider_for_the_call(target, expected):
    cfg = tiny_config().model.params.sampler_config
    cfg.params.guider_config = {"target": f"sgm.modules.diffusionmodules.guiders.{target}",
                                "params": {"max_scale": 9.0, "num_frames": 14,
                                           **({"edge_perc": 0.4} if "Trapezoid" in target else {})}}
    guider = build_sampler(cfg, "heun", num_frames=5, min_scale=1.0, max_scale=3.0).guider
    assert isinstance(guider, LinearPredictionGuider) and guider.num_frames == 5
    assert torch.allclose(guider.scale[0], torch.tensor(expected))


def test_noise_must_be_whole_videos(model):
    with pytest.raises(ValueError, match="T=3"):
        model.sample_video(_batch(), T, torch.randn(4, 4, 8, 8), num_steps=1)


def test_call_chain_from_the_cli_to_the_unet_is_short(tmp_path, monkeypatch):
    """Fewer than 13 of our frames between the CLI's main() and the UNet (it was 13 with the UNet)."""
    import traceback

    import numpy as np
    from PIL import Image

    from scripts.sampling.simple_video_sample import main
    from sgm.modules.diffusionmodules.video_model import VideoUNet
    from tests.helpers import TINY_CONFIG
    from tests.inference_helpers import tiny_checkpoint

    depths, forward = [], VideoUNet.forward

    def traced(self, *args, **kwargs):
        stack = traceback.extract_stack()
        start = max(i for i, f in enumerate(stack) if f.name == "main" and f.filename.endswith("simple_video_sample.py"))
        depths.append(sum("/torch/" not in f.filename for f in stack[start:]))  # includes this frame (the UNet's)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(VideoUNet, "forward", traced)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["--input_path", str(tmp_path / "a.png"), "--config", str(TINY_CONFIG), "--ckpt", str(tiny_checkpoint()),
                 "--output_folder", str(tmp_path / "out"), "--num_frames", "2", "--num_steps", "1", "--width", "64",
                 "--height", "64", "--device", "cpu"]) == 0
    assert depths and max(depths) < 13, depths


@torch.no_grad()
def test_training_logger_samples_image_models_through_the_same_path():
    """An image model (curriculum stage 1: text-conditioned UNetModel) samples through sample_video too."""
    from omegaconf import OmegaConf

    from sgm.training.video_logger import sample_like_batch
    from sgm.util import instantiate_from_config
    from tests.helpers import REPO

    torch.manual_seed(0)
    model = instantiate_from_config(OmegaConf.load(REPO / "configs/curriculum/toy/stage1_image.yaml").model).eval()
    batch = {"jpg": torch.rand(2, 3, 64, 64) * 2 - 1, "txt": ["a red ball", "a blue cube"]}
    out = sample_like_batch(model, batch, num_videos=2, num_steps=2)
    assert out.shape == (2, 1, 3, 64, 64) and torch.isfinite(out).all()
