"""What main.py does: merge and check the configs, build model, data and trainer, make the run directory, train."""
import contextlib
import logging
import os
import sys
import time
from typing import Optional, Sequence

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import (
    MisconfigurationException,
    SIGTERMException,
)

from ..util import instantiate_from_config
from .checkpoint_io import remove_stale_temp_files
from .cli import parse_args
from .config import check_config, merge_configs, to_yaml
from .console import quiet_noise
from .data_check import build_datamodule, decode_one_sample
from .resumable import ResumableLoader
from .rundir import CONFIG_NAME, RUN_DIR_ENV, RunDir, find_resume, new_run_dir
from .threads import set_threads
from .trainer import build_trainer, learning_rate
from .validate import building, check_keys

logger = logging.getLogger(__name__)

# The exit status after a SIGTERM (128 + 15, as a process killed by it): last.ckpt holds the step training
# stopped at, and `--resume <run dir>` continues from it.
SIGTERM_EXIT = 143


def setup_logging() -> None:
    """INFO on rank zero, warnings only on the other ranks."""
    level = logging.INFO if rank_zero_only.rank == 0 else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # no-op if handlers exist
    logging.getLogger().setLevel(level)


def make_resumable(datamodule: pl.LightningDataModule) -> None:
    """Wrap the datamodule's training loader in a ResumableLoader (see there). A map-style DataLoader in
    a distributed run is left alone so that Lightning can give it a DistributedSampler."""
    original = datamodule.train_dataloader

    def train_dataloader():
        loader = original()
        dist = torch.distributed
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        data = torch.utils.data
        map_style = isinstance(loader, data.DataLoader) and not isinstance(loader.dataset, data.IterableDataset)
        if distributed and map_style:
            return loader
        return ResumableLoader(loader)

    datamodule.train_dataloader = train_dataloader


def resolve_run(args) -> tuple:
    """(config, run dir, checkpoint to resume or None)."""
    if args.resume:
        target = find_resume(args.resume)
        # the run's saved config first, then any --base files on top of it (as sgm's main.py)
        bases = ([str(target.config)] if target.config else []) + list(args.base)
        if not bases:
            raise ValueError(f"{target.run_dir.root} has no configs/{CONFIG_NAME}; pass the run's configs with --base")
        cfg = merge_configs(bases, args.overrides)
        if cfg.get("model", {}).get("params", {}).get("ckpt_path"):
            logger.info("resuming: not loading model.params.ckpt_path, the checkpoint has the weights")
            cfg.model.params.ckpt_path = None
        return cfg, target.run_dir, str(target.ckpt)
    return merge_configs(args.base, args.overrides), new_run_dir(args.logdir, args.name, args.base), None


def checkpoint_step(path: str) -> int:
    """The global step stored in a Lightning checkpoint (memory-mapped: the weights are not read)."""
    return int(torch.load(path, map_location="cpu", mmap=True, weights_only=False).get("global_step", 0))


def save_config(cfg: DictConfig, run_dir: RunDir) -> None:
    """configs/config.yaml, or configs/config_resumed_<time>.yaml when the run directory has one."""
    if rank_zero_only.rank != 0:
        return
    name = CONFIG_NAME
    if (run_dir.configs / CONFIG_NAME).exists():
        name = f"config_resumed_{time.strftime('%Y-%m-%dT%H-%M-%S')}.yaml"
    OmegaConf.save(cfg, run_dir.configs / name, resolve=True)
    logger.info("config saved to %s", run_dir.configs / name)


def build_model(cfg: DictConfig, meta: bool = False) -> pl.LightningModule:
    """`model:` instantiated (on the meta device when `meta`: every constructor runs, no memory is used
    and no weights are read)."""
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    if meta:
        ckpt = model_cfg.get("params", {}).pop("ckpt_path", None)
        if ckpt and not os.path.exists(ckpt):  # a file or a diffusers folder
            logger.warning("model.params.ckpt_path %s does not exist (a real run would fail)", os.path.abspath(ckpt))
    with building(cfg, "model"), (torch.device("meta") if meta else contextlib.nullcontext()):
        return instantiate_from_config(model_cfg)


def dry_run(cfg: DictConfig, run_dir: RunDir, seed: int) -> int:
    """Build the model (meta device), the data (datasets, shards found, one sample decoded when the shards
    are local) and the trainer with its checkpointing, callbacks and loggers; print the resolved config."""
    model = build_model(cfg, meta=True)
    datamodule = build_datamodule(cfg)
    decode_one_sample(cfg, datamodule)
    try:
        with building(cfg, "lightning"):
            trainer = build_trainer(cfg, run_dir, seed)
    except MisconfigurationException as e:  # e.g. a GPU config checked on a machine without GPUs
        logger.warning("the trainer cannot be built on this machine: %s", e)
    else:
        model.learning_rate = learning_rate(cfg, trainer)
    sys.stdout.write(to_yaml(cfg))
    n = sum(p.numel() for p in model.parameters())
    logger.info("dry run: model (%.0fM parameters), data and trainer built; run directory would be %s",
                n / 1e6, run_dir.root)
    return 0


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Train as main.py does; returns the process exit code."""
    setup_logging()
    quiet_noise()
    args = parse_args(argv)
    cfg, run_dir, resume_ckpt = resolve_run(args)
    check_config(cfg)
    check_keys(cfg)
    set_threads(args.threads, cfg)
    pl.seed_everything(args.seed, workers=True)

    if args.dry_run:
        return dry_run(cfg, run_dir, args.seed)
    model = build_model(cfg)
    datamodule = build_datamodule(cfg)
    make_resumable(datamodule)
    resume_step = checkpoint_step(resume_ckpt) if resume_ckpt else None
    with building(cfg, "lightning"):
        trainer = build_trainer(cfg, run_dir, args.seed, resume_step)
    model.learning_rate = learning_rate(cfg, trainer)
    run_dir.make()  # only now: a config error leaves no empty run directory behind
    if rank_zero_only.rank == 0:  # the other ranks (and nodes) may start while rank zero writes
        remove_stale_temp_files(run_dir.checkpoints)
    save_config(cfg, run_dir)
    logger.info("run directory %s%s", run_dir.root, f", resuming {resume_ckpt}" if resume_ckpt else "")
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir.root)  # DDP worker processes re-run main.py and must reuse it
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_ckpt)
    except SIGTERMException:
        logger.warning("stopped by SIGTERM at step %d; continue with: python main.py --resume %s",
                       trainer.global_step, run_dir.root)
        return SIGTERM_EXIT
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    # NOTE: no checkpoint is written here: after fit() Lightning counts a max_steps stop as the end of
    # the epoch, which does not match the loader's position (RunCheckpoint saved last.ckpt in the step).
    logger.info("done at step %d; checkpoints in %s", trainer.global_step, run_dir.checkpoints)
    return 0
