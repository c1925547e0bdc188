"""Weights converted to the diffusers layout run in diffusers' own modules with our outputs, and come
back bit for bit (scripts/convert_weights.py, sgm.interop)."""
import json
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import REPO, build_tiny_model, tiny_config

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

# diffusers' temporal VAE decoder ties its mid block to layers_per_block, so it can hold SVD's VAE
# (2 residual blocks per level) but not the 1 of configs/tiny: the tiny VAE gets SVD's count here.
VAE_BLOCKS = ["model.params.first_stage_config.params.encoder_config.params.num_res_blocks",
              "model.params.first_stage_config.params.decoder_config.params.num_res_blocks",
              "model.params.conditioner_config.params.emb_models[3].params.encoder_config.params.ddconfig.num_res_blocks"]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def image_decoder_config():
    """The tiny config with the per-frame image decoder (AutoencoderKL), as svd_image_decoder.yaml."""
    cfg = tiny_config(**{k: 2 for k in VAE_BLOCKS})
    ddconfig = OmegaConf.to_container(cfg.model.params.first_stage_config.params.encoder_config.params)
    cfg.model.params.first_stage_config = OmegaConf.create({
        "target": "sgm.models.autoencoder.AutoencoderKL",
        "params": {"embed_dim": 4, "ddconfig": ddconfig, "lossconfig": {"target": "torch.nn.Identity"}}})
    return cfg


