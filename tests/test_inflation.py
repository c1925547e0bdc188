"""Curriculum weight surgery: an inflated video UNet starts as the image UNet per frame; the stage-3
image-to-video UNet starts as the stage-2 text-to-video UNet."""
import pytest
import torch

from sgm.models.inflation import (adapt_t2v_to_i2v, convert_ldm_keys, inflate_image_unet, init_temporal_as_identity_,
                                  is_temporal_key)
from sgm.modules.diffusionmodules.openaimodel import UNetModel
from sgm.modules.diffusionmodules.video_model import VideoUNet

from helpers import fill_deterministic_

# SD 2.1's layout in miniature: linear transformer projections, head width, 3 attention levels.
SPATIAL = dict(out_channels=4, model_channels=32, attention_resolutions=[2, 1], num_res_blocks=1,
               channel_mult=[1, 2], num_head_channels=16, use_linear_in_transformer=True, transformer_depth=1,
               context_dim=24)
VIDEO = dict(extra_ff_mix_layer=True, use_spatial_context=True, video_kernel_size=[3, 1, 1])
T = 3


def image_unet():
    torch.manual_seed(0)
    unet = UNetModel(in_channels=4, **SPATIAL).eval()
    fill_deterministic_(unet, seed=1)
    return unet


def video_unet(**kw):
    torch.manual_seed(1)
    params = dict(in_channels=4, **SPATIAL, **VIDEO)
    params.update(kw)
    unet = VideoUNet(**params).eval()
    fill_deterministic_(unet, seed=2)  # non-zero temporal layers: inflation must neutralise them
    return unet


def inputs(batch=2, channels=4, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch * T, channels, 16, 16, generator=g)
    t = torch.rand(batch * T, generator=g) * 2
    ctx = torch.randn(batch, 1, SPATIAL["context_dim"], generator=g).repeat_interleave(T, 0)
    return x, t, ctx


@pytest.mark.parametrize("strategy,factor", [("learned_with_images", 0.0), ("learned", -2.0), ("fixed", 0.5)])
@torch.no_grad()
def test_inflated_video_unet_equals_image_unet_per_frame(strategy, factor):
    image = image_unet()
    video = inflate_image_unet(image.state_dict(), video_unet(merge_strategy=strategy, merge_factor=factor))
    x, t, ctx = inputs()
    expected = image(x, t, context=ctx)
    got = video(x, t, context=ctx, num_video_frames=T)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    # The spatial branch alone is not enough: the temporal branch is live (non-zero gradients reach it).
    assert any(is_temporal_key(k) and v.abs().sum() > 0 for k, v in video.state_dict().items())


def test_uninflated_temporal_layers_change_the_output():
    """Guard for the test above: with random temporal output layers the outputs differ."""
    image = image_unet()
    video = video_unet()
    video.load_state_dict({k: v for k, v in image.state_dict().items()}, strict=False)
    x, t, ctx = inputs()
    with torch.no_grad():
        assert (video(x, t, context=ctx, num_video_frames=T) - image(x, t, context=ctx)).abs().max() > 1e-3


def test_inflated_temporal_layers_get_gradients():
    """Every output layer that inflation zeroed gets a gradient at once, so training moves the network
    away from the image model per frame."""
    video = inflate_image_unet(image_unet().state_dict(), video_unet())
    zeroed = {n for n, p in video.named_parameters() if is_temporal_key(n) and not p.detach().any()}
    assert any(n.endswith("weight") for n in zeroed)
    x, t, ctx = inputs(batch=1)
    video(x, t, context=ctx, num_video_frames=T).square().mean().backward()
    params = dict(video.named_parameters())
    no_grad = sorted(n for n in zeroed if params[n].grad is None or not params[n].grad.any())
    assert not no_grad, no_grad


def test_inflation_rejects_mismatched_unets():
    with pytest.raises(ValueError, match="spatial layers"):
        inflate_image_unet(image_unet().state_dict(), video_unet(channel_mult=[1, 2, 2]))
    with pytest.raises(ValueError, match="no temporal layers"):
        init_temporal_as_identity_(image_unet())


