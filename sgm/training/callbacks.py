"""Small Lightning callbacks of the training loop."""
import hashlib
import logging
from typing import Any, Dict

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

logger = logging.getLogger(__name__)


def step_seed(seed: int, rank: int, global_step: int, micro_batch: int) -> int:
    """A 63-bit seed that is a function of (seed, rank, step, micro-batch of the step) only."""
    digest = hashlib.sha256(f"{seed}/{rank}/{global_step}/{micro_batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class StepSeed(pl.Callback):
    """Reseeds torch's global generators before every training batch from (seed, rank, global step,
    index of the batch within the step), so the random draws of a step (noise levels, noise,
    conditioning dropout) are the same whether or not the run was interrupted and resumed in between.

    NOTE: not Lightning's batch_idx: a run resumed from a checkpoint written at the last batch of an
    epoch starts the next epoch at batch_idx = (batches of that epoch) instead of 0. The index within the
    step counts the micro-batches of gradient accumulation (0 without accumulation); checkpoints are
    written between steps, so a resumed run starts it at 0 as an uninterrupted one does.

    seed: the run seed (main.py --seed).
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._step, self._micro_batch = -1, 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.global_step != self._step:
            self._step, self._micro_batch = trainer.global_step, 0
        else:
            self._micro_batch += 1
        torch.manual_seed(step_seed(self.seed, trainer.global_rank, trainer.global_step, self._micro_batch))


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config in every checkpoint, under the key "config" (a plain dict).

    config: the merged config of the run.
    """

    def __init__(self, config: DictConfig):
        self.config = OmegaConf.to_container(config, resolve=True)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: Dict[str, Any]) -> None:
        checkpoint["config"] = self.config
