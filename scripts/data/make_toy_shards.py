#!/usr/bin/env python
"""Write webdataset shards of small synthetic videos (moving shapes) or images, for toy training runs.

Examples:
    python scripts/data/make_toy_shards.py --out data/toy/videos --num-shards 4 --samples-per-shard 16
    python scripts/data/make_toy_shards.py --out data/toy/images --images --size 64 64

Videos: one coloured square/circle moving left/right/up/down at a known speed (or still), written at several
source frame rates; each sample is `<key>.mp4` (H.264) + `<key>.json` (fps, num_frames, width, height, duration,
caption, motion_score, motion_bucket_id, ...). Images: `<key>.jpg` + `<key>.json` with a caption.
The same --seed writes identical shards. See docs/data.md.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sgm.data.synthetic import write_toy_image_shards, write_toy_video_shards


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder for the .tar shards")
    p.add_argument("--images", action="store_true", help="write still-image shards (stage 1) instead of videos")
    p.add_argument("--num-shards", type=int, default=2, help="number of shards (default 2)")
    p.add_argument("--samples-per-shard", type=int, default=None, help="samples per shard (default 8 videos / 16 images)")
    p.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                   help="frame size, both even (default 64 128 for videos, 64 64 for images)")
    p.add_argument("--duration", type=float, default=3.0, help="video length in seconds (default 3)")
    p.add_argument("--num-frames", type=int, default=None, help="fixed frames per video (overrides --duration)")
    p.add_argument("--fps", type=float, nargs="+", default=[12, 24, 30], help="source frame rates to draw from")
    p.add_argument("--direction", choices=["left", "right", "up", "down"], default=None,
                   help="every shape moves this way (data for a motion LoRA, docs/lora.md); default: drawn per video")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical shards)")
    p.add_argument("--prefix", default=None, help="shard name prefix (default toy-video / toy-image)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    if args.images:
        paths = write_toy_image_shards(
            args.out,
            num_shards=args.num_shards,
            samples_per_shard=args.samples_per_shard or 16,
            size=tuple(args.size or (64, 64)),
            seed=args.seed,
            prefix=args.prefix or "toy-image",
        )
    else:
        paths = write_toy_video_shards(
            args.out,
            num_shards=args.num_shards,
            samples_per_shard=args.samples_per_shard or 8,
            size=tuple(args.size or (64, 128)),
            num_frames=args.num_frames,
            seed=args.seed,
            duration=args.duration,
            fps_choices=args.fps,
            direction=args.direction,
            prefix=args.prefix or "toy-video",
        )
    first, last = paths[0].name, paths[-1].name
    print(f"wrote {len(paths)} shards ({first} .. {last}) to {args.out} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
