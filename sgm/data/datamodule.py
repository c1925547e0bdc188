"""`ShardDataModule`: the LightningDataModule shared by the video and image shard datasets."""
import logging
from typing import Any, Callable, Dict, Mapping, Optional

import pytorch_lightning as pl
from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)

__all__ = ["EpochDataLoader", "ShardDataModule"]


class EpochDataLoader(DataLoader):
    """A DataLoader that tells its dataset which epoch it is about to read (`dataset.set_epoch`).

    With a seeded `ShardDataset` the stream of each epoch is then fixed, so a run resumed from a checkpoint
    reads the same data as an uninterrupted one. (Lightning only passes epochs to samplers, which iterable
    datasets do not have.)

    Args:
        epoch_fn: returns the epoch of the next iteration, or None to let the dataset count on its own.
        *args, **kwargs: `torch.utils.data.DataLoader` arguments.
    """

    def __init__(self, epoch_fn: Callable[[], Optional[int]], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_fn = epoch_fn

    def __iter__(self):
        epoch = self.epoch_fn()
        if epoch is not None:
            self.dataset.set_epoch(epoch)
        return super().__iter__()


def _as_kwargs(config: Any, name: str) -> Dict[str, Any]:
    """A plain dict of dataset arguments from a mapping (dict or OmegaConf DictConfig)."""
    if not isinstance(config, Mapping) and not hasattr(config, "items"):
        raise ValueError(f"data module {name!r} must be a mapping of dataset arguments (with 'shards'), got {config!r}")
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(config):
            config = OmegaConf.to_container(config, resolve=True)
    except ImportError:
        pass
    kwargs = dict(config.items())
    if "shards" not in kwargs:
        raise ValueError(f"data module {name!r} needs 'shards' (a path, glob, brace pattern, URL or 'pipe:' command)")
    return kwargs


class ShardDataModule(pl.LightningDataModule):
    """Builds `dataset_class` datasets and their DataLoaders; subclasses set `dataset_class`.

    Args:
        train: dataset arguments for training (a mapping; `shards` is required).
        validation: dataset arguments for validation, or None for no validation data.
        batch_size: samples per batch (per rank).
        num_workers: DataLoader worker processes per rank (0: load in the training process).
        pin_memory: pin batches in page-locked memory (faster host-to-GPU copies).
        persistent_workers: keep workers alive between epochs (needs num_workers > 0).
        prefetch_factor: batches each worker loads ahead (needs num_workers > 0; None: PyTorch's default).
        drop_last: drop each worker's last incomplete batch.

    Skipped samples are counted per reason in `skipped` (this rank, all its workers); when the count grows,
    rank zero logs a summary before the next batch reaches the model.
    """

    dataset_class: type = None

    def __init__(
        self,
        train: Mapping[str, Any],
        validation: Optional[Mapping[str, Any]] = None,
        batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: Optional[int] = None,
        drop_last: bool = False,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if num_workers == 0 and (persistent_workers or prefetch_factor is not None):
            raise ValueError("persistent_workers and prefetch_factor need num_workers > 0")
        self.train_kwargs = _as_kwargs(train, "train")
        self.validation_kwargs = None if validation is None else _as_kwargs(validation, "validation")
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.drop_last = drop_last
        self.train_dataset = None
        self.validation_dataset = None
        self._reported_skips = 0
        if self.validation_kwargs is None:
            # Lightning runs validation only when val_dataloader is overridden; hide ours when there is no data.
            self.val_dataloader = None

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_dataset is None and stage in (None, "fit"):
            self.train_dataset = self.dataset_class(**self.train_kwargs)
        if self.validation_dataset is None and self.validation_kwargs is not None and stage in (None, "fit", "validate"):
            self.validation_dataset = self.dataset_class(**self.validation_kwargs)

    def current_epoch(self) -> Optional[int]:
        """Lightning's current epoch, or None when no trainer is attached."""
        trainer = getattr(self, "trainer", None)
        return None if trainer is None else trainer.current_epoch

    def _loader(self, dataset) -> DataLoader:
        dataset.remember_rank()  # DDP has started by now; spawned workers need the rank handed to them
        extra = {}
        if self.num_workers > 0:
            extra = {"persistent_workers": self.persistent_workers, "prefetch_factor": self.prefetch_factor}
        return EpochDataLoader(
            self.current_epoch,
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=self.drop_last,
            **extra,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_dataset)

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        return self._loader(self.validation_dataset)

    @property
    def skipped(self) -> Dict[str, int]:
        """Skipped samples per reason, training and validation data together, on this rank."""
        totals: Dict[str, int] = {}
        for dataset in (self.train_dataset, self.validation_dataset):
            if dataset is not None:
                for reason, count in dataset.skipped.items():
                    totals[reason] = totals.get(reason, 0) + count
        return totals

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        total = sum(self.skipped.values())
        if total > self._reported_skips:
            self._reported_skips = total
            trainer = getattr(self, "trainer", None)
            if trainer is None or trainer.is_global_zero:
                counts = {k: v for k, v in self.skipped.items() if v}
                logger.warning("data: %d samples skipped so far on this rank: %s", total, counts)
        return batch
