"""VideoPipeline on the tiny config and a checkpoint made here: shapes, settings, seeds, offload,
feed-forward chunking and the released weights."""
import numpy as np
import pytest
import torch
from PIL import Image

from sgm.inference import MissingCheckpointError, SamplingOptions, VideoPipeline, VideoResult
from sgm.inference.memory import set_ff_chunk_size
from tests.inference_helpers import random_rgb, tiny_checkpoint, tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def images():
    return [Image.fromarray(random_rgb(80, 150, s)) for s in (10, 11)]


def test_generate_returns_video_with_settings(pipe, images):
    steps = []
    result = pipe.generate(images[0], SamplingOptions(seed=5, fps_id=9), progress=lambda i, n, s: steps.append((i, n, s)))
    assert isinstance(result, VideoResult)
    d = pipe.defaults
    assert result.frames.shape == (d.num_frames, d.height, d.width, 3) and result.frames.dtype == np.uint8
    assert result.fps == 10 and result.settings["fps"] == 10
    assert result.input_image.size == (d.width, d.height)
    assert [s for s in steps if s[2] == "sampling"] == [(i, d.num_steps, "sampling") for i in range(1, d.num_steps + 1)]
    assert steps[-1][2] == "decoding"
    for key in ("seed", "base_seed", "num_steps", "motion_bucket_id", "cond_aug", "ckpt", "config", "sgm_version",
                "decoding_t", "decoding_overlap", "sampler", "min_cfg", "max_cfg", "dtype"):
        assert key in result.settings, key
    assert result.settings["base_seed"] == 5 and result.settings["ckpt"] == str(tiny_checkpoint())
    assert result.frames.std() > 0  # not a constant image


def test_same_seed_same_video_and_order_independence(pipe, images):
    opts = SamplingOptions(seed=7)
    a0 = pipe.generate(images[0], opts).frames
    b_first = pipe.generate(images[1], opts).frames
    a1 = pipe.generate(images[0], opts).frames
    np.testing.assert_array_equal(a0, a1)
    assert not np.array_equal(a0, pipe.generate(images[0], SamplingOptions(seed=8)).frames)
    # Seeds come from the pixels, not the position in a batch: B alone equals B after A.
    assert np.array_equal(b_first, pipe.generate(images[1], opts).frames)


def test_video_index_changes_the_seed(pipe, images):
    r0 = pipe.generate(images[0], SamplingOptions(seed=1), video_index=0)
    r1 = pipe.generate(images[0], SamplingOptions(seed=1), video_index=1)
    assert r0.settings["seed"] != r1.settings["seed"]
    assert not np.array_equal(r0.frames, r1.frames)


def test_offload_does_not_change_results(pipe, images):
    opts = SamplingOptions(seed=3)
    z_ref = pipe.sample_latents(images[0], opts)
    pipe.offloader.enabled = True
    try:
        z_off = pipe.sample_latents(images[0], opts)
        frames_off = pipe.decode_latents(z_off, opts)
        moves = [name for name, _ in pipe.offloader.moves]
    finally:
        pipe.offloader.enabled = False
        pipe.offloader.moves.clear()
    assert (z_off - z_ref).abs().max().item() < 1e-5
    np.testing.assert_array_equal(frames_off, pipe.decode_latents(z_ref, opts))
    # each part visits the compute device once, in the order it runs, and goes back
    assert moves == ["conditioner", "conditioner", "network", "network", "first_stage", "first_stage"]


def test_ff_chunking_does_not_change_results(pipe, images):
    opts = SamplingOptions(seed=4)
    z_ref = pipe.sample_latents(images[0], opts)
    assert set_ff_chunk_size(pipe.model, 7) > 0
    try:
        z_chunked = pipe.sample_latents(images[0], opts)
    finally:
        set_ff_chunk_size(pipe.model, None)
    assert (z_chunked - z_ref).abs().max().item() < 1e-5


def test_released_weights_are_not_needed(pipe):
    assert not hasattr(pipe.model.first_stage_model, "encoder")
    clip = pipe.model.conditioner.embedders[0].open_clip.model
    assert not hasattr(clip, "token_embedding") and hasattr(clip, "visual")
    assert not hasattr(pipe.model.conditioner.embedders[3].encoder, "decoder")


def test_fp32_pipeline_matches_unreleased_model(pipe, images):
    """Releasing unused weights and loading through the pipeline do not change the video."""
    full = VideoPipeline.load(config=pipe.info["config"], ckpt=pipe.info["ckpt"], device="cpu", dtype="fp32",
                              release_unused=False)
    opts = SamplingOptions(seed=2)
    z_full = full.sample_latents(images[0], opts)
    assert (z_full - pipe.sample_latents(images[0], opts)).abs().max().item() == 0.0


def test_sampler_and_guidance_options(pipe, images):
    opts = SamplingOptions(seed=2, sampler="heun", num_steps=2, min_cfg=1.0, max_cfg=1.0)
    r = pipe.generate(images[0], opts)
    assert r.settings["sampler"] == "heun" and r.frames.shape[0] == pipe.defaults.num_frames
    with pytest.raises(ValueError, match="unknown sampler"):
        pipe.generate(images[0], SamplingOptions(sampler="nope"))


