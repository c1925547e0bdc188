"""The run's ModelCheckpoint: also writes last.ckpt where a run stops early (max_steps, SIGTERM), at a
point from which a resumed run continues exactly like an uninterrupted one."""
import logging
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

logger = logging.getLogger(__name__)


def stopping(trainer: pl.Trainer) -> bool:
    """True after the step that reaches max_steps, or once any rank received SIGTERM (every rank
    decides together, so that they all take part in the checkpoint write)."""
    done = 0 < trainer.max_steps <= trainer.global_step
    return trainer.strategy.reduce_boolean_decision(done or trainer.received_sigterm, all=False)


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (same arguments) that keeps last.ckpt consistent with where training stops.

    Every checkpoint is written at the end of a training batch: the weights, the EMA, the optimizer, the
    loop counters and the data loader's position (sgm.training.resumable) then all describe the same
    step. Lightning's ModelCheckpoint would rewrite last.ckpt at the end of the epoch a max_steps stop
    cuts short, when Lightning already counts that epoch as finished while the loader's position says
    "n batches of this pass consumed"; a run resumed from that file reads another epoch's data. So:
    - at the end of the batch where training stops (max_steps reached, or SIGTERM received, as a
      cluster's preemption sends), last.ckpt is written if this step has not been saved yet;
    - at the end of an epoch, nothing is rewritten for a step already saved at its batch end;
    - the last step is logged (and the loggers flushed) even when it is off the log_every_n_steps
      cadence, so a run shorter than that still writes its metrics.
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not stopping(trainer):
            return
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if trainer.received_sigterm:
            logger.warning("SIGTERM received: saved %s at step %d", self.last_model_path, trainer.global_step)
        trainer.should_stop = True  # Lightning then logs this step and flushes the loggers, whatever the cadence

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_global_step_saved == trainer.global_step:
            return  # saved at this step's batch end, with the loader position of that moment
        super().on_train_epoch_end(trainer, pl_module)
