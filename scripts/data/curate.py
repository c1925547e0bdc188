#!/usr/bin/env python
"""Curate raw videos into filtered, annotated webdataset shards (issue #5; see docs/curation.md).

  curate.py run     VIDEOS... --out OUT    analyse every video, then filter, encode and write shards
  curate.py analyze VIDEOS... --out OUT    only the per-video analysis records (one Slurm array task:
                                           add --shard-index $SLURM_ARRAY_TASK_ID --num-shards N)
  curate.py shard   --out OUT              filter the stored scores (thresholds may have changed), encode,
                                           write shards, motion_buckets.json, summary and plots

VIDEOS are folders (searched recursively), video files or .txt lists of paths. Settings come from
--config (default configs/curation/default.yaml) and --set key.sub=value overrides.
Everything resumes: rerun the same command after an interruption.

Exit status: 0 when every video was read, 1 when the run finished but some videos are unreadable (they are
listed, and in OUT/summary.md), 2 for a settings error (nothing is done).
"""
import argparse
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "curation" / "default.yaml"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "analyze", "shard"):
        p = sub.add_parser(name)
        if name != "shard":
            p.add_argument("inputs", nargs="+", help="folders, video files or .txt lists of video paths")
            p.add_argument("--shard-index", type=int, default=0, help="this task's share of the sorted input list")
            p.add_argument("--num-shards", type=int, default=1, help="number of tasks the input list is split over")
        if name != "analyze":
            p.add_argument("--motion-mapping", default=None, help="reuse this motion_buckets.json instead of fitting one")
        p.add_argument("--out", required=True, help="output folder (shards/, summary, plots, motion_buckets.json)")
        p.add_argument("--work", default=None, help="records and clip cache (default OUT/work; shared by array tasks)")
        p.add_argument("--config", default=str(DEFAULT_CONFIG), help="curation YAML config")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set filters.min_motion=0.01 (repeatable)")
        p.add_argument("--workers", type=int, default=None, help="processes (0 = this process); default from config")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("--ray", action="store_true",
                       help="run the per-video tasks as Ray Data tasks on a Ray cluster (--ray-address, else RAY_ADDRESS, "
                            "else a local Ray); --work must be on storage every node sees")
        p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                       help="the cluster for --ray, e.g. auto or <head ip>:6379 (from a node of that cluster)")
    return parser.parse_args(argv)


def _connect_ray(address) -> None:
    """Join the Ray cluster at `address` (None: RAY_ADDRESS, else a new local one); ValueError says why not."""
    if address is not None and not address.strip():
        raise ValueError("--ray-address is empty; give the cluster's address, e.g. auto or <head ip>:6379")
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray Data: pip install 'ray[data]'") from None
    try:
        ray.init(address=address, ignore_reinit_error=True)
    except ConnectionError as e:
        raise ValueError(f"--ray: cannot connect to the Ray cluster ({e}); check --ray-address / RAY_ADDRESS") from None


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sgm.data.curation.config import load_config
    from sgm.data.curation.inputs import list_inputs, select_shard
    from sgm.data.curation.pipeline import analyze_all, build_shards

    try:
        failed = False
        overrides = list(args.overrides) + ([f"workers={args.workers}"] if args.workers is not None else [])
        cfg = load_config(args.config, overrides)
        args.ray = args.ray or args.ray_address is not None  # an address means Ray
        if args.ray:
            _connect_ray(args.ray_address)
        out = Path(args.out)
        work = Path(args.work) if args.work else out / "work"
        if args.command in ("run", "analyze"):
            paths = select_shard(list_inputs(args.inputs), args.shard_index, args.num_shards)
            start = time.perf_counter()
            counts = analyze_all(paths, work, cfg, progress=not args.no_progress, ray=args.ray)
            elapsed = time.perf_counter() - start
            print(f"analysis: {len(paths)} videos ({counts['analysed']} analysed now, {counts['skipped_done']} "
                  f"already done, {counts['unreadable']} unreadable), {counts['clips']} clips in {elapsed:.1f}s")
            failed = counts["unreadable"] > 0
        if args.command in ("run", "shard"):
            summary = build_shards(work, out, cfg, motion_mapping=args.motion_mapping, progress=not args.no_progress,
                                   ray=args.ray)
            clips, videos = summary["clips"], summary["videos"]
            print(f"shards: {summary['shards']['count']} in {out / 'shards'}; clips kept {clips['kept']} of "
                  f"{clips['total']}; unreadable videos {videos['unreadable']}; summary {out / 'summary.md'}")
            for error in videos["errors"]:
                print(f"  unreadable: {error['path']}: {error['error']}")
            for error in videos["truncated"]:
                print(f"  kept up to a decoding error: {error['path']}: {error['error']}")
            failed = videos["unreadable"] > 0
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
