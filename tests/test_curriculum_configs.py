"""The full-size curriculum configs build (on the meta device: no memory, no weights) and chain:
stage 1's image UNet inflates into stage 2's video UNet, which adapts into SVD's stage-3 network."""
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from sgm.models.inflation import is_temporal_key
from sgm.util import instantiate_from_config

REPO = Path(__file__).resolve().parents[1]
CURRICULUM = REPO / "configs" / "curriculum"


def network_shapes(config_path):
    cfg = OmegaConf.load(config_path)
    with torch.device("meta"):
        net = instantiate_from_config(cfg.model.params.network_config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def stage1():
    return network_shapes(CURRICULUM / "stage1_image.yaml")


@pytest.fixture(scope="module")
def stage2():
    return network_shapes(CURRICULUM / "stage2_video_pretrain.yaml")


def test_stage1_is_sd21_unet(stage1):
    # SD 2.1: 320 base channels, 1024-wide text context, linear transformer projections
    assert stage1["input_blocks.0.0.weight"] == (320, 4, 3, 3)
    assert stage1["input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 1024)
    assert stage1["input_blocks.1.1.proj_in.weight"] == (320, 320)
    assert stage1["middle_block.1.transformer_blocks.0.attn2.to_v.weight"] == (1280, 1024)
    assert sum(torch.Size(s).numel() for s in stage1.values()) == pytest.approx(865.9e6, rel=1e-3)


def test_stage2_spatial_layers_are_stage1(stage1, stage2):
    spatial = {k: v for k, v in stage2.items() if not is_temporal_key(k)}
    assert spatial == stage1
    assert len(stage2) > len(stage1)


def test_stage2_adapts_to_svd(stage2):
    stage3 = network_shapes(REPO / "configs" / "inference" / "svd.yaml")
    differ = {k for k in stage3 if stage2.get(k) != stage3[k]}
    assert differ == {"input_blocks.0.0.weight"} | {k for k in stage3 if k.startswith("label_emb.")}
    assert stage3["input_blocks.0.0.weight"] == (320, 8, 3, 3)
    assert set(stage2) <= set(stage3)


@pytest.mark.parametrize("name", ["stage1_image.yaml", "stage2_video_pretrain.yaml"])
def test_full_configs_build_on_meta(name):
    cfg = OmegaConf.load(CURRICULUM / name)
    assert {"model", "data", "lightning"} <= set(cfg)
    with torch.device("meta"):
        engine = instantiate_from_config(cfg.model)
    assert type(engine.conditioner.embedders[0]).__name__ == "FrozenOpenCLIPEmbedder"
    assert engine.conditioner.embedders[0].layer == "penultimate"


@pytest.mark.parametrize("name", ["stage1_image.yaml", "stage2_video_pretrain.yaml"])
def test_full_configs_pass_main_dry_run(name, tmp_path, tmp_path_factory, capsys):
    """main.py --dry-run: model (on meta), data module and Lightning trainer all build from the config
    (the dry run finds the shards and decodes one sample, so it is given toy shards)."""
    from sgm.training.run import run
    from tests.training_helpers import toy_image_shards, toy_video_shards

    data = tmp_path_factory.mktemp("shards")
    shards = toy_image_shards(data) if "image" in name else toy_video_shards(data, duration=3.0, samples=1)
    argv = ["--base", str(CURRICULUM / name), f"data.params.train.shards={shards}", "--dry-run", "--logdir", str(tmp_path)]
    assert run(argv) == 0
    resolved = OmegaConf.create(capsys.readouterr().out)
    assert resolved.model.params.network_config.params.model_channels == 320
    assert not any(tmp_path.iterdir())  # a dry run makes no run directory
