"""Merging the configs of a run and checking the sections training needs."""
import logging
import os
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

logger = logging.getLogger(__name__)

REQUIRED = {
    "model": "the model: `model.target` (e.g. sgm.models.diffusion.DiffusionEngine) and `model.params`",
    "data": "the training data: `data.target` (e.g. sgm.data.video.VideoDataModule) and `data.params`",
}


def merge_configs(bases: Sequence[str], overrides: Sequence[str] = ()) -> DictConfig:
    """The run config: YAML files merged left to right, then `dotted.key=value` overrides."""
    configs = []
    for path in bases:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file not found: {os.path.abspath(path)}")
        configs.append(OmegaConf.load(path))
    cfg = OmegaConf.merge(*configs) if configs else OmegaConf.create()
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


def check_config(cfg: DictConfig) -> None:
    """ValueError naming each missing section and what belongs there."""
    missing = [f"`{key}:` ({what})" for key, what in REQUIRED.items() if key not in cfg or cfg[key] is None]
    if missing:
        raise ValueError("the config has no " + "; no ".join(missing) + ". See configs/toy/svd_toy.yaml for a complete example.")
    for key in REQUIRED:
        if "target" not in cfg[key]:
            raise ValueError(f"`{key}:` needs a `target:` (a dotted class path); see configs/toy/svd_toy.yaml")
    if "base_learning_rate" not in cfg.model:
        raise ValueError("`model.base_learning_rate` is missing: set the learning rate, e.g. model.base_learning_rate=1e-5")
    if "loss_fn_config" not in cfg.model.get("params", {}):
        raise ValueError("`model.params.loss_fn_config` is missing: training needs a loss, e.g. "
                         "sgm.modules.diffusionmodules.loss.StandardDiffusionLoss (see configs/toy/svd_toy.yaml)")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
