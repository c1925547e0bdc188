"""Running the curation's per-video tasks (analysis, clip encoding) as a Ray Data `map` over a Ray cluster.

The tasks are the same functions the local process pool runs, and they write the same files (records, cached
clips) under the work folder, so on a cluster that folder must be on a file system every node sees. The driver
then writes the shards from the records, exactly as a local run does: the shards are the same bytes.

Connect first with `ray.init(address=...)` (or set RAY_ADDRESS); without a running Ray, `ray.data` starts a
local one. Each task takes one CPU (`num_cpus`), as one process of the local pool would.
"""
import json
import pickle
from typing import Callable, Iterator, Sequence

__all__ = ["run_tasks_on_ray"]


def run_tasks_on_ray(fn: Callable, tasks: Sequence[tuple], progress: bool = True, num_cpus: float = 1.0) -> Iterator:
    """Yield `fn(*task)` for every task (in task order), computed by Ray Data tasks of `num_cpus` CPUs each.

    Each row of the dataset carries its task pickled, and `fn` must return something JSON can carry (results
    go back as JSON text, so rows of different shapes need no common Arrow schema).
    """
    import ray

    if not tasks:
        return
    ray.data.DataContext.get_current().enable_progress_bars = progress

    def run(row: dict) -> dict:
        return {"index": row["index"], "result": json.dumps(fn(*pickle.loads(row["task"])))}

    dataset = ray.data.from_items([{"index": i, "task": pickle.dumps(task)} for i, task in enumerate(tasks)])
    rows = dataset.map(run, num_cpus=num_cpus).take_all()
    for row in sorted(rows, key=lambda r: r["index"]):
        yield json.loads(row["result"])
