"""Pieces shared by the video and image shard datasets: shard lists, skip counting, the webdataset pipeline.

The pipeline is built from webdataset's own stages (see `shard_pipeline`):

    shard list (SimpleShardList, or ResampledShards when `resampled`)
    -> split_by_node -> split_by_worker          (only without resampling: disjoint shards per rank and worker)
    -> tarfile_to_samples                        (opens local paths, URLs or `pipe:` commands)
    -> shuffle(buffer)                           (sample-level shuffle buffer)
    -> map(decode)                               (the dataset's own decoding, raising `SampleSkipped`)

Every failure (an unreadable shard, a truncated tar, a bad mp4 or json) goes to a `SkipHandler`, which counts it
in a `SkipCounter` shared with the DataLoader workers, logs it (on rank zero) and lets iteration go on.
"""
import glob
import logging
import multiprocessing
import os
import re
from multiprocessing.context import get_spawning_popen
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

logger = logging.getLogger(__name__)

__all__ = ["SKIP_REASONS", "SampleSkipped", "SkipCounter", "SkipHandler", "expand_shards", "shard_pipeline"]

# Why a sample can be skipped; the counter keeps one count per reason.
SKIP_REASONS = (
    "read_error",  # a shard could not be opened or read (missing file, failed pipe, truncated tar)
    "missing_member",  # a sample lacks its mp4/image or its json
    "bad_json",  # the json does not parse or has invalid fields
    "corrupt_video",  # the mp4 does not decode, or has fewer frames than it claims
    "corrupt_image",  # the image does not decode
    "too_short",  # the video has too few frames for a clip of T frames at the target fps
)

ShardSpec = Union[str, Sequence[str]]
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # "pipe:...", "http://...", "s3://...", "file:..."


class SampleSkipped(Exception):
    """Raised by a decode stage for a sample that must be skipped; `reason` is one of `SKIP_REASONS`."""

    def __init__(self, reason: str, message: str):
        assert reason in SKIP_REASONS, reason
        super().__init__(message)
        self.reason = reason


class SkipCounter:
    """Counts skipped samples per reason, shared between the main process and its DataLoader workers.

    The counts live in shared memory (`multiprocessing.RawArray`), one row per process: the main process
    writes row 0 and DataLoader worker `i` row `1 + i % MAX_WORKERS`, so no lock is needed (a lock would tie
    the counter to one multiprocessing start method); `as_dict` sums the rows. This works with `fork` and
    `spawn` workers. Copying the counter any other way (`copy.deepcopy`, pickling outside process start)
    gives a detached snapshot that counts on its own. Each DDP rank has its own counter.
    """

    MAX_WORKERS = 256

    def __init__(self):
        self._rows = 1 + self.MAX_WORKERS
        self._array = multiprocessing.RawArray("q", self._rows * len(SKIP_REASONS))

    def increment(self, reason: str) -> None:
        worker = torch_worker_id()
        row = 0 if worker is None else 1 + worker % self.MAX_WORKERS
        self._array[row * len(SKIP_REASONS) + SKIP_REASONS.index(reason)] += 1

    def as_dict(self) -> Dict[str, int]:
        """Counts per reason, e.g. `{"corrupt_video": 2, "bad_json": 1, ...}`."""
        n = len(SKIP_REASONS)
        values = self._array[:]
        return {reason: sum(values[row * n + i] for row in range(self._rows)) for i, reason in enumerate(SKIP_REASONS)}

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())

    def __getstate__(self):
        if get_spawning_popen() is not None:  # starting a worker process: share the memory
            return {"array": self._array, "rows": self._rows}
        return {"counts": self.as_dict()}

    def __setstate__(self, state):
        if "array" in state:
            self._array, self._rows = state["array"], state["rows"]
        else:
            self.__init__()
            for i, reason in enumerate(SKIP_REASONS):
                self._array[i] = state["counts"][reason]

    def __repr__(self) -> str:
        return f"SkipCounter({self.as_dict()})"


MAKE_SHARDS_HINT = ("make shards from your videos with scripts/data/curate.py, or toy shards with "
                    "scripts/data/make_toy_shards.py --out data/toy/videos (--images for image shards)")

