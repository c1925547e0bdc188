"""`ShardDataset`: the streaming, splitting, shuffling and skip-counting part shared by video and image data."""
import functools
import logging
import os
from typing import Dict, Optional, Tuple

import torch
from torch.utils.data import IterableDataset

from sgm.data.webdataset_utils import (
    ShardSpec,
    SkipCounter,
    expand_shards,
    per_worker_share,
    repeat_samples,
    shard_pipeline,
)

logger = logging.getLogger(__name__)

__all__ = ["ShardDataset"]


class ShardDataset(IterableDataset):
    """An iterable dataset over webdataset shards; subclasses implement `decode(sample, generator) -> dict`.

    Args:
        shards: shard spec: a path, folder, glob, brace pattern (`shard-{000000..000099}.tar`), URL,
            `pipe:` command, or a list of these (see `sgm.data.webdataset_utils.expand_shards`).
        shuffle_buffer: sample shuffle buffer size (0 or 1: no shuffling; shard order is kept).
        resampled: draw shards with replacement, endlessly; every rank and worker draws on its own (no
            rank/worker split). Without `epoch_length` the one epoch never ends: train by `max_steps`.
        epoch_length: samples per epoch on each rank (split evenly over the DataLoader workers); the shards
            are started over as often as needed. None: one pass over this rank's shards, or an endless
            stream with `resampled`. With DDP set it, or use `resampled` (ranks must not run out of batches
            at different steps).
        shard_shuffle_seed: without `resampled`, shuffle the shard list with this seed, the same on all ranks
            so they stay disjoint (None: keep the given order). The order is the same every epoch; the sample
            shuffle buffer varies it.
        seed: None: clip/crop/noise randomness comes from torch's global generator (seeded per DataLoader
            worker by PyTorch, reproducible under `seed_everything`). An int: each rank and worker uses its own
            generator seeded from (seed, rank, worker, epoch), as do the shuffle buffer and resampling, so the
            data stream is a function of the epoch alone: independent of the model's random draws, and the
            same again when a run is resumed. The data modules pass Lightning's epoch in (`set_epoch`);
            otherwise each new iteration in a process counts as the next epoch.
        keep_key: also yield `__key__` (the sample id), for debugging and tests; off for training batches.
    """

    def __init__(
        self,
        shards: ShardSpec,
        shuffle_buffer: int = 100,
        resampled: bool = False,
        epoch_length: Optional[int] = None,
        shard_shuffle_seed: Optional[int] = 0,
        seed: Optional[int] = None,
        keep_key: bool = False,
    ):
        super().__init__()
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        if epoch_length is not None and epoch_length < 1:
            raise ValueError(f"epoch_length must be a positive number of samples or None, got {epoch_length}")
        self.urls = expand_shards(shards)
        self.shuffle_buffer = int(shuffle_buffer)
        self.resampled = bool(resampled)
        self.epoch_length = epoch_length
        self.shard_shuffle_seed = shard_shuffle_seed
        self.seed = seed
        self.keep_key = keep_key
        self.counter = SkipCounter()
        self._next_epoch = 0  # the epoch the next iteration in this process belongs to
        self.node: Optional[Tuple[int, int]] = None
        self.remember_rank()

    def remember_rank(self) -> None:
        """Record this process's (rank, world size), for DataLoader workers that cannot see torch.distributed.

        Forked workers inherit the process group, but spawned ones do not; there the recorded rank is handed
        to webdataset's `split_by_node` through the RANK / WORLD_SIZE variables it reads. The data modules
        call this when they build a DataLoader (after DDP has started).
        """
        import webdataset as wds

        if torch.utils.data.get_worker_info() is None:
            self.node = tuple(wds.utils.pytorch_worker_info()[:2])

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch `epoch` (with `seed`, each epoch's stream is fixed). Call it in the
        process that creates the DataLoader iterator; workers made from this dataset inherit it, and
        persistent workers count on from it."""
        self._next_epoch = int(epoch)

    @property
    def skipped(self) -> Dict[str, int]:
        """Samples skipped so far, per reason, summed over this process and its DataLoader workers."""
        return self.counter.as_dict()

    def decode(self, sample: dict, generator: Optional[torch.Generator]) -> dict:
        """Turn a raw webdataset sample (dict of bytes by extension) into a training sample."""
        raise NotImplementedError

    def __iter__(self):
        import webdataset as wds

        rank, world_size, worker, num_workers = wds.utils.pytorch_worker_info()
        in_worker = torch.utils.data.get_worker_info() is not None
        if in_worker and world_size == 1 and self.node is not None and self.node[1] > 1:
            rank, world_size = self.node  # a spawned worker: tell webdataset the rank it cannot see
            os.environ["RANK"], os.environ["WORLD_SIZE"] = str(rank), str(world_size)
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        if not self.resampled and epoch == 0 and worker == 0 and len(self.urls) < world_size * num_workers:
            logger.warning(
                "%d shards for %d ranks x %d workers: some workers get no shards; write more shards or use "
                "resampled=True",
                len(self.urls),
                world_size,
                num_workers,
            )
        generator, pipe_seed = None, None
        if self.seed is not None:
            pipe_seed = wds.utils.make_seed(self.seed, rank, worker, epoch)
            generator = torch.Generator().manual_seed(pipe_seed)
        pipeline = shard_pipeline(
            self.urls,
            functools.partial(self.decode, generator=generator),
            self.counter,
            shuffle_buffer=self.shuffle_buffer,
            resampled=self.resampled,
            shard_shuffle_seed=self.shard_shuffle_seed,
            seed=pipe_seed,
            keep_key=self.keep_key,
        )
        if self.epoch_length is None:
            return iter(pipeline)
        return iter(repeat_samples(pipeline, per_worker_share(self.epoch_length)))
