"""Checkpoint files (.safetensors fp32/fp16, .ckpt) into models built on the meta device or not."""
import pytest
import torch
from safetensors.torch import save_file

from sgm.checkpoint import CheckpointError, inference_unused_keys, load_checkpoint, read_state_dict
from sgm.models.loading import build_model
from tests.helpers import TINY_CONFIG, build_tiny_model


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(seed=3)


# The same weights loaded another way give the same UNet output up to float32 rounding: a model whose
# tensors came from a file (memory-mapped, other strides) may take other matmul kernels, and the
# single-context-token attention path (sgm.modules.attention) reorders a few sums. Loading bugs (a
# missing, transposed or mis-cast tensor) move the output by far more than this.
SAME = dict(rtol=1e-4, atol=1e-5)


def _unet_out(model):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 8, 8, 16, generator=g)
    with torch.no_grad():
        return model.model.diffusion_model(x, torch.full((4,), 0.3), context=torch.randn(4, 1, 32, generator=g),
                                           y=torch.randn(4, 768, generator=g), num_video_frames=4)


@pytest.mark.parametrize("fmt", ["safetensors-fp32", "safetensors-fp16", "ckpt"])
def test_build_from_file_on_meta_matches(tiny, tmp_path, fmt):
    sd = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    if fmt == "ckpt":
        path = tmp_path / "m.ckpt"
        torch.save({"state_dict": sd, "global_step": 7}, path)
    else:
        if fmt.endswith("fp16"):
            sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
        path = tmp_path / "m.safetensors"
        save_file(sd, str(path))
    model = build_model(TINY_CONFIG, ckpt_path=str(path))
    assert not any(p.is_meta for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    expected = _unet_out(tiny) if fmt != "safetensors-fp16" else _unet_out(build_model(TINY_CONFIG, ckpt_path=str(path)))
    torch.testing.assert_close(_unet_out(model), expected, **SAME)
    if fmt == "safetensors-fp16":  # fp16 weights upcast: close to the fp32 model
        assert torch.allclose(_unet_out(model), _unet_out(tiny), rtol=1e-2, atol=1e-2)


def test_build_in_half_precision(tiny, tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(path))
    model = build_model(TINY_CONFIG, ckpt_path=str(path), dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_missing_used_weights_fail_with_groups(tiny, tmp_path):
    sd = {k: v for k, v in tiny.state_dict().items() if not k.startswith("first_stage_model.decoder.up.0")}
    path = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    with pytest.raises(CheckpointError, match=r"first_stage_model\.decoder: \d+ key"):
        build_model(TINY_CONFIG, ckpt_path=str(path))


def test_missing_unused_weights_are_tolerated(tiny, tmp_path, caplog):
    unused = tuple(inference_unused_keys(tiny))
    assert any("open_clip.model.token_embedding" in p for p in unused)
    assert any(p.endswith("encoder.decoder.") for p in unused)
    sd = {k: v.contiguous() for k, v in tiny.state_dict().items() if not k.startswith(unused)}
    path = tmp_path / "pruned.safetensors"
    save_file(sd, str(path))
    model = build_model(TINY_CONFIG, ckpt_path=str(path))
    torch.testing.assert_close(_unet_out(model), _unet_out(tiny), **SAME)
    assert not any(p.is_meta for p in model.parameters())


def test_unexpected_keys_are_reported_not_fatal(tiny, tmp_path, caplog):
    sd = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    sd["model_ema.decay"] = torch.tensor(0.999)
    path = tmp_path / "extra.safetensors"
    save_file(sd, str(path))
    with caplog.at_level("WARNING"):
        _, unexpected = load_checkpoint(build_tiny_model(seed=None), str(path))
    assert unexpected == ["model_ema.decay"]
    assert "model_ema" in caplog.text


def test_wrong_shapes_name_the_key(tiny, tmp_path):
    sd = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    sd["model.diffusion_model.out.2.weight"] = torch.zeros(5, 32, 3, 3)
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    with pytest.raises(CheckpointError, match="out.2.weight has shape"):
        build_model(TINY_CONFIG, ckpt_path=str(path))


def test_ckpt_path_in_config_is_loaded(tiny, tmp_path):
    from tests.helpers import tiny_config
    from sgm.util import instantiate_from_config

    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(path))
    cfg = tiny_config(**{"model.params.ckpt_path": str(path)})
    model = instantiate_from_config(cfg.model).eval()
    torch.testing.assert_close(_unet_out(model), _unet_out(tiny), **SAME)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        read_state_dict(str(tmp_path / "nope.safetensors"))


@pytest.mark.parametrize("name", ["junk.ckpt", "junk.safetensors"])
def test_corrupt_file_gives_clear_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not read"):
        read_state_dict(str(path))


def test_truncated_safetensors_says_to_download_again(tiny, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted download
    with pytest.raises(CheckpointError, match="download it again"):
        read_state_dict(str(path))


def test_building_never_touches_the_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("model building tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    from tests.helpers import REPO

    with torch.device("meta"):
        model = build_model(REPO / "configs" / "inference" / "svd_xt.yaml", device="meta")
    assert sum(p.numel() for p in model.parameters()) > 2e9
