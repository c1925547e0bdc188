"""The two stages: `analyze` (per-video records, parallel, resumable) and `shard` (filter, encode, write).

Both are safe to interrupt and rerun: analysis skips videos whose record exists with the same analysis
fingerprint; encoding skips clips already encoded; shards are rewritten from the sorted records, so a resumed
run ends with the same shards as an uninterrupted one.
"""
import hashlib
import json
import logging
import os
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

from .analyze import analyze_video
from .buckets import MotionBucketMapping, fit_motion_mapping
from .config import CurationConfig
from .encode import cached_clip_path, encode_clips, output_size, remove_stale_temporaries
from .filters import failed_filters
from .records import (
    atomic_write_bytes,
    iter_records,
    read_record,
    video_id,
    write_record,
)
from .shards import sample_json, write_shards
from .summary import build_summary, plot_histograms, write_summary

__all__ = ["analyze_all", "build_shards", "analyze_and_record"]

logger = logging.getLogger(__name__)

ENCODER_VERSION = 2  # 2: sgm.media's reproducible, faststart x264 settings; frames turned upright


def _init_worker() -> None:
    """Parallelism comes from processes: one thread each for OpenCV and torch (torch is imported only if used)."""
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by torch when a task imports it (CLIP scores)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def analyze_and_record(path: Union[str, Path], cfg: CurationConfig, work_dir: Union[str, Path]) -> dict:
    """Analyse one video and write its record atomically; returns a short status (for progress and Ray)."""
    record = analyze_video(path, cfg)
    write_record(work_dir, record)
    return {"video_id": record["video_id"], "status": record["status"], "clips": len(record["clips"]),
            "error": record.get("error")}


def _run_tasks(fn: Callable, tasks: Sequence[tuple], workers: int, desc: str, progress: bool,
               ray: bool = False) -> Iterable:
    """Yield `fn(*task)` results as they finish, in `workers` processes (0: in this process), or with `ray` as
    Ray Data tasks on the connected Ray cluster (`ray_tasks.run_tasks_on_ray`)."""
    if ray:
        from .ray_tasks import run_tasks_on_ray

        yield from run_tasks_on_ray(fn, tasks, progress)
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit="video", disable=not progress)
    try:
        if workers == 0 or len(tasks) <= 1:
            for task in tasks:
                yield fn(*task)
                bar.update()
            return
        import multiprocessing

        # spawn: forked children can deadlock in OpenCV/torch thread pools started by the parent.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures = [pool.submit(fn, *task) for task in tasks]
            try:
                for future in as_completed(futures):
                    yield future.result()
                    bar.update()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        bar.close()


def analyze_all(paths: Sequence[Path], work_dir: Union[str, Path], cfg: CurationConfig, progress: bool = True,
                ray: bool = False) -> dict:
    """Analyse every video without a current record; returns counts (analysed, skipped, unreadable).

    ray: run the videos as Ray Data tasks on the connected Ray cluster instead of `cfg.workers` processes
    (`work_dir` must then be on a file system every node sees)."""
    fingerprint = cfg.analysis_fingerprint()
    todo = []
    for path in paths:
        record = read_record(work_dir, video_id(path))
        if record is None or record.get("fingerprint") != fingerprint:
            todo.append((path, cfg, work_dir))
    logger.info("analysis: %d videos to do, %d already done", len(todo), len(paths) - len(todo))
    # Videos recorded as unreadable by an earlier run count again, so a rerun reports (and exits) the same.
    done = {str(task[0]) for task in todo}
    earlier = [read_record(work_dir, video_id(p)) for p in paths if str(p) not in done]
    counts = {"analysed": 0, "skipped_done": len(paths) - len(todo), "clips": 0,
              "unreadable": sum(r["status"] != "ok" for r in earlier)}
    for result in _run_tasks(analyze_and_record, todo, cfg.workers, "analyse", progress, ray):
        counts["analysed"] += 1
        counts["clips"] += result["clips"]
        counts["unreadable"] += result["status"] != "ok"
    return counts


def _clip_cache(work_dir: Path, cfg: CurationConfig) -> Path:
    out = cfg.output
    # ENCODER_VERSION: clips cached by an older encoder (other x264 settings, frames not upright) are not reused.
    key = hashlib.sha1(json.dumps([out.max_short_side, out.crf, out.preset, ENCODER_VERSION]).encode()).hexdigest()[:10]
    return Path(work_dir) / "clips" / key


