"""Official checkpoints (marked `checkpoint`): skipped unless the file is under checkpoints/."""
import pytest
import torch

from sgm.models.loading import build_model, load_config
from tests.helpers import REPO

VERSIONS = ["svd", "svd_xt", "svd_xt_1_1", "svd_image_decoder", "svd_xt_image_decoder"]


@pytest.mark.checkpoint
@pytest.mark.parametrize("version", VERSIONS)
@torch.no_grad()
def test_official_checkpoint_loads_and_samples_two_steps(version):
    config_path = REPO / "configs" / "inference" / f"{version}.yaml"
    config = load_config(config_path)
    ckpt = REPO / config.sampling.checkpoint
    if not ckpt.is_file():
        pytest.skip(f"{ckpt} not present")
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    model = build_model(config_path, ckpt_path=str(ckpt), device=device, dtype=dtype)
    T, H, W = (4, 256, 256) if cuda else (2, 128, 128)
    g = torch.Generator(device="cpu").manual_seed(0)
    image = (torch.rand(1, 3, H, W, generator=g) * 2 - 1).to(device, dtype)
    batch = {"cond_frames_without_noise": image, "cond_frames": image + 0.02 * torch.randn(image.shape, generator=g).to(device, dtype),
             "fps_id": torch.full((T,), 6, device=device), "motion_bucket_id": torch.full((T,), 127, device=device),
             "cond_aug": torch.full((T,), 0.02, device=device), "num_video_frames": T}
    randn = torch.randn(T, 4, H // 8, W // 8, generator=g).to(device, dtype)
    z = model.sample_video(batch, T, randn, num_steps=2, uc_keys=["cond_frames", "cond_frames_without_noise"])
    frames = model.decode_first_stage(z)
    assert frames.shape == (T, 3, H, W) and torch.isfinite(frames).all()
