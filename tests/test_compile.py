"""The compiled path: no graph breaks in the UNet forward, compiled outputs equal eager ones, which
changes of shape recompile, and the switches that turn it on (pipeline, CLI, training config)."""
import pytest
import torch
from torch._dynamo.testing import CompileCounter

from sgm.modules.attention import CrossAttention
from sgm.modules.compile import CompileOptions, compile_module, compiled_callable, is_compiled
from sgm.util import instantiate_from_config
from tests.helpers import build_tiny_model, fill_deterministic_, tiny_config


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def small_unet(seed: int = 1, levels: int = 2) -> torch.nn.Module:
    """The tiny VideoUNet cut to `levels` levels and one res block per level: every layer type of SVD's UNet
    (video res blocks, spatial-temporal transformers, down- and upsampling when levels > 1) at a fraction
    of the tracing time."""
    cfg = tiny_config()
    params = cfg.model.params.network_config.params
    params.channel_mult, params.num_res_blocks, params.attention_resolutions = [1, 2][:levels], 1, [1, 2][:levels]
    unet = instantiate_from_config(cfg.model.params.network_config).eval()
    fill_deterministic_(unet, seed)
    return unet


def unet_inputs(T: int, h: int = 16, w: int = 16, videos: int = 2, seed: int = 0):
    """(args, kwargs) of one guided call: `videos` x T frames at an (h, w) latent."""
    g = torch.Generator().manual_seed(seed)
    n = videos * T
    return ((torch.randn(n, 8, h, w, generator=g), torch.rand(n, generator=g)),
            dict(context=torch.randn(n, 1, 32, generator=g), y=torch.randn(n, 768, generator=g), num_video_frames=T,
                 image_only_indicator=torch.zeros(videos, T)))