def _encode_task(source: str, clips: List[dict], out_dir: Path, cfg: CurationConfig) -> Dict[str, str]:
    return {k: str(v) for k, v in encode_clips(Path(source), clips, out_dir, cfg.output).items()}


def build_shards(work_dir: Union[str, Path], out_dir: Union[str, Path], cfg: CurationConfig,
                 motion_mapping: Optional[Union[str, Path]] = None, progress: bool = True, ray: bool = False) -> dict:
    """Filter the stored clips with `cfg.filters`, encode the kept ones, write shards, mapping and summary.

    `motion_mapping`: an existing mapping JSON to reuse instead of fitting one (`cfg.buckets`).
    `ray`: encode the videos' clips as Ray Data tasks (as in `analyze_all`); the shards are written here.
    Returns the summary dict (also written to `out_dir/summary.json` and `summary.md`).
    """
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    records = list(iter_records(work_dir))
    if not records:
        raise ValueError(f"no analysis records in {work_dir / 'records'}; run `curate.py analyze` first")
    fingerprint = cfg.analysis_fingerprint()
    stale = sum(r.get("fingerprint") != fingerprint for r in records)
    if stale:
        logger.warning("%d records were analysed with other analysis settings; using their stored scores", stale)
    decisions, kept = {}, []
    for record in records:
        for clip in record["clips"]:
            failed, missing = failed_filters(clip, cfg.filters)
            decisions[clip["clip_id"]] = {"failed": failed, "missing": missing}
            if not failed:
                kept.append((record, clip))
    # 1. the motion mapping: reused, or fitted on the kept clips
    if motion_mapping is not None:
        mapping = MotionBucketMapping.load(motion_mapping)
    else:
        mapping = fit_motion_mapping([c["scores"].get("motion_score") for _, c in kept], cfg.buckets)
    out_dir.mkdir(parents=True, exist_ok=True)
    mapping.save(out_dir / "motion_buckets.json")
    # 2. encode the kept clips (cached per clip and encoding settings, so reruns skip them)
    cache = _clip_cache(work_dir, cfg)
    removed = remove_stale_temporaries(cache)
    if removed:
        logger.info("removed %d temporary clip files left by an interrupted run", removed)
    by_video = defaultdict(list)
    for record, clip in kept:
        by_video[record["path"]].append(clip)
    tasks = [(src, clips, cache, cfg) for src, clips in sorted(by_video.items())
             if not all(cached_clip_path(cache, c).exists() for c in clips)]
    # The encoder gives the same bytes whatever a process encoded before (sgm.media), so workers are reused.
    for _ in _run_tasks(_encode_task, tasks, cfg.workers, "encode", progress, ray):
        pass
    # 3. shards from the sorted kept clips
    samples = []
    for record, clip in kept:
        info = record["info"]
        width, height = output_size(info["width"], info["height"], cfg.output.max_short_side)
        bucket = mapping.bucket(clip["scores"].get("motion_score") or 0.0)
        samples.append({"key": clip["clip_id"], "mp4_path": cached_clip_path(cache, clip),
                        "json": sample_json(clip, record, width, height, bucket)})
    shards = write_shards(samples, out_dir / "shards", cfg.output.shard_size, cfg.output.shard_max_bytes)
    # 4. an index of every clip with its decision, the summary and the plots
    lines = [json.dumps({"clip_id": c["clip_id"], "video": r["path"], "kept": not decisions[c["clip_id"]]["failed"],
                         "failed": decisions[c["clip_id"]]["failed"], "duration": c["duration"], **c["scores"]},
                        sort_keys=True) for r in records for c in r["clips"]]
    atomic_write_bytes(out_dir / "clips.jsonl", ("\n".join(lines) + "\n").encode())
    summary = build_summary(records, decisions, cfg.filters, shards, json.loads((out_dir / "motion_buckets.json").read_text()))
    write_summary(summary, out_dir)
    clips = [c for r in records for c in r["clips"]]
    plot_histograms(clips, cfg.filters, [s["json"]["motion_bucket_id"] for s in samples], out_dir / "plots")
    return summary
