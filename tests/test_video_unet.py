"""Structural properties of the video model that hold for any size, frame count and weights."""
import pytest
import torch

from sgm.util import instantiate_from_config
from tests.helpers import build_tiny_model, fill_deterministic_, tiny_config


@pytest.fixture(scope="module")
def unet():
    return build_tiny_model(seed=1).model.diffusion_model


def _inputs(n, h=8, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 8, h, w, generator=g), torch.rand(n, generator=g),
            torch.randn(n, 1, 32, generator=g), torch.randn(n, 768, generator=g))


@pytest.mark.parametrize("T", [1, 3, 7])
@torch.no_grad()
def test_any_frame_count_and_size(unet, T):
    x, t, ctx, y = _inputs(2 * T, h=16, w=24)
    out = unet(x, t, context=ctx, y=y, num_video_frames=T)
    assert out.shape == (2 * T, 4, 16, 24) and torch.isfinite(out).all()


@torch.no_grad()
def test_image_only_frames_are_independent(unet):
    """With image_only_indicator = 1 every temporal layer is bypassed: each frame is an image."""
    T = 4
    x, t, ctx, y = _inputs(T)
    video = unet(x, t, context=ctx, y=y, num_video_frames=T, image_only_indicator=torch.ones(1, T))
    for k in range(T):
        single = unet(x[k:k + 1], t[k:k + 1], context=ctx[k:k + 1], y=y[k:k + 1], num_video_frames=1,
                      image_only_indicator=torch.ones(1, 1))
        assert torch.allclose(video[k:k + 1], single, atol=1e-5)


@torch.no_grad()
def test_frames_interact_through_temporal_layers(unet):
    T = 4
    x, t, ctx, y = _inputs(T)
    base = unet(x, t, context=ctx, y=y, num_video_frames=T)
    x2 = x.clone()
    x2[3] += 1.0
    changed = unet(x2, t, context=ctx, y=y, num_video_frames=T)
    assert not torch.allclose(base[0], changed[0], atol=1e-4), "frame 0 must see frame 3"


@torch.no_grad()
def test_videos_in_a_batch_are_independent(unet):
    T = 3
    x, t, ctx, y = _inputs(2 * T)
    both = unet(x, t, context=ctx, y=y, num_video_frames=T)
    first = unet(x[:T], t[:T], context=ctx[:T], y=y[:T], num_video_frames=T)
    assert torch.allclose(both[:T], first, atol=1e-5)


def test_batch_must_hold_whole_videos(unet):
    x, t, ctx, y = _inputs(5)
    with pytest.raises(ValueError, match="whole number"):
        unet(x, t, context=ctx, y=y, num_video_frames=2)


@torch.no_grad()
def test_ff_chunking_is_exact(unet):
    from sgm.modules.attention import FeedForward

    x, t, ctx, y = _inputs(4)
    base = unet(x, t, context=ctx, y=y, num_video_frames=4)
    ffs = [m for m in unet.modules() if isinstance(m, FeedForward)]
    for m in ffs:
        m.chunk_size = 7
    try:
        chunked = unet(x, t, context=ctx, y=y, num_video_frames=4)
    finally:
        for m in ffs:
            m.chunk_size = None
    assert torch.allclose(base, chunked, atol=1e-6)


@torch.no_grad()
def test_half_precision_weights_run(unet):
    import copy

    half = copy.deepcopy(unet).to(torch.bfloat16)
    x, t, ctx, y = _inputs(4)
    out = half(x, t, context=ctx, y=y, num_video_frames=4)
    ref = unet(x, t, context=ctx, y=y, num_video_frames=4)
    assert out.dtype == torch.float32
    assert (out - ref).norm() / ref.norm() < 0.05


def test_gradient_checkpointing_matches_plain_gradients():
    cfg = tiny_config(**{"model.params.network_config.params.use_checkpoint": True})
    net_ckpt = instantiate_from_config(cfg.model.params.network_config)
    net = instantiate_from_config(tiny_config().model.params.network_config)
    fill_deterministic_(net_ckpt, 2)
    fill_deterministic_(net, 2)
    x, t, ctx, y = _inputs(4)
    grads = []
    for model in (net, net_ckpt):
        model.zero_grad()
        model(x, t, context=ctx, y=y, num_video_frames=4).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_unknown_attention_mode_is_a_clear_error():
    cfg = tiny_config(**{"model.params.network_config.params.spatial_transformer_attn_type": "flash-cosine"})
    with pytest.raises(ValueError, match="attention mode must be one of"):
        instantiate_from_config(cfg.model.params.network_config)