def convert(tmp_path, cfg, name="tiny"):
    """(our model, its checkpoint, the converted folder) made through the command line."""
    from safetensors.torch import save_file

    model = build_tiny_model(seed=0, config=cfg)
    config_path, ckpt, out = tmp_path / f"{name}.yaml", tmp_path / f"{name}.safetensors", tmp_path / f"{name}_diffusers"
    OmegaConf.save(cfg, config_path)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    run = subprocess.run([sys.executable, "scripts/convert_weights.py", "--to", "diffusers", "--config", str(config_path),
                          str(ckpt), str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return model, ckpt, out


@pytest.fixture(scope="module")
def video_case(tmp_path_factory):
    return convert(tmp_path_factory.mktemp("video"), tiny_config(**{k: 2 for k in VAE_BLOCKS}))


@pytest.fixture(scope="module")
def image_case(tmp_path_factory):
    return convert(tmp_path_factory.mktemp("image"), image_decoder_config())


def test_the_folder_loads_as_a_stable_video_diffusion_pipeline(video_case):
    _, _, out = video_case
    pipe = diffusers.StableVideoDiffusionPipeline.from_pretrained(str(out))
    assert type(pipe.vae).__name__ == "AutoencoderKLTemporalDecoder"
    assert set(json.loads((out / "model_index.json").read_text())) >= {"unet", "vae", "image_encoder", "feature_extractor",
                                                                       "scheduler"}


def test_unet_output_matches_diffusers(video_case):
    from sgm.modules.diffusionmodules.util import timestep_embedding

    model, _, out = video_case
    theirs = diffusers.UNetSpatioTemporalConditionModel.from_pretrained(str(out), subfolder="unet").eval()
    ours = model.model.diffusion_model
    g = torch.Generator().manual_seed(1)
    B, T, h, w = 2, 4, 8, 16
    x = torch.randn(B, T, 8, h, w, generator=g)
    c_noise = torch.tensor([0.3, -0.7])
    context = torch.randn(B, 1, 32, generator=g)
    time_ids = torch.tensor([[6.0, 127.0, 0.02], [3.0, 30.0, 0.1]])  # fps_id, motion_bucket_id, cond_aug
    y = torch.cat([timestep_embedding(time_ids[:, i], 256) for i in range(3)], dim=1)  # (B, 768)
    with torch.no_grad():
        expected = ours(x.flatten(0, 1), c_noise.repeat_interleave(T), context.repeat_interleave(T, 0),
                        y.repeat_interleave(T, 0), num_video_frames=T, image_only_indicator=torch.zeros(B, T))
        actual = theirs(x, c_noise, context, time_ids).sample.flatten(0, 1)
    assert expected.abs().mean() > 1e-3
    assert rel_err(actual, expected) < 1e-4


@pytest.mark.parametrize("case", ["video_case", "image_case"])
def test_vae_decode_and_encode_match_diffusers(case, request):
    model, _, out = request.getfixturevalue(case)
    cls = diffusers.AutoencoderKLTemporalDecoder if case == "video_case" else diffusers.AutoencoderKL
    theirs = cls.from_pretrained(str(out), subfolder="vae").eval()
    g = torch.Generator().manual_seed(2)
    T = 4
    z = torch.randn(T, 4, 8, 8, generator=g)
    image = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    kwargs = {"num_frames": T} if case == "video_case" else {}
    with torch.no_grad():
        expected = model.first_stage_model.decode(z, **({"timesteps": T} if case == "video_case" else {}))
        actual = theirs.decode(z, **kwargs).sample
        cond_latent = model.conditioner.embedders[3].encoder.encode(image)  # the conditioning frame's latent (mode)
        their_latent = theirs.encode(image).latent_dist.mode()
    assert rel_err(actual, expected) < 1e-4
    assert rel_err(their_latent, cond_latent) < 1e-4


def test_clip_image_embeddings_match_transformers(video_case):
    model, _, out = video_case
    theirs = transformers.CLIPVisionModelWithProjection.from_pretrained(str(out / "image_encoder")).eval()
    embedder = model.conditioner.embedders[0].open_clip
    image = torch.rand(2, 3, 72, 128, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        expected = embedder(image)  # (2, D), our preprocessing included
        actual = theirs(pixel_values=embedder.preprocess(image)).image_embeds
    assert rel_err(actual, expected) < 1e-4


@pytest.mark.parametrize("case", ["video_case", "image_case"])
def test_round_trip_is_bit_identical(case, request, tmp_path):
    from safetensors.torch import load_file

    _, ckpt, out = request.getfixturevalue(case)
    back = tmp_path / "back.safetensors"
    run = subprocess.run([sys.executable, "scripts/convert_weights.py", "--to", "sgm", str(out), str(back)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    a, b = load_file(str(ckpt)), load_file(str(back))
    assert sorted(a) == sorted(b)
    assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    assert back.read_bytes() == ckpt.read_bytes()


def test_extras_hold_only_what_diffusers_has_no_place_for(video_case):
    from safetensors.torch import load_file

    _, _, out = video_case
    extras = load_file(str(out / "sgm_extras.safetensors"))
    allowed = ("conditioner.embedders.0.open_clip.model.", "conditioner.embedders.3.encoder.decoder.",
               "conditioner.embedders.3.encoder.post_quant_conv.", "first_stage_model.encoder.")
    assert extras and all(k.startswith(allowed) for k in extras)
    assert not any(".visual." in k for k in extras)  # the whole image tower went to image_encoder/


@pytest.mark.parametrize("name", ["svd", "svd_image_decoder"])
def test_official_layout_maps_onto_full_size_diffusers_modules(name, reference_dir, monkeypatch):
    """Every key of the official checkpoint (the reference manifest) that sampling reads lands on a
    diffusers parameter of the same shape, and every diffusers parameter is filled (on the meta device)."""
    from sgm.interop import convert
    from sgm.interop.diffusers_configs import clip_vision_kwargs, unet_config, vae_config
    from sgm.interop.layout import layout_from_config

    manifest = json.loads((reference_dir / "manifests" / f"{name}.json").read_text())
    cfg = OmegaConf.load(REPO / "configs" / "inference" / f"{name}.yaml")
    fake = {k: torch.empty(shape, device="meta") for k, (shape, _) in manifest.items()}
    monkeypatch.setattr(convert.torch, "equal", lambda a, b: True)  # meta tensors have no values: copies are equal
    components, extras = convert.to_diffusers(fake, layout_from_config(cfg.model))
    monkeypatch.undo()
    vae_cfg = vae_config(cfg.model)
    clip_cfg = clip_vision_kwargs(cfg.model)
    with torch.device("meta"):
        modules = {"unet": diffusers.UNetSpatioTemporalConditionModel.from_config(unet_config(cfg.model, 25)),
                   "vae": getattr(diffusers, vae_cfg["_class_name"]).from_config(vae_cfg),
                   "image_encoder": transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**clip_cfg))}
    for comp, module in modules.items():
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in components[comp].items()}
        assert got == want, (comp, sorted(set(want) ^ set(got))[:5])
    leftovers = ("conditioner.embedders.0.open_clip.model.", "conditioner.embedders.3.encoder.decoder.",
                 "conditioner.embedders.3.encoder.post_quant_conv.")
    assert all(k.startswith(leftovers) and ".visual." not in k for k in extras), sorted(extras)[:5]


def test_sampler_pipeline_and_training_take_a_diffusers_folder(video_case, tmp_path):
    """--ckpt FOLDER, VideoPipeline.load(ckpt=FOLDER) and model.params.ckpt_path=FOLDER load the same
    weights as the original file."""
    from PIL import Image

    from scripts.sampling.simple_video_sample import main as sample_main
    from sgm.inference import SamplingOptions, VideoPipeline
    from sgm.util import instantiate_from_config

    model, ckpt, out = video_case
    config = ckpt.with_suffix(".yaml")
    torch.set_num_threads(1)
    opts = SamplingOptions(num_frames=2, num_steps=1, seed=3)
    image = Image.new("RGB", (128, 64), (30, 160, 90))
    z_file = VideoPipeline.load(config=str(config), ckpt=str(ckpt), device="cpu").sample_latents(image, opts)
    z_folder = VideoPipeline.load(config=str(config), ckpt=str(out), device="cpu").sample_latents(image, opts)
    assert torch.equal(z_file, z_folder)

    cfg = OmegaConf.load(config)
    cfg.model.params.ckpt_path = str(out)
    trained_from = instantiate_from_config(cfg.model).state_dict()  # as main.py builds the model
    assert all(torch.equal(v, trained_from[k]) for k, v in model.state_dict().items())

    image.save(tmp_path / "in.png")
    status = sample_main(["--config", str(config), "--ckpt", str(out), "--input_path", str(tmp_path / "in.png"),
                          "--output_folder", str(tmp_path / "videos"), "--num_frames", "2", "--num_steps", "1",
                          "--device", "cpu"])
    assert status == 0 and (tmp_path / "videos" / "in.mp4").is_file()
