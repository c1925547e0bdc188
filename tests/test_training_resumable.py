"""ResumableLoader: the data position saved in checkpoints, for loaders with and without a length."""
import itertools

import torch
from torch.utils.data import DataLoader, IterableDataset

from sgm.training.resumable import ResumableLoader


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(10))


def test_unsized_loader_accounts_for_the_prefetched_batch():
    loader = ResumableLoader(DataLoader(Stream(), batch_size=None))
    it = iter(loader)
    trained = [next(it) for _ in range(4)]
    next(it)  # Lightning fetches one batch ahead of the one being trained on
    state = loader.state_dict()
    assert state == {"batches_consumed": 4}
    resumed = ResumableLoader(DataLoader(Stream(), batch_size=None))
    resumed.load_state_dict(state)
    assert [int(x) for x in trained] + [int(x) for x in resumed] == list(range(10))
    assert resumed.state_dict() == {"batches_consumed": 0}  # pass complete: the next epoch starts over
    assert [int(x) for x in resumed] == list(range(10))


def test_sized_loader_counts_exactly_and_restarts_after_a_full_pass():
    data = torch.arange(6)
    loader = ResumableLoader(DataLoader(data, batch_size=2))
    assert len(loader) == 3 and loader.batch_size == 2  # attributes come from the wrapped loader
    it = iter(loader)
    next(it)
    assert loader.state_dict() == {"batches_consumed": 1}
    list(itertools.islice(it, 2))
    assert loader.state_dict() == {"batches_consumed": 0}  # all 3 batches handed out: the epoch is done
    resumed = ResumableLoader(DataLoader(data, batch_size=2))
    resumed.load_state_dict({"batches_consumed": 2})
    assert [b.tolist() for b in resumed] == [[4, 5]]


class EpochLoader:
    """A loader that asks for its epoch when iterated (as sgm.data.datamodule.EpochDataLoader)."""

    def __init__(self, epoch_fn):
        self.epoch_fn = epoch_fn
        self.epochs = []

    def __iter__(self):
        epoch = self.epoch_fn()
        self.epochs.append(epoch)
        return iter([(epoch, i) for i in range(3)])


def test_resume_after_a_finished_pass_starts_the_next_epoch():
    """A checkpoint written after the last batch of epoch 0 resumes in epoch 1, although Lightning still
    reports epoch 0 when the resumed run creates its iterator."""
    loader = ResumableLoader(EpochLoader(lambda: 0))
    assert list(loader) == [(0, 0), (0, 1), (0, 2)]
    state = loader.state_dict()
    assert state == {"batches_consumed": 0, "epoch": 1}
    resumed = ResumableLoader(EpochLoader(lambda: 0))  # what Lightning reports at that moment
    resumed.load_state_dict(state)
    assert list(resumed) == [(1, 0), (1, 1), (1, 2)]
    assert list(resumed) == [(0, 0), (0, 1), (0, 2)]  # later passes ask the loader again
    mid = ResumableLoader(EpochLoader(lambda: 4))
    it = iter(mid)
    next(it), next(it)
    assert mid.state_dict() == {"batches_consumed": 1, "epoch": 4}  # one batch prefetched
