"""A training data loader that Lightning can checkpoint, so a run resumed mid-epoch continues with
the batch after the last one it trained on instead of starting the epoch's data over."""
import logging
from typing import Any, Dict, Iterable, Iterator

logger = logging.getLogger(__name__)


class ResumableLoader:
    """Wraps any iterable of batches (a DataLoader, a webdataset loader) and counts the batches handed
    out in the current pass. Lightning stores `state_dict()` in each checkpoint and calls
    `load_state_dict()` on resume; the next pass then skips the batches already trained on (they
    are read and dropped, so the order must be deterministic for the resumed run to see the same
    data: a fixed seed, no unseeded shuffling).

    NOTE: Lightning fetches one batch ahead from loaders without a length (to know the last batch),
    so for those the last handed-out batch was not trained on yet when a checkpoint is written.

    NOTE: a run resumed from a checkpoint written at the last batch of an epoch creates its loader
    iterator while Lightning still reports the finished epoch (it advances the count only afterwards).
    A loader that asks Lightning for its epoch (`epoch_fn`, sgm.data.datamodule.EpochDataLoader) would
    then replay that epoch's random draws; so the epoch of the next pass is saved here as well and
    handed to the first pass after a resume.

    loader: the wrapped loader; other attributes (sampler, dataset, batch_size) are looked up on it.
    """

    def __init__(self, loader: Iterable):
        self.loader = loader
        self._yielded = 0
        self._exhausted = False
        self._skip = 0
        self._epoch = None  # the epoch of the current pass, for loaders with an `epoch_fn`
        self._resume_epoch = None

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)  # TypeError for loaders without a length, as Lightning expects

    def _sized(self) -> bool:
        try:
            len(self.loader)
        except (TypeError, NotImplementedError):
            return False
        return True

    def _start(self) -> Iterator:
        """iter() of the wrapped loader, in the epoch recorded by a checkpoint when resuming."""
        epoch_fn = getattr(self.loader, "epoch_fn", None)
        if not callable(epoch_fn):
            return iter(self.loader)
        forced, self._resume_epoch = self._resume_epoch, None
        self._epoch = epoch_fn() if forced is None else forced
        if forced is None:
            return iter(self.loader)
        self.loader.epoch_fn = lambda: forced
        try:
            return iter(self.loader)
        finally:
            self.loader.epoch_fn = epoch_fn

    def __iter__(self) -> Iterator:
        skip, self._skip = self._skip, 0
        self._yielded, self._exhausted = 0, False
        iterator = self._start()
        if skip:
            logger.info("resuming mid-epoch: skipping the %d batches already trained on", skip)
        for _ in range(skip):
            if next(iterator, None) is None:
                break
            self._yielded += 1
        for batch in iterator:
            self._yielded += 1
            yield batch
        self._exhausted = True

    def state_dict(self) -> Dict[str, int]:
        """Batches of the current pass already trained on (0 when the pass is complete: the next epoch
        starts from the beginning) and, for loaders with an `epoch_fn`, the epoch of the next pass."""
        if self._exhausted or (self._sized() and self._yielded >= len(self.loader)):
            consumed, done = 0, True
        elif self._sized():
            consumed, done = self._yielded, False
        else:
            consumed, done = max(self._yielded - 1, 0), False  # one batch prefetched, not trained on yet
        state = {"batches_consumed": consumed}
        if self._epoch is not None:
            state["epoch"] = self._epoch + 1 if done else self._epoch
        return state

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self._skip = int(state.get("batches_consumed", 0))
        self._resume_epoch = state.get("epoch")
