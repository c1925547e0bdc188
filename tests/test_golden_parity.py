"""Parity with the original implementation on the reference fixtures (../shared/reference)."""
import json

import pytest
import torch
from einops import repeat
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file

from sgm.util import instantiate_from_config


@pytest.fixture(scope="module")
def tiny_case(reference_dir, golden):
    import open_clip

    gdir = reference_dir / "golden"
    open_clip.add_model_config(str(gdir / "tiny_clip_public.json"))
    model = instantiate_from_config(OmegaConf.load(gdir / "tiny_public.yaml").model).eval()
    with safe_open(str(gdir / "tiny_public.safetensors"), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    golden.fill_(model, seed=int(meta["seed"]))
    return model, tensors, meta


def _conditioning(model, t, meta):
    T, ca = int(meta["T"]), float(meta["cond_aug"])
    image = t["input.image"]
    batch = {
        "cond_frames_without_noise": image,
        "cond_frames": image + ca * t["input.cond_noise"],
        "fps_id": torch.tensor([int(meta["fps_id"])] * T),
        "motion_bucket_id": torch.tensor([int(meta["motion"])] * T),
        "cond_aug": torch.tensor([ca] * T),
        "num_video_frames": T,
    }
    return model.conditioner.get_unconditional_conditioning(
        batch, batch_uc=batch, force_uc_zero_embeddings=["cond_frames", "cond_frames_without_noise"])


def _per_frame(c, T):
    c = dict(c)
    for k in ("crossattn", "concat"):
        c[k] = repeat(c[k], "b ... -> (b t) ...", t=T)
    return c


@torch.no_grad()
def test_conditioner(tiny_case, golden):
    model, t, meta = tiny_case
    c, uc = _conditioning(model, t, meta)
    assert set(c) == set(uc) == {"crossattn", "vector", "concat"}
    for k in c:
        golden.compare(f"cond.c.{k}", c[k], t[f"cond.c.{k}"])
        expected_uc = t[f"cond.uc.{k}"]
        if expected_uc.abs().max() == 0:
            assert torch.equal(uc[k], torch.zeros_like(expected_uc)), k
        else:
            golden.compare(f"cond.uc.{k}", uc[k], expected_uc)


@torch.no_grad()
def test_unet_raw_call(tiny_case, golden):
    model, t, meta = tiny_case
    T = int(meta["T"])
    out = model.model.diffusion_model(t["unet.in.x"], timesteps=t["unet.in.timesteps"], context=t["unet.in.context"],
                                      y=t["unet.in.y"], num_video_frames=T, image_only_indicator=torch.zeros(2, T))
    golden.compare("unet.out", out, t["unet.out"])


@torch.no_grad()
def test_denoiser_with_cfg_batch(tiny_case, golden):
    model, t, meta = tiny_case
    T = int(meta["T"])
    c, uc = _conditioning(model, t, meta)
    c, uc = _per_frame(c, T), _per_frame(uc, T)
    x, sigma, cond = model.sampler.guider.prepare_inputs(2 * t["input.randn"], torch.full((T,), 3.7), c, uc)
    out = model.denoiser(model.model, x, sigma, cond, num_video_frames=T, image_only_indicator=torch.zeros(2, T))
    golden.compare("denoiser.out", out, t["denoiser.out"])


def test_discretization(tiny_case, golden):
    model, t, meta = tiny_case
    golden.compare("sigmas", model.sampler.discretization(int(meta["steps"])), t["sigmas"])


@torch.no_grad()
def test_sampling_and_decoding(tiny_case, golden):
    model, t, meta = tiny_case
    T = int(meta["T"])
    c, uc = _conditioning(model, t, meta)
    c, uc = _per_frame(c, T), _per_frame(uc, T)
    kw = dict(image_only_indicator=torch.zeros(2, T), num_video_frames=T)
    randn = t["input.randn"].clone()

    def denoiser(x, sigma, cond):
        return model.denoiser(model.model, x, sigma, cond, **kw)

    z = model.sampler(denoiser, randn, cond=c, uc=uc)
    assert torch.equal(randn, t["input.randn"]), "the sampler must not modify the caller's noise"
    golden.compare("samples.z", z, t["samples.z"])
    golden.compare("samples.x", model.decode_first_stage(z), t["samples.x"])


@torch.no_grad()
def test_sample_video_gives_the_golden_samples(tiny_case, golden):
    """The one sampling path (DiffusionEngine.sample_video) from the raw batch to the golden latents."""
    model, t, meta = tiny_case
    T, ca = int(meta["T"]), float(meta["cond_aug"])
    image = t["input.image"]
    batch = {"cond_frames_without_noise": image, "cond_frames": image + ca * t["input.cond_noise"],
             "fps_id": torch.tensor([int(meta["fps_id"])] * T), "motion_bucket_id": torch.tensor([int(meta["motion"])] * T),
             "cond_aug": torch.tensor([ca] * T), "num_video_frames": T}
    z = model.sample_video(batch, T, t["input.randn"], num_steps=int(meta["steps"]), min_cfg=float(meta["min_cfg"]),
                           max_cfg=float(meta["max_cfg"]), uc_keys=["cond_frames", "cond_frames_without_noise"])
    golden.compare("samples.z", z, t["samples.z"])


@torch.no_grad()
def test_conditioning_frame_encoder(tiny_case, golden):
    model, t, _ = tiny_case
    encoder = model.conditioner.embedders[3].encoder
    golden.compare("first_stage.encode_mode", encoder.encode(t["input.image"]), t["first_stage.encode_mode"])


@pytest.mark.slow
@torch.no_grad()
def test_full_size_clip_image_embedder(reference_dir, golden):
    from sgm.modules.encoders.modules import FrozenOpenCLIPImageEmbedder

    t = load_file(str(reference_dir / "golden" / "clip_vit_h14.safetensors"))
    embedder = FrozenOpenCLIPImageEmbedder(arch="ViT-H-14", version=None)
    golden.fill_(embedder, seed=0, prefix="conditioner.embedders.0.open_clip.")
    golden.compare("clip output", embedder(t["input.image"]), t["output"])


MANIFESTS = {"svd": "svd", "svd_xt": "svd", "svd_xt_1_1": "svd",
             "svd_image_decoder": "svd_image_decoder", "svd_xt_image_decoder": "svd_image_decoder"}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_state_dict_layout_matches_official_checkpoints(name, reference_dir):
    from tests.helpers import REPO

    cfg = OmegaConf.load(REPO / "configs" / "inference" / f"{name}.yaml")
    with torch.device("meta"):
        model = instantiate_from_config(cfg.model)
    ours = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()}
    ref = json.loads((reference_dir / "manifests" / f"{MANIFESTS[name]}.json").read_text())
    assert sorted(set(ref) - set(ours)) == [], "keys missing from our model"
    assert sorted(set(ours) - set(ref)) == [], "keys our model has that the checkpoint lacks"
    assert {k: v for k, v in ours.items() if ref[k] != v} == {}
    assert all(p.is_meta for p in model.parameters())