@torch.no_grad()
def test_stage3_adapted_unet_equals_stage2_at_init():
    stage2 = video_unet()
    i2v = video_unet(in_channels=8, num_classes="sequential", adm_in_channels=12)
    adapt_t2v_to_i2v(stage2.state_dict(), i2v)
    x, t, ctx = inputs()
    g = torch.Generator().manual_seed(9)
    cond_latent = torch.randn(x.shape, generator=g)
    y = torch.randn(x.shape[0], 12, generator=g)
    expected = stage2(x, t, context=ctx, num_video_frames=T)
    got = i2v(torch.cat([x, cond_latent], 1), t, context=ctx, y=y, num_video_frames=T)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    # the new parts are trainable from there: the first layer of the vector embedding is random
    assert i2v.label_emb[0][0].weight.abs().sum() > 0


def test_stage3_adaptation_rejects_other_architectures():
    with pytest.raises(ValueError, match="stage-2 weight"):
        adapt_t2v_to_i2v(video_unet().state_dict(), video_unet(in_channels=8, model_channels=64))


def test_convert_ldm_keys_renames_the_text_encoder():
    out = convert_ldm_keys({"cond_stage_model.model.ln_final.weight": torch.ones(1),
                            "model.diffusion_model.out.2.bias": torch.zeros(1)})
    assert set(out) == {"conditioner.embedders.0.model.ln_final.weight", "model.diffusion_model.out.2.bias"}


# ------------------------------------------------------------------ whole checkpoints (toy configs)
def _toy_engine(name, seed):
    from omegaconf import OmegaConf

    from sgm.models.inflation import without_ckpt_path
    from sgm.util import instantiate_from_config

    torch.manual_seed(seed)
    return instantiate_from_config(without_ckpt_path(OmegaConf.load(f"configs/curriculum/toy/{name}.yaml"))).eval()


def _load_script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_state_inflates_a_whole_engine():
    """Stage-1 engine -> stage-2 engine: autoencoder and text tower copied, network inflated."""
    from sgm.models.inflation import convert_state

    stage1 = _toy_engine("stage1_image", seed=0)
    fill_deterministic_(stage1.model, seed=4)
    stage2 = _toy_engine("stage2_video_pretrain", seed=1)
    converted = convert_state(stage1.state_dict(), stage2, "inflate")
    for key, value in stage1.state_dict().items():
        if not key.startswith("model.diffusion_model."):
            assert torch.equal(converted[key], value), key
    x, t, _ = inputs(batch=1)
    ctx = torch.randn(x.shape[0], 77, 32)
    with torch.no_grad():
        expected = stage1.model.diffusion_model(x, t, context=ctx)
        got = stage2.model.diffusion_model(x, t, context=ctx, num_video_frames=T)
    assert torch.allclose(got, expected, atol=1e-5)


def test_copy_adapter_loads_an_ldm_layout_checkpoint(tmp_path):
    """The converter CLI: an original SD 2.x file (text tower under cond_stage_model.) converts to sgm's
    layout unchanged."""
    from safetensors.torch import load_file, save_file

    engine = _toy_engine("stage1_image", seed=0)
    fill_deterministic_(engine, seed=5)
    ldm = {k.replace("conditioner.embedders.0.", "cond_stage_model.", 1): v.contiguous() for k, v in engine.state_dict().items()}
    assert any(k.startswith("cond_stage_model.model.transformer.") for k in ldm)
    save_file(ldm, str(tmp_path / "sd.safetensors"))
    out = tmp_path / "stage1_init.safetensors"
    _load_script("convert_checkpoint").main(["--src", str(tmp_path / "sd.safetensors"), "--config",
                                             "configs/curriculum/toy/stage1_image.yaml", "--adapter", "copy", "--out", str(out)])
    converted = load_file(str(out))
    assert set(converted) == set(engine.state_dict())
    assert all(torch.equal(converted[k], v) for k, v in engine.state_dict().items())


