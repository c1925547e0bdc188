"""main.py refuses config mistakes before it trains or makes a run directory: unknown keys anywhere (with
their dotted path and a suggestion), missing shards, constructor errors mapped to the key at fault."""
import logging

import pytest
from omegaconf import OmegaConf

from sgm.training.validate import check_keys
from tests.training_helpers import TOY_CONFIG, one_thread_fixture, toy_video_shards
from tests.training_helpers import run_main as main

_one_thread = pytest.fixture(autouse=True)(one_thread_fixture)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return toy_video_shards(tmp_path_factory.mktemp("shards"))


def toy(tmp_path, shards, *extra):
    return ["--base", str(TOY_CONFIG), f"data.params.train.shards={shards}", "--logdir", str(tmp_path / "logs"), *extra]


@pytest.mark.parametrize("override, path, suggestion", [
    ("lightnin.trainer.max_steps=3", "lightnin", "lightning"),
    ("model.base_learning_rat=1e-4", "model.base_learning_rat", "base_learning_rate"),
    ("data.params.train.num_frams=4", "data.params.train.num_frams", "num_frames"),
    ("lightning.modelcheckpoint.params.every_n_train_stpes=3", "lightning.modelcheckpoint.params.every_n_train_stpes",
     "every_n_train_steps"),
    ("model.params.network_config.params.model_chanels=8", "model.params.network_config.params.model_chanels",
     "model_channels"),
    ("model.params.loss_fn_config.params.sigma_sampler_config.params.p_man=1",
     "model.params.loss_fn_config.params.sigma_sampler_config.params.p_man", "p_mean"),
    ("lightning.trainer.max_step=3", "lightning.trainer.max_step", "max_steps"),
    ("lightning.callbacks.video_logger.params.every_n_step=3", "lightning.callbacks.video_logger.params.every_n_step",
     "every_n_steps"),
])
def test_an_unknown_key_anywhere_exits_2_naming_it_before_a_run_directory_exists(override, path, suggestion, shards,
                                                                                tmp_path, caplog):
    for mode in (["--dry-run"], []):  # the real start checks the same, first
        caplog.clear()
        assert main(toy(tmp_path, shards, override, *mode)) == 2
        assert f"`{path}` (did you mean `{suggestion}`?)" in caplog.text
        assert not (tmp_path / "logs").exists()


def test_keys_inside_lists_of_targets_are_checked():
    cfg = OmegaConf.load(TOY_CONFIG)
    cfg.model.params.conditioner_config.params.emb_models[1].params.outdm = 3
    with pytest.raises(ValueError, match=r"`model.params.conditioner_config.params.emb_models\[1\].params.outdm` "
                                         r"\(did you mean `outdim`\?\)"):
        check_keys(cfg)


def test_any_model_target_is_checked_not_only_the_diffusion_engine():
    """A model other than DiffusionEngine: its own constructor's arguments are the valid keys, and no
    loss config is required from a model whose constructor takes none."""
    from sgm.training.config import check_config

    cfg = OmegaConf.create({
        "model": {"target": "tests.training_helpers.TinyModule", "base_learning_rate": 1e-4,
                  "params": {"width": 3, "hiden_layers": 2}},
        "data": {"target": "sgm.data.image.ImageDataModule", "params": {"train": {"shards": "x", "sise": 3}}},
    })
    check_config(cfg)  # no loss_fn_config needed: the target takes none
    with pytest.raises(ValueError) as e:
        check_keys(cfg)
    assert "`model.params.hiden_layers` (did you mean `hidden_layers`?)" in str(e.value)
    assert "`data.params.train.sise` (did you mean `size`?)" in str(e.value)


def test_missing_shards_fail_the_dry_run_and_the_real_start(tmp_path, caplog):
    missing = tmp_path / "no_such_shards"
    for mode in (["--dry-run"], []):
        caplog.clear()
        assert main(toy(tmp_path, missing, *mode)) == 2
        assert "`data.params.train.shards`" in caplog.text and "does not exist" in caplog.text
        assert not (tmp_path / "logs").exists()


def test_dry_run_decodes_one_sample_from_local_shards(shards, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert main(toy(tmp_path, shards, "--dry-run")) == 0
    assert "one training sample decoded: frames (4, 3, 64, 64)" in caplog.text
    caplog.clear()  # clips longer than every video: the dataset yields nothing
    assert main(toy(tmp_path, shards, "data.params.train.num_frames=40", "--dry-run")) == 2
    assert "`data.params.train`: the training data yielded no sample" in caplog.text


def test_a_constructor_error_names_the_config_key(shards, tmp_path, caplog):
    """A constructor with **kwargs cannot be checked from its signature; its own error is mapped back."""
    sink = "lightning.callbacks.sink={target: tests.training_helpers.KeywordSink, params: {color: red}}"
    assert main(toy(tmp_path, shards, sink, "--dry-run")) == 2
    assert "`lightning.callbacks.sink.params.color`: " in caplog.text and "KeywordSink" in caplog.text
