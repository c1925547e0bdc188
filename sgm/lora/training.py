"""Training LoRA adapters with main.py: `model.params.lora_config` attaches them when the model is
built (the network's own weights then stay frozen), and the `SaveLoRA` callback writes the adapter
alone, as a small .safetensors, into the run directory. configs/lora/ has ready overlays:

    python main.py --base configs/svd_xt.yaml configs/lora/temporal.yaml --name camera_pan
"""
import contextlib
import logging
import os
from typing import Mapping, Optional, Sequence, Union

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from .adapters import add_lora
from .files import save_lora

logger = logging.getLogger(__name__)

LORA_PARAMETERS = r"\.lora_[AB]\."
LORA_CONFIG_KEYS = {"targets", "rank", "alpha", "name"}


def attach_training_lora(network: nn.Module, lora_config: Mapping, trainable_parameters: Union[str, Sequence[str]]):
    """Attach the adapter `lora_config` describes and return the `trainable_parameters` that select
    only the adapters. lora_config: targets (default "temporal": the temporal attention, as the SVD
    paper's camera-motion LoRAs; "spatial", "all_attention", "temporal_ff" or regular expressions), rank (default
    16), alpha (default rank), name (default "default")."""
    unknown = set(lora_config) - LORA_CONFIG_KEYS
    if unknown:
        raise ValueError(f"model.params.lora_config has unknown key(s) {sorted(unknown)}; use {sorted(LORA_CONFIG_KEYS)}")
    if trainable_parameters != "all":
        raise ValueError("set either model.params.lora_config or model.params.trainable_parameters, not both: "
                         "with lora_config only the adapters train")
    targets = lora_config.get("targets", "temporal")
    targets = targets if isinstance(targets, str) else list(targets)
    add_lora(network, name=lora_config.get("name", "default"), rank=int(lora_config.get("rank", 16)),
             alpha=lora_config.get("alpha"), targets=targets)
    return [LORA_PARAMETERS]


class SaveLoRA(pl.Callback):
    """Write the trained adapter (no base weight) to <run>/lora/step<N>.safetensors every
    `every_n_train_steps` steps and to <run>/lora/last.safetensors at the end of training. With
    `model.params.use_ema` the file holds the EMA of the adapter, the weights the run's checkpoint samples with.

    every_n_train_steps: 0 writes only the last one. dirpath: where (default <run directory>/lora).
    """

    def __init__(self, every_n_train_steps: int = 0, dirpath: Optional[str] = None):
        self.every_n_train_steps = every_n_train_steps
        self.dirpath = dirpath

    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, filename: str) -> None:
        config = getattr(pl_module, "lora_config", None)
        if not config:
            raise ValueError("SaveLoRA needs model.params.lora_config (the adapter to train); see configs/lora/")
        folder = self.dirpath or os.path.join(trainer.default_root_dir, "lora")
        path = os.path.join(folder, filename)
        with pl_module.ema_scope() if getattr(pl_module, "use_ema", False) else contextlib.nullcontext():
            save_lora(pl_module.model.diffusion_model, config.get("name", "default"), path)
        logger.info("saved LoRA adapter%s to %s", " (EMA)" if getattr(pl_module, "use_ema", False) else "", path)

    @rank_zero_only
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_train_steps and step > 0 and step % self.every_n_train_steps == 0:
            self._save(trainer, pl_module, f"step{step:08d}.safetensors")

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module, "last.safetensors")
