"""A quiet console for training: Lightning's and torch's messages that ask nothing of the user are
filtered out; warnings a user must act on are kept."""
import logging
import re
import warnings

import pytorch_lightning as pl

# Messages (regular expressions matched at their start) that carry no information for a user of main.py.
NOISE = (
    r"💡 Tip: ",  # Lightning advertising its cloud logger
    r"`weights_only` was not set",  # Lightning describing its own checkpoint format
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning calling a deprecated torch API
    r"Found \d+ module\(s\) in eval mode",  # the autoencoder and frozen embedders stay in eval mode on purpose
    r"Checkpoint directory .* exists and is not empty",  # a resumed run writes into its own checkpoints/
    r"The number of training batches \(\d+\) is smaller than the logging interval",  # the last step is logged anyway
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(re.match(pattern, message) for pattern in NOISE)


def quiet_noise() -> None:
    """Filter NOISE out of Lightning's log records and out of Python warnings (idempotent)."""
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "pytorch_lightning.trainer.connectors.checkpoint_connector"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in log.filters):
            log.addFilter(_DropNoise())


def progress_bar() -> pl.callbacks.ProgressBar:
    """Lightning's progress bar, without the "Epoch 4/-2" it shows for runs bounded by max_steps."""
    from pytorch_lightning.utilities.imports import _RICH_AVAILABLE

    if not _RICH_AVAILABLE:
        return pl.callbacks.TQDMProgressBar()  # shows "Epoch N" only
    return _RichBar()


class _RichBar(pl.callbacks.RichProgressBar):
    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        return f"Epoch {current_epoch}"  # max_epochs is -1 when training is bounded by max_steps
