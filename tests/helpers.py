"""Builders shared by the tests: tiny models with deterministic weights."""
import importlib.util
from pathlib import Path
from typing import Optional

import torch
from omegaconf import OmegaConf

from sgm.util import instantiate_from_config

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny" / "svd_tiny.yaml"


def load_script(relative: str):
    """A script of this repository (e.g. "scripts/toy_curriculum.py") as a module."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fill_deterministic_(module: torch.nn.Module, seed: int = 0) -> None:
    """Small deterministic weights for every floating-point parameter (no zero-initialised layers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if not p.is_floating_point():
                continue
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def tiny_config(**overrides):
    cfg = OmegaConf.load(TINY_CONFIG)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def build_tiny_model(seed: Optional[int] = 0, config=None):
    cfg = config if config is not None else tiny_config()
    model = instantiate_from_config(cfg.model).eval()
    if seed is not None:
        fill_deterministic_(model, seed)
    return model
