"""The Lightning Trainer of a run from the `lightning:` section of its config.

lightning:
  trainer: keyword arguments of pytorch_lightning.Trainer (max_steps, precision "bf16-mixed"/"16-mixed",
    accumulate_grad_batches, accelerator, devices, num_nodes, gradient_clip_val, log_every_n_steps, ...).
    `strategy` is a Lightning name ("ddp", "fsdp", "deepspeed_stage_2", ...) or a config
    {target: pytorch_lightning.strategies.FSDPStrategy, params: {...}}.
  modelcheckpoint: {params: {...}} overrides of ModelCheckpoint (default: every 1000 steps + last.ckpt, keep all).
  callbacks: {name: {target, params}} extra callbacks, e.g. the VideoLogger.
  loggers: {name: {target, params}} (default TensorBoard + CSV in the run directory).
  scale_lr: false. If true the learning rate is base_learning_rate x batch size x accumulate_grad_batches
    x devices x num_nodes (sgm's convention); by default it is base_learning_rate itself.
"""
import inspect
import logging
from typing import Any, Dict, List, Optional

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from ..util import instantiate_from_config
from .callbacks import ConfigInCheckpoint, StepSeed
from .checkpoint_io import AtomicCheckpointIO
from .checkpointing import RunCheckpoint
from .console import progress_bar
from .rundir import RunDir

logger = logging.getLogger(__name__)

CHECKPOINT_DEFAULTS = {"filename": "step{step:08d}", "auto_insert_metric_name": False, "every_n_train_steps": 1000,
                       "save_last": True, "save_top_k": -1}


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def _instantiate_all(section: Dict, what: str) -> List[Any]:
    objs = []
    for name, entry in (section or {}).items():
        if entry is None:
            continue  # `name: null` switches a default off
        if "target" not in entry:
            raise ValueError(f"lightning.{what}.{name} needs a `target:` (dotted class path) and optional `params:`")
        objs.append(instantiate_from_config(entry))
    return objs


def trainer_kwargs(cfg: DictConfig) -> Dict[str, Any]:
    """The Trainer arguments of `lightning.trainer`, with a configured strategy instantiated."""
    kwargs = dict(_plain(cfg.get("lightning", {}).get("trainer", {})) or {})
    strategy = kwargs.get("strategy")
    if isinstance(strategy, dict):
        kwargs["strategy"] = instantiate_from_config(strategy)
    return kwargs


def default_loggers(run_dir: RunDir, resume_step: Optional[int] = None) -> Dict[str, Dict]:
    """TensorBoard and CSV in the run directory; both keep the history of earlier runs of the directory
    (sgm/training/history.py)."""
    common = {"save_dir": str(run_dir.root), "version": "", "resume_step": resume_step}
    return {
        "tensorboard": {"target": "sgm.training.history.tensorboard_logger", "params": {"name": "tensorboard", **common}},
        "csv": {"target": "sgm.training.history.HistoryCSVLogger", "params": {"name": "csv", **common}},
    }


def build_trainer(cfg: DictConfig, run_dir: RunDir, seed: int, resume_step: Optional[int] = None) -> pl.Trainer:
    """A Trainer writing checkpoints, logs and sampled videos into `run_dir` (which it does not create).

    resume_step: the global step of the checkpoint being resumed (the loggers drop what an interrupted
    run logged after it), None for a new run.
    """
    lightning_cfg = _plain(cfg.get("lightning", {})) or {}
    ckpt_params = {**CHECKPOINT_DEFAULTS, **((lightning_cfg.get("modelcheckpoint") or {}).get("params") or {}),
                   "dirpath": str(run_dir.checkpoints)}
    kwargs = trainer_kwargs(cfg)
    for key in ("callbacks", "logger", "default_root_dir"):
        if key in kwargs:
            raise ValueError(f"lightning.trainer.{key} is set by main.py; use lightning.callbacks / lightning.loggers / --logdir")
    callbacks = [
        RunCheckpoint(**ckpt_params),
        pl.callbacks.LearningRateMonitor(logging_interval="step"),
        StepSeed(seed),
        ConfigInCheckpoint(cfg),
    ] + _instantiate_all(lightning_cfg.get("callbacks"), "callbacks")
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(progress_bar())
    loggers = _instantiate_all({**default_loggers(run_dir, resume_step), **(lightning_cfg.get("loggers") or {})},
                               "loggers")
    plugins = kwargs.pop("plugins", None) or []
    plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(isinstance(p, pl.plugins.CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    accepted = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"lightning.trainer has unknown setting(s) {unknown}; pytorch_lightning.Trainer accepts: "
                         f"{', '.join(sorted(accepted))}")
    return pl.Trainer(callbacks=callbacks, logger=loggers, default_root_dir=str(run_dir.root), plugins=plugins, **kwargs)


def learning_rate(cfg: DictConfig, trainer: pl.Trainer) -> float:
    """base_learning_rate, times the effective batch size when lightning.scale_lr is true."""
    base = float(cfg.model.base_learning_rate)
    if not cfg.get("lightning", {}).get("scale_lr", False):
        logger.info("learning rate %.2e (lightning.scale_lr is off)", base)
        return base
    batch_size = int(cfg.data.get("params", {}).get("batch_size", 1))
    accumulate = trainer.accumulate_grad_batches
    lr = base * batch_size * accumulate * trainer.num_devices * trainer.num_nodes
    logger.info("learning rate %.2e = %d (accumulate) x %d (devices) x %d (nodes) x %d (batch) x %.2e (base)",
                lr, accumulate, trainer.num_devices, trainer.num_nodes, batch_size, base)
    return lr