@pytest.mark.slow
@torch.no_grad()
def test_tiny_unet_forward_is_one_graph():
    """torch._dynamo.explain on the tiny model (configs/tiny/svd_tiny.yaml): one graph, no breaks."""
    unet = build_tiny_model(seed=1).model.diffusion_model
    args, kwargs = unet_inputs(T=3, h=8, w=8)
    explanation = torch._dynamo.explain(unet)(*args, **kwargs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
def test_training_forward_is_one_graph():
    """With gradients on (training: the full attention path, no single-token shortcut) still one graph."""
    unet = small_unet().train()
    args, kwargs = unet_inputs(T=2, h=8, w=8, videos=1)
    explanation = torch._dynamo.explain(unet)(*args, **kwargs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
@torch.no_grad()
def test_compiled_unet_matches_eager_within_1e4():
    unet = small_unet()
    args, kwargs = unet_inputs(T=3, h=8, w=16)
    eager = unet(*args, **kwargs)
    compiled = compile_module(unet, CompileOptions())(*args, **kwargs)
    assert is_compiled(unet)
    assert (compiled - eager).abs().max().item() < 1e-4


@pytest.mark.slow
@torch.no_grad()
def test_frozen_max_autotune_unet_matches_eager_within_1e4():
    """The CPU setting of docs/benchmarks.md (max-autotune with the weights frozen into the graph) computes
    the same numbers as eager."""
    unet = small_unet(levels=1)
    args, kwargs = unet_inputs(T=3, h=8, w=8)
    eager = unet(*args, **kwargs)
    compiled = compile_module(unet, CompileOptions(mode="max-autotune", freezing=True))(*args, **kwargs)
    assert (compiled - eager).abs().max().item() < 1e-4


@pytest.mark.slow
@torch.no_grad()
def test_freezing_folds_the_weights_in_at_the_first_call():
    """With freezing the weights are constants of the compiled graph: a weight changed after the first call
    changes the eager output and not the compiled one (without freezing both would change). This fails if
    the setting reaches inductor but not dynamo's tracing, which then keeps the weights as graph inputs."""
    unet = small_unet(levels=1)
    args, kwargs = unet_inputs(T=2, h=8, w=8)
    eager_before = unet(*args, **kwargs)
    compiled = compiled_callable(unet, CompileOptions(freezing=True))
    frozen = compiled(*args, **kwargs)
    assert (frozen - eager_before).abs().max().item() < 1e-4
    unet.out[-1].weight.add_(0.5)
    eager_after = unet(*args, **kwargs)
    assert (eager_after - eager_before).abs().max().item() > 1e-2
    assert torch.equal(compiled(*args, **kwargs), frozen)
    assert not torch._inductor.config.freezing  # the setting is on only while the compiled module runs


def test_freezing_passes_the_modes_options_plus_freezing():
    """torch.compile takes a mode or options, not both: freezing turns the mode into its options."""
    from torch._inductor import list_mode_options

    assert CompileOptions(mode="max-autotune").kwargs()["mode"] == "max-autotune"
    frozen = CompileOptions(mode="max-autotune", freezing=True).kwargs()
    assert "mode" not in frozen and frozen["options"] == {**list_mode_options("max-autotune"), "freezing": True}
    assert CompileOptions(freezing=True).kwargs()["options"] == {"freezing": True}
    assert "options" not in CompileOptions(backend="eager", freezing=True).kwargs()  # tracing-only backends take none


@pytest.mark.parametrize("kwargs, what", [({"offload": True}, "offload"),
                                          ({"lora": ["x.safetensors"], "merge_lora": False}, "merge_lora=False")])
def test_frozen_weights_refuse_offload_and_unmerged_adapters(kwargs, what):
    """Frozen weights are constants of the compiled graph: loading refuses what would change them later."""
    from sgm.inference import VideoPipeline
    from tests.helpers import TINY_CONFIG

    with pytest.raises(ValueError, match=f"freezing.*{what}"):
        VideoPipeline.load(config=str(TINY_CONFIG), random_weights=True, device="cpu",
                           compile=CompileOptions(freezing=True), **kwargs)


@pytest.mark.slow
@torch.no_grad()
def test_which_changes_of_shape_recompile():
    """dynamic=None (the default): the first call specialises on its shapes; a change of frame count
    recompiles once into a graph generic in the frame count, valid for 2 to 7 frames (a guard that
    torch's convolution adds), and 8 frames or more compile one more graph; a change of latent height
    or width recompiles once each into a graph generic in that size. docs/benchmarks.md quotes this."""
    unet = small_unet(levels=1)
    counter = CompileCounter()
    compiled = torch.compile(unet, backend=counter, dynamic=None)
    expected = [((4, 16, 16), 1), ((4, 16, 16), 1),  # same shapes, new values: no recompile
                ((6, 16, 16), 2), ((7, 16, 16), 2),  # generic in T for 2..7 frames
                ((14, 16, 16), 3), ((25, 16, 16), 3),  # SVD's 14 and SVD-XT's 25 frames share a graph
                ((14, 24, 16), 4), ((14, 40, 16), 4),  # generic in the latent height
                ((25, 40, 24), 5), ((14, 72, 128), 5)]  # generic in the width too: 576x1024 needs no new graph
    for i, ((T, h, w), graphs) in enumerate(expected):
        args, kwargs = unet_inputs(T, h, w, seed=i)
        compiled(*args, **kwargs)
        assert counter.frame_count == graphs, f"after T={T}, latent {h}x{w}: {counter.frame_count} graphs"


@torch.no_grad()
def test_single_context_token_attention_equals_full_attention():
    """Without gradients a one-token context skips the query/key projections; the result is the attention's."""
    torch.manual_seed(0)
    attn = CrossAttention(16, context_dim=8, heads=2, dim_head=8)
    x, context = torch.randn(6, 5, 16), torch.randn(6, 1, 8)
    with torch.enable_grad():
        full = attn(x, context=context)
    assert torch.allclose(attn(x, context=context), full, atol=1e-6)
    # one context row per 3 consecutive rows of x, as the temporal layers pass it
    compact = torch.randn(2, 1, 8)
    with torch.enable_grad():
        full = attn(x, context=compact.repeat_interleave(3, 0))
    assert torch.allclose(attn(x, context=compact), full, atol=1e-6)
    wide = torch.randn(2, 4, 8)  # several tokens: the full attention with the rows spread
    assert torch.allclose(attn(x, context=wide), attn(x, context=wide.repeat_interleave(3, 0)), atol=1e-6)


def test_training_switch_compiles_in_place_keeping_checkpoint_keys():
    """model.params.compile_model=true compiles the network without renaming its state-dict keys."""
    plain = instantiate_from_config(tiny_config().model)
    compiled = instantiate_from_config(tiny_config(**{"model.params.compile_model": True}).model)
    assert is_compiled(compiled.model.diffusion_model) and not is_compiled(plain.model.diffusion_model)
    assert list(compiled.state_dict()) == list(plain.state_dict())


def test_compile_mode_is_checked():
    with pytest.raises(ValueError, match="compile mode"):
        CompileOptions(mode="fastest")


def test_compile_flags_reach_the_pipeline(tmp_path, monkeypatch):
    """--compile of the sampler CLI and of the demo ask VideoPipeline.load for the compiled path."""
    from scripts.sampling.simple_video_sample import main
    from sgm.demo.cli import parse_args
    from sgm.inference import VideoPipeline
    from tests.helpers import TINY_CONFIG

    asked = {}

    def fake_load(**kwargs):
        asked.update(kwargs)
        raise ValueError("stop after load")

    monkeypatch.setattr(VideoPipeline, "load", staticmethod(fake_load))
    image = tmp_path / "in.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(image)
    common = ["--input_path", str(image), "--config", str(TINY_CONFIG), "--random_weights", "--device", "cpu",
              "--output_folder", str(tmp_path / "out")]
    assert main(common + ["--compile"]) == 2 and asked["compile"] is True
    assert parse_args(["--config", str(TINY_CONFIG), "--compile"]).compile is True
    assert parse_args(["--config", str(TINY_CONFIG)]).compile is False
    # the CPU setting; a mode or freezing implies --compile
    cpu = CompileOptions(mode="max-autotune", freezing=True)
    assert main(common + ["--compile_mode", "max-autotune", "--freeze_weights"]) == 2 and asked["compile"] == cpu
    assert parse_args(["--config", str(TINY_CONFIG), "--compile-mode", "max-autotune", "--freeze-weights"]).compile == cpu
    assert main(common + ["--freeze_weights"]) == 2 and asked["compile"] == CompileOptions(freezing=True)