def test_network_weights_can_come_from_the_ema_copy():
    from sgm.models.inflation import network_weights

    state = {"model.diffusion_model.out.2.weight": torch.zeros(2), "model.diffusion_model.some_buffer": torch.ones(1),
             "model_ema.diffusion_modelout2weight": torch.full((2,), 3.0), "first_stage_model.x": torch.ones(1)}
    assert set(network_weights(state)) == {"out.2.weight", "some_buffer"}
    assert torch.equal(network_weights(state)["out.2.weight"], torch.zeros(2))
    ema = network_weights(state, ema=True)
    assert torch.equal(ema["out.2.weight"], torch.full((2,), 3.0)) and torch.equal(ema["some_buffer"], torch.ones(1))
    with pytest.raises(ValueError, match="no EMA weights"):
        network_weights({"model.diffusion_model.a": torch.ones(1)}, ema=True)
    with pytest.raises(ValueError, match="no 'model.diffusion_model"):
        network_weights({"first_stage_model.x": torch.ones(1)})


# ------------------------------------------------------------ autoencoders carried between stages
DD = dict(attn_type="vanilla", double_z=True, z_channels=4, resolution=64, in_channels=3, out_ch=3, ch=32,
          ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[], dropout=0.0)
REG = {"target": "sgm.modules.autoencoding.regularizers.DiagonalGaussianRegularizer"}


def _sd_vae(seed):
    from sgm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(embed_dim=4, ddconfig=DD).eval()
    fill_deterministic_(vae, seed)
    return vae


def _engine_vae():
    from sgm.models.autoencoder import AutoencodingEngine

    return AutoencodingEngine(encoder_config={"target": "sgm.modules.diffusionmodules.model.Encoder", "params": DD},
                              decoder_config={"target": "sgm.modules.diffusionmodules.model.Decoder", "params": DD},
                              regularizer_config=REG).eval()


def _prefixed(module, prefix):
    return {prefix + k: v for k, v in module.state_dict().items()}


@torch.no_grad()
def test_sd_autoencoder_folds_into_svd_layout_in_the_same_latent_space():
    from sgm.models.inflation import autoencoder_weights

    sd, svd = _sd_vae(seed=6), _engine_vae()
    src, target = _prefixed(sd, "first_stage_model."), _prefixed(svd, "first_stage_model.")
    with pytest.warns(UserWarning, match="border"):
        carried = autoencoder_weights(src, target)
    state = {k: v for k, v in src.items() if k in target}
    state.update(carried)
    svd.load_state_dict({k[len("first_stage_model."):]: v for k, v in state.items()})
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(svd.encode(x, unregularized=True)[0], sd.encode(x, unregularized=True)[0], atol=1e-5)
    z = torch.randn(2, 4, 8, 8)
    interior = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from the folded border pixels
    assert torch.allclose(svd.decode(z)[interior], sd.decode(z)[interior], atol=1e-4)


@torch.no_grad()
def test_frame_encoder_comes_from_the_first_stage():
    """SVD's conditioning-frame encoder (an AutoencoderKL) gets the previous stage's first-stage encoder,
    with identity quant convs when that autoencoder has none: same latents as the first stage."""
    from sgm.models.autoencoder import AutoencoderKLModeOnly
    from sgm.models.inflation import autoencoder_weights

    first = _engine_vae()
    fill_deterministic_(first, seed=7)
    frame_encoder = AutoencoderKLModeOnly(embed_dim=4, ddconfig=DD).eval()
    src = _prefixed(first, "first_stage_model.")
    target = _prefixed(frame_encoder, "conditioner.embedders.3.encoder.")
    carried = autoencoder_weights(src, target)
    assert set(carried) == set(target)
    frame_encoder.load_state_dict({k[len("conditioner.embedders.3.encoder."):]: v for k, v in carried.items()})
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(frame_encoder.encode(x), first.encode(x, unregularized=True)[0][:, :4], atol=1e-6)


def test_converter_cli_user_errors_are_messages(tmp_path):
    """A missing source or an unknown adapter stops the converter with a message (no traceback), before
    any model is built."""
    script = _load_script("convert_checkpoint")
    common = ["--config", "configs/curriculum/toy/stage1_image.yaml", "--out", str(tmp_path / "o.safetensors")]
    with pytest.raises(SystemExit, match="source checkpoint not found"):
        script.main(["--src", str(tmp_path / "missing.ckpt"), "--adapter", "copy", *common])
    with pytest.raises(SystemExit, match=r"unknown adapter 'inflat'.*\['copy', 'i2v', 'inflate'\]"):
        script.main(["--src", str(tmp_path / "missing.ckpt"), "--adapter", "inflat", *common])
