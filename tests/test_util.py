"""instantiate_from_config and friends fail loudly with the bad target or parameter named."""
import pytest
from omegaconf import OmegaConf

from sgm.util import append_dims, get_obj_from_str, instantiate_from_config


def test_builds_target_with_params():
    g = instantiate_from_config({"target": "sgm.modules.diffusionmodules.guiders.VanillaCFG", "params": {"scale": 2.5}})
    assert g.scale == 2.5


def test_accepts_omegaconf_nodes():
    cfg = OmegaConf.create({"target": "sgm.modules.diffusionmodules.discretizer.EDMDiscretization",
                            "params": {"sigma_max": "${x}"}, "x": 700.0})
    assert instantiate_from_config(cfg).sigma_max == 700.0


def test_unknown_module_names_target():
    with pytest.raises(ValueError, match=r"unknown target 'sgm\.nothere\.Thing'"):
        instantiate_from_config({"target": "sgm.nothere.Thing"})


def test_unknown_attribute_names_target_and_lists_alternatives():
    with pytest.raises(ValueError, match=r"has no attribute 'VanillaCFGG'.*VanillaCFG"):
        get_obj_from_str("sgm.modules.diffusionmodules.guiders.VanillaCFGG")


def test_wrong_param_names_the_param_and_the_accepted_ones():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['scal'\].*scale"):
        instantiate_from_config({"target": "sgm.modules.diffusionmodules.guiders.VanillaCFG", "params": {"scal": 2.0}})


def test_missing_required_param_is_named():
    with pytest.raises(ValueError, match=r"missing required parameter\(s\) \['scale'\]"):
        instantiate_from_config({"target": "sgm.modules.diffusionmodules.guiders.VanillaCFG"})


def test_missing_target_key():
    with pytest.raises(ValueError, match="no 'target' key"):
        instantiate_from_config({"params": {}})


def test_sgm_markers_give_none():
    assert instantiate_from_config("__is_first_stage__") is None
    assert instantiate_from_config("__is_unconditional__") is None


def test_append_dims():
    import torch

    assert append_dims(torch.ones(3), 4).shape == (3, 1, 1, 1)


def _tiny_section(key):
    from tests.helpers import tiny_config

    return OmegaConf.to_container(OmegaConf.select(tiny_config(), key), resolve=True)


@pytest.mark.parametrize("key,typo", [
    ("model.params.first_stage_config", "max_batchsize"),                       # AutoencodingEngine
    ("model.params.conditioner_config.params.emb_models.3.params.encoder_config", "max_batchsize"),  # via **kwargs
    ("model.params.sampler_config", "s_churnn"),                                # EDMSampler(**kwargs) -> base
    ("model.params.sampler_config.params.guider_config", "min_cfg"),
])
def test_a_typo_in_a_constructor_argument_is_a_value_error_naming_it(key, typo):
    cfg = _tiny_section(key)
    cfg["params"][typo] = 1
    with pytest.raises(ValueError, match=typo):
        instantiate_from_config(cfg)


def test_sgm_autoencoder_training_options_are_accepted_and_ignored():
    cfg = _tiny_section("model.params.first_stage_config")
    cfg["params"].update(lr_g_factor=1.0, disc_start_iter=0, ckpt_engine=None)
    instantiate_from_config(cfg)
