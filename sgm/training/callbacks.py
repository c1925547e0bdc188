"""Small Lightning callbacks of the training loop."""
import hashlib
import logging
from typing import Any, Dict

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

logger = logging.getLogger(__name__)


def step_seed(seed: int, rank: int, global_step: int, batch_idx: int) -> int:
    """A 63-bit seed that is a function of (seed, rank, step, batch) only."""
    digest = hashlib.sha256(f"{seed}/{rank}/{global_step}/{batch_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class StepSeed(pl.Callback):
    """Reseeds torch's global generators before every training batch from (seed, rank, global step,
    batch index), so the random draws of a step (noise levels, noise, conditioning dropout) are the
    same whether or not the run was interrupted and resumed in between.

    seed: the run seed (main.py --seed).
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_rank, trainer.global_step, batch_idx))


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config in every checkpoint, under the key "config" (a plain dict).

    config: the merged config of the run.
    """

    def __init__(self, config: DictConfig):
        self.config = OmegaConf.to_container(config, resolve=True)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: Dict[str, Any]) -> None:
        checkpoint["config"] = self.config