def test_off_trained_size_warns_and_works(pipe, images):
    with pytest.warns(UserWarning, match="trained at 128x64"):
        r = pipe.generate(images[0], SamplingOptions(height=128, width=64, num_frames=2, num_steps=1))
    assert r.frames.shape == (2, 128, 64, 3)


def test_missing_checkpoint_names_path_and_official_file(tmp_path):
    wanted = tmp_path / "checkpoints" / "svd_xt.safetensors"
    with pytest.raises(MissingCheckpointError) as info:
        VideoPipeline.load(version="svd_xt", ckpt=str(wanted), device="cpu")
    message = str(info.value)
    assert str(wanted) in message and "svd_xt.safetensors" in message and "stable-video-diffusion-img2vid-xt" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_default_checkpoint_is_looked_for_in_the_repo(tmp_path, monkeypatch):
    from sgm.inference import checkpoints

    monkeypatch.setattr(checkpoints, "REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingCheckpointError) as info:
        checkpoints.resolve_checkpoint(None, "checkpoints/svd.safetensors", "svd")
    assert str(tmp_path / "checkpoints" / "svd.safetensors") in str(info.value)
    assert "svd.safetensors" in info.value.official_name and "img2vid" in info.value.source


def test_prepare_image_is_the_conditioning_crop(pipe, images):
    opts = SamplingOptions(seed=1, crop_offset=(0.0, 0.0))
    crop = pipe.prepare_image(images[0], opts)
    assert crop.size == (pipe.defaults.width, pipe.defaults.height) and crop.mode == "RGB"
    result = pipe.generate(images[0], SamplingOptions(num_steps=1, crop_offset=(0.0, 0.0)))
    assert np.array_equal(np.asarray(crop), np.asarray(result.input_image))


def test_cuda_out_of_memory_becomes_an_actionable_error(pipe, images, monkeypatch):
    from sgm.inference import OutOfMemoryError

    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipe.model, "sample_video", boom)
    with pytest.raises(OutOfMemoryError, match="while sampling.*offload") as info:
        pipe.generate(images[0])
    assert "decoding_t" in str(info.value) and "fp16" in str(info.value)


def test_half_precision_weights_run(images):
    from tests.helpers import TINY_CONFIG

    pipe = VideoPipeline.load(config=str(TINY_CONFIG), ckpt=str(tiny_checkpoint()), device="cpu", dtype="bf16")
    assert next(pipe.model.model.parameters()).dtype == torch.bfloat16
    result = pipe.generate(images[0], SamplingOptions(num_steps=2))
    assert result.settings["dtype"] == "bfloat16" and result.frames.shape[0] == pipe.defaults.num_frames


@pytest.mark.gpu
def test_offload_on_cuda_matches_and_leaves_the_gpu_empty(images):
    from tests.helpers import TINY_CONFIG

    kwargs = dict(config=str(TINY_CONFIG), ckpt=str(tiny_checkpoint()), device="cuda", dtype="fp32")
    plain = VideoPipeline.load(**kwargs)
    z_plain = plain.sample_latents(images[0], SamplingOptions(seed=3)).cpu()
    del plain
    torch.cuda.empty_cache()
    offloaded = VideoPipeline.load(offload=True, **kwargs)
    z_off = offloaded.sample_latents(images[0], SamplingOptions(seed=3)).cpu()
    assert (z_off - z_plain).abs().max().item() < 1e-4
    assert all(p.device.type == "cpu" for p in offloaded.model.parameters())


def test_image_decoder_variant_decodes_frame_by_frame(images):
    """The *_image_decoder models decode each frame alone: no overlap is needed or used."""
    from omegaconf import OmegaConf

    from tests.helpers import tiny_config

    cfg = tiny_config()
    ddconfig = OmegaConf.to_container(cfg.model.params.first_stage_config.params.encoder_config.params)
    cfg.model.params.first_stage_config = {"target": "sgm.models.autoencoder.AutoencoderKL",
                                           "params": {"embed_dim": 4, "ddconfig": ddconfig, "lossconfig": {"target": "torch.nn.Identity"}}}
    pipe = VideoPipeline.load(config=cfg, device="cpu", random_weights=True)
    result = pipe.generate(images[0], SamplingOptions(num_steps=1, decoding_t=1, decoding_overlap=4))
    assert result.settings["decoding_overlap"] == 0 and result.frames.shape[0] == pipe.defaults.num_frames
    assert not hasattr(pipe.model.first_stage_model, "encoder") and hasattr(pipe.model.first_stage_model, "post_quant_conv")


def test_device_names_are_checked_before_building(monkeypatch):
    from sgm.inference.pipeline import parse_device

    assert parse_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        parse_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        parse_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="cuda:2 does not exist; this machine has 2 CUDA device"):
        parse_device("cuda:2")
