"""Merging the configs of a run and checking the sections training needs."""
import logging
import os
from typing import Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

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
        try:
            loaded = OmegaConf.load(path)
        except (yaml.YAMLError, OmegaConfBaseException) as e:
            raise ValueError(f"config file {path} is not valid YAML: {e}") from e
        if not isinstance(loaded, DictConfig):
            raise ValueError(f"config file {path} must hold a mapping (model:, data:, lightning:), "
                             f"not a {type(loaded).__name__}")
        configs.append(loaded)
    cfg = OmegaConf.merge(*configs) if configs else OmegaConf.create()
    for item in overrides:  # one at a time, so that an error names the override at fault
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except (yaml.YAMLError, OmegaConfBaseException) as e:
            raise ValueError(f"cannot apply the override {item!r}: {e}\nOverrides look like dotted.key=value, the "
                             f"value in YAML syntax; quote the whole item in the shell when it has spaces or "
                             f"brackets, e.g. 'lightning.trainer.devices=[0,1]'") from e
    return cfg


def check_config(cfg: DictConfig) -> None:
    """ValueError naming each missing section and what belongs there."""
    missing = [f"`{key}:` ({what})" for key, what in REQUIRED.items() if key not in cfg or cfg[key] is None]
    if missing:
        raise ValueError("the config has no " + "; no ".join(missing) + ". See configs/toy/svd_toy.yaml for a complete example.")
    for key in (*REQUIRED, "lightning"):
        if cfg.get(key) is not None and not isinstance(cfg[key], DictConfig):
            raise ValueError(f"`{key}:` must be a mapping of settings, got {cfg[key]!r}; see configs/toy/svd_toy.yaml")
    lightning = cfg.get("lightning")
    if lightning is not None:
        for name in ("trainer", "modelcheckpoint", "callbacks", "loggers"):
            value = lightning.get(name)
            if value is not None and not isinstance(value, DictConfig):
                raise ValueError(f"`lightning.{name}:` must be a mapping, got {value!r}")
    for key in REQUIRED:
        if "target" not in cfg[key]:
            raise ValueError(f"`{key}:` needs a `target:` (a dotted class path); see configs/toy/svd_toy.yaml")
    if "base_learning_rate" not in cfg.model:
        raise ValueError("`model.base_learning_rate` is missing: set the learning rate, e.g. model.base_learning_rate=1e-5")
    lr = cfg.model.base_learning_rate
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise ValueError(f"`model.base_learning_rate` must be a number, got {lr!r}; e.g. model.base_learning_rate=1e-5")
    params = cfg.model.get("params") or {}
    needs_loss = _takes(cfg.model.target, "loss_fn_config") or _takes(cfg.model.target, "loss_config")
    if "loss_fn_config" not in params and "loss_config" not in params and needs_loss:  # diffusion models / autoencoders
        raise ValueError("`model.params.loss_fn_config` is missing: training needs a loss, e.g. "
                         "sgm.modules.diffusionmodules.loss.StandardDiffusionLoss (see configs/toy/svd_toy.yaml); "
                         "an autoencoder's is `model.params.loss_config` (see configs/curriculum/toy/stage0_autoencoder.yaml)")


def _takes(target: str, name: str) -> bool:
    """Whether the constructor of `target` names an argument `name` (False when it cannot be imported:
    the key check reports that)."""
    import inspect

    from ..util import get_obj_from_str

    try:
        return name in inspect.signature(get_obj_from_str(target)).parameters
    except (ValueError, TypeError):
        return False


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
