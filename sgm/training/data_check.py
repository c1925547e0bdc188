"""Building the training data before a run starts: the data module, its datasets (which finds the
shards) and, in a dry run, one decoded sample."""
import logging
import os
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from ..util import instantiate_from_config
from .validate import building

logger = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """`data:` instantiated and set up for fitting, so that missing shards or bad dataset arguments stop
    the run here, with the config key at fault, before a run directory exists."""
    with building(cfg, "data"):
        datamodule = instantiate_from_config(cfg.data)
        if isinstance(datamodule, pl.LightningDataModule):
            datamodule.setup("fit")
    return datamodule


def _describe(sample: Any) -> str:
    if isinstance(sample, dict):
        return ", ".join(f"{k} {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
                         for k, v in sample.items())
    return type(sample).__name__


def decode_one_sample(cfg: DictConfig, datamodule: pl.LightningDataModule) -> None:
    """Read and decode the first training sample when the data module has a `train_dataset` whose
    shards (`urls`) are local files; ValueError naming `data.params.train` when it yields nothing."""
    dataset = getattr(datamodule, "train_dataset", None)
    if dataset is None:
        logger.info("dry run: the data module has no train_dataset; no sample read")
        return
    urls = getattr(dataset, "urls", None) or []
    if not all(os.path.exists(u) for u in urls):
        logger.info("dry run: the training shards are remote; no sample read")
        return
    with building(cfg, "data"):
        if isinstance(dataset, torch.utils.data.IterableDataset):
            sample = next(iter(dataset), None)
        else:
            sample = dataset[0] if len(dataset) else None
    if sample is None:
        skipped = getattr(dataset, "skipped", {})
        raise ValueError(f"`data.params.train`: the training data yielded no sample (samples skipped, by reason: "
                         f"{skipped}); check the shards and the clip settings (num_frames, fps, size)")
    logger.info("dry run: one training sample decoded: %s", _describe(sample))
