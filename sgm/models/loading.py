"""Building a model from a config and loading its weights without a second copy in memory."""
import logging
import os
from typing import Optional, Union

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from ..checkpoint import load_checkpoint
from ..util import instantiate_from_config

logger = logging.getLogger(__name__)

ConfigLike = Union[str, os.PathLike, dict, DictConfig]


def load_config(config: ConfigLike) -> DictConfig:
    """A config from a YAML path, a dict or a DictConfig. Errors name the missing file."""
    if isinstance(config, DictConfig):
        return config
    if isinstance(config, dict):
        return OmegaConf.create(config)
    path = os.fspath(config)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {os.path.abspath(path)}")
    return OmegaConf.load(path)


def model_config(config: ConfigLike) -> DictConfig:
    """The `model:` section of a full config (or the config itself if it is already a model config)."""
    cfg = load_config(config)
    return cfg.model if "model" in cfg else cfg


def build_model(config: ConfigLike, ckpt_path: Optional[str] = None, device: Union[str, torch.device] = "cpu",
                dtype: Optional[torch.dtype] = None, eval_mode: bool = True) -> nn.Module:
    """Instantiate the model of `config` and load `ckpt_path` into it.

    With a checkpoint the model is built on the meta device (no random init, no allocation) and the
    file's tensors are assigned, read straight to `device`, in `dtype` (default: the config's fp32
    for floating weights). A `ckpt_path` inside the config's params is used when none is given.
    Without any checkpoint the model is built with random weights on `device`.
    """
    cfg = OmegaConf.create(OmegaConf.to_container(model_config(config), resolve=True))
    params = cfg.get("params", {})
    ckpt_path = ckpt_path or params.get("ckpt_path")
    if "ckpt_path" in params:
        params.pop("ckpt_path")
    device = torch.device(device)
    if ckpt_path is None:
        with device:
            model = instantiate_from_config(cfg)
        if dtype is not None:
            model = model.to(dtype)
    else:
        if not os.path.exists(ckpt_path):  # a file, or a diffusers folder
            raise FileNotFoundError(f"checkpoint not found: {os.path.abspath(ckpt_path)}")
        with torch.device("meta"):
            model = instantiate_from_config(cfg)
        load_checkpoint(model, ckpt_path, dtype=dtype, device=device)
        model = model.to(device)
    return model.eval() if eval_mode else model