def torch_worker_id() -> Optional[int]:
    """The id of the current DataLoader worker, or None in the main process."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return None if info is None else info.id


class SkipHandler:
    """A webdataset exception handler: count the failure, log it (rank zero only) and continue.

    Args:
        counter: where the skip is counted.
        default_reason: the reason counted for exceptions other than `SampleSkipped` (e.g. "read_error" for
            the shard-reading stages); None re-raises them, so a bug in a decode function is not hidden.
        max_logged: each process logs its first `max_logged` skips as warnings, then only counts (a
            summary is logged by the data module).
    """

    def __init__(self, counter: SkipCounter, default_reason: Optional[str] = "read_error", max_logged: int = 20):
        if default_reason is not None and default_reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {default_reason!r}; expected one of {SKIP_REASONS}")
        self.counter = counter
        self.default_reason = default_reason
        self.max_logged = max_logged
        self._logged = 0

    def __call__(self, exn: Exception) -> bool:
        import webdataset as wds

        if isinstance(exn, SampleSkipped):
            reason = exn.reason
        elif self.default_reason is None:
            raise exn
        else:
            reason = self.default_reason
        self.counter.increment(reason)
        rank, _, worker, _ = wds.utils.pytorch_worker_info()
        if rank == 0 and self._logged < self.max_logged:
            self._logged += 1
            more = " (further skips in this worker are counted, not logged)" if self._logged == self.max_logged else ""
            logger.warning("skipping a sample (%s) in data worker %d: %s%s", reason, worker, _describe(exn), more)
        return True  # continue with the next sample / shard


def _describe(exn: Exception) -> str:
    """A one-line description of an exception, without the stream objects webdataset appends to its args."""
    parts = [str(a) for a in getattr(exn, "args", ()) if isinstance(a, (str, int, float))]
    text = "; ".join(parts) if parts else repr(exn)
    return f"{type(exn).__name__}: {text}"[:500]


def expand_shards(spec: ShardSpec) -> List[str]:
    """Turn a shard spec into a list of shard URLs.

    `spec` is a string or a list of strings. Each string may be
    - a local `.tar` path, a brace pattern (`data/shard-{000000..000099}.tar`) or a glob (`data/*.tar`),
    - a local folder (all `*.tar` inside it, sorted),
    - a URL or pipe that webdataset opens itself (`https://...`, `pipe:aws s3 cp s3://bucket/x.tar -`),
      brace-expanded but never globbed,
    and several specs may be joined with `::` in one string. Raises ValueError when a local spec matches nothing.
    """
    import webdataset as wds

    items = [spec] if isinstance(spec, str) else list(spec)
    if not items:
        raise ValueError("no shards given: pass a path, glob, brace pattern, URL or 'pipe:' command")
    urls: List[str] = []
    for item in items:
        for url in wds.shardlists.expand_urls(str(item)):
            if _URL_RE.match(url) and not os.path.exists(url):
                urls.append(url)  # remote or pipe: webdataset's gopen opens it
            elif os.path.isdir(url):
                found = sorted(glob.glob(os.path.join(url, "*.tar")))
                if not found:
                    raise ValueError(f"shard folder {url!r} holds no .tar files; {MAKE_SHARDS_HINT}")
                urls.extend(found)
            elif glob.has_magic(url):
                found = sorted(glob.glob(url))
                if not found:
                    raise ValueError(f"shard pattern {url!r} matches no files; {MAKE_SHARDS_HINT}")
                urls.extend(found)
            elif os.path.exists(url):
                urls.append(url)
            else:
                raise ValueError(
                    f"shard {url!r} does not exist; give existing local paths/globs, or URLs/'pipe:' commands "
                    f"(e.g. 'pipe:aws s3 cp s3://bucket/shard-000000.tar -'); {MAKE_SHARDS_HINT}"
                )
    return urls


def shard_pipeline(
    urls: List[str],
    decode: Callable[[dict], dict],
    counter: SkipCounter,
    shuffle_buffer: int = 100,
    resampled: bool = False,
    shard_shuffle_seed: Optional[int] = 0,
    seed: Optional[int] = None,
    keep_key: bool = False,
):
    """A `webdataset.DataPipeline` from shard URLs to decoded samples (see the module docstring).

    Args:
        urls: shard URLs from `expand_shards`.
        decode: maps a raw webdataset sample (dict of bytes) to the training sample; raises `SampleSkipped`.
        counter: counts skipped samples.
        shuffle_buffer: size of the sample shuffle buffer; 0 or 1 keeps shard order.
        resampled: draw shards with replacement, forever (`ResampledShards`); each rank and worker draws
            independently, so there is no node/worker split. Give the dataset an `epoch_length` with it.
        shard_shuffle_seed: without resampling, the shard order is shuffled with this seed (the same on every
            rank, so the rank split stays disjoint); None keeps the given order.
        seed: makes the sample shuffle and (with `resampled`) the shard drawing deterministic; give each rank
            and worker its own. None draws from OS entropy / the clock.
        keep_key: keep the `__key__` entry (the sample id) that webdataset's `map` puts in each sample.
    """
    import webdataset as wds

    if resampled:
        source = [wds.ResampledShards(urls, seed=seed or 0, deterministic=seed is not None)]
    else:
        source = [wds.SimpleShardList(urls, seed=shard_shuffle_seed), wds.split_by_node, wds.split_by_worker]
    stages: List = source + [wds.tarfile_to_samples(handler=SkipHandler(counter, "read_error"))]
    if shuffle_buffer > 1:
        stages.append(wds.shuffle(shuffle_buffer, initial=min(shuffle_buffer, 100), seed=seed))
    stages.append(wds.map(decode, handler=SkipHandler(counter, default_reason=None)))
    if not keep_key:
        stages.append(_drop_key)
    return wds.DataPipeline(*stages)


def _drop_key(samples: Iterable[dict]) -> Iterable[dict]:
    """Pipeline stage: remove the `__key__` entry, so batches hold only the documented keys."""
    for sample in samples:
        sample.pop("__key__", None)
        yield sample


def per_worker_share(total: int) -> int:
    """This DataLoader worker's share of `total` samples, so that the shares of all workers sum to `total`."""
    import webdataset as wds

    _, _, worker, num_workers = wds.utils.pytorch_worker_info()
    return total // num_workers + (1 if worker < total % num_workers else 0)


def repeat_samples(pipeline: Iterable, count: int) -> Iterable:
    """Yield exactly `count` samples from `pipeline`, starting it over as often as needed (stops if it is empty)."""
    produced = 0
    while produced < count:
        before = produced
        for sample in pipeline:
            yield sample
            produced += 1
            if produced == count:
                return
        if produced == before:
            logger.warning("the data pipeline yielded no samples; ending the epoch early")
            return
