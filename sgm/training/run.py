"""What main.py does: merge configs, make the run directory, build model, data and trainer, train."""
import logging
import os
import sys
import time
import warnings
from typing import Optional, Sequence

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from ..util import instantiate_from_config
from .cli import parse_args
from .config import check_config, merge_configs, to_yaml
from .resumable import ResumableLoader
from .rundir import CONFIG_NAME, LAST_CKPT, RUN_DIR_ENV, RunDir, find_resume, new_run_dir
from .trainer import build_trainer, learning_rate

logger = logging.getLogger(__name__)


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


def save_config(cfg: DictConfig, run_dir: RunDir) -> None:
    """configs/config.yaml, or configs/config_resumed_<time>.yaml when the run directory has one."""
    if rank_zero_only.rank != 0:
        return
    name = CONFIG_NAME
    if (run_dir.configs / CONFIG_NAME).exists():
        name = f"config_resumed_{time.strftime('%Y-%m-%dT%H-%M-%S')}.yaml"
    OmegaConf.save(cfg, run_dir.configs / name, resolve=True)
    logger.info("config saved to %s", run_dir.configs / name)


def dry_run(cfg: DictConfig, run_dir: RunDir, seed: int) -> int:
    """Build the model (on the meta device: every constructor runs, no memory is used, no weights are
    read), the data module and the trainer; print the resolved config."""
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    ckpt = model_cfg.get("params", {}).pop("ckpt_path", None)
    if ckpt and not os.path.exists(ckpt):  # a file or a diffusers folder
        logger.warning("model.params.ckpt_path %s does not exist (a real run would fail)", os.path.abspath(ckpt))
    with torch.device("meta"):
        model = instantiate_from_config(model_cfg)
    instantiate_from_config(cfg.data)
    try:
        trainer = build_trainer(cfg, run_dir, seed)
    except MisconfigurationException as e:  # e.g. a GPU config checked on a machine without GPUs
        logger.warning("the trainer cannot be built on this machine: %s", e)
    else:
        model.learning_rate = learning_rate(cfg, trainer)
    sys.stdout.write(to_yaml(cfg))
    n = sum(p.numel() for p in model.parameters())
    logger.info("dry run: model (%.0fM parameters) and data built; run directory would be %s", n / 1e6, run_dir.root)
    return 0


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Train as main.py does; returns the process exit code."""
    setup_logging()
    # NOTE: the autoencoder and the frozen embedders stay in eval mode on purpose.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    args = parse_args(argv)
    cfg, run_dir, resume_ckpt = resolve_run(args)
    check_config(cfg)
    pl.seed_everything(args.seed, workers=True)

    if args.dry_run:
        return dry_run(cfg, run_dir, args.seed)
    model = instantiate_from_config(cfg.model)
    datamodule = instantiate_from_config(cfg.data)
    make_resumable(datamodule)
    run_dir.make()
    save_config(cfg, run_dir)
    trainer = build_trainer(cfg, run_dir, args.seed)
    model.learning_rate = learning_rate(cfg, trainer)
    logger.info("run directory %s%s", run_dir.root, f", resuming {resume_ckpt}" if resume_ckpt else "")
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir.root)  # DDP worker processes re-run main.py and must reuse it
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_ckpt)
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    trainer.save_checkpoint(str(run_dir.checkpoints / LAST_CKPT))
    logger.info("done at step %d; checkpoints in %s", trainer.global_step, run_dir.checkpoints)
    return 0
