#!/usr/bin/env python
"""Throughput of the curation pipeline on synthetic videos (videos/s and clips/s per stage).

  python scripts/data/bench_curation.py --videos 8 --seconds 10 --size 360x640 --workers 2

Each synthetic video has one hard cut every `--scene-seconds` seconds (moving textures, a static scene, text
slides), so the analysis, filters and encoder all do real work. Figures depend on the machine and its load;
quote them with the machine, resolution and worker count.
"""
import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=8, help="number of synthetic videos")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each video")
    p.add_argument("--scene-seconds", type=float, default=2.5, help="length of each scene (a hard cut between scenes)")
    p.add_argument("--size", default="360x640", help="HxW of the videos")
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--workers", type=int, default=2, help="processes (0 = in this process)")
    p.add_argument("--config", default=str(REPO / "configs" / "curation" / "default.yaml"))
    p.add_argument("--keep", default=None, help="keep inputs and outputs in this folder (default: a temp folder)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from sgm.data.curation.config import load_config
    from sgm.data.curation.inputs import list_inputs
    from sgm.data.curation.pipeline import analyze_all, build_shards
    from sgm.data.curation.synthetic import write_scene_video

    height, width = (int(v) for v in args.size.lower().split("x"))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_curation_"))
    scene_frames = max(2, int(round(args.scene_seconds * args.fps)))
    num_scenes = max(1, int(round(args.seconds / args.scene_seconds)))
    rng = random.Random(0)
    kinds = ["moving", "moving", "moving", "static", "text"]
    start = time.perf_counter()
    for i in range(args.videos):
        scenes = [(rng.choice(kinds), scene_frames) for _ in range(num_scenes)]
        write_scene_video(root / "in" / f"video{i:04d}.mp4", scenes, height, width, args.fps, seed=i)
    print(f"wrote {args.videos} videos of {num_scenes * scene_frames / args.fps:.1f}s at {height}x{width}, "
          f"{args.fps:g} fps in {time.perf_counter() - start:.1f}s ({root / 'in'})")

    cfg = load_config(args.config, [f"workers={args.workers}"])
    paths = list_inputs([root / "in"])
    start = time.perf_counter()
    counts = analyze_all(paths, root / "work", cfg, progress=False)
    analyse_s = time.perf_counter() - start
    start = time.perf_counter()
    summary = build_shards(root / "work", root / "out", cfg, progress=False)
    shard_s = time.perf_counter() - start
    video_s = len(paths) * num_scenes * scene_frames / args.fps
    kept = summary["clips"]["kept"]
    print(f"workers={args.workers}")
    print(f"analyse: {analyse_s:.2f}s  {len(paths) / analyse_s:.2f} videos/s  {counts['clips'] / analyse_s:.2f} clips/s  "
          f"{video_s / analyse_s:.1f}x real time")
    print(f"shard:   {shard_s:.2f}s  {kept / shard_s:.2f} kept clips/s encoded and written")
    total = analyse_s + shard_s
    print(f"total:   {total:.2f}s  {len(paths) / total:.2f} videos/s  {counts['clips'] / total:.2f} clips/s  "
          f"(clips {counts['clips']}, kept {kept})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
