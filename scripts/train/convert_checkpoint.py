#!/usr/bin/env python
"""Make the starting checkpoint of a curriculum stage from the previous stage's checkpoint.

Examples:
    # SD 2.1 (original ldm layout) -> stage 1 (same network, keys renamed)
    python scripts/train/convert_checkpoint.py --src checkpoints/v2-1_768-ema-pruned.safetensors \\
        --config configs/curriculum/stage1_image.yaml --adapter copy --out checkpoints/curriculum/stage1_init.safetensors
    # stage 1 -> 2: image UNet inflated to a video UNet (temporal layers start as identities)
    python scripts/train/convert_checkpoint.py --src logs/<stage1 run>/checkpoints/last.ckpt \\
        --config configs/curriculum/stage2_video_pretrain.yaml --adapter inflate --out checkpoints/curriculum/stage2_init.safetensors
    # stage 2 -> 3: text-to-video -> image-to-video (8 input channels, fps/motion/cond_aug vector conditioning)
    python scripts/train/convert_checkpoint.py --src logs/<stage2 run>/checkpoints/last.ckpt \\
        --config configs/svd.yaml --adapter i2v --out checkpoints/curriculum/stage3_init.safetensors

The written .safetensors file holds every weight of the target config's model; load it with
`model.params.ckpt_path=<out>`. Weights the previous stage did not have (temporal layers, the new input
channels, the vector embedding, a new CLIP image embedder or temporal decoder) get the target's own
initialisation, chosen so that the network starts out computing what the previous one did.
"""
import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sgm.models.inflation import ADAPTERS, convert_checkpoint  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="the previous stage's checkpoint (.ckpt from main.py or .safetensors)")
    p.add_argument("--config", required=True, help="the next stage's config (its model: section is built)")
    p.add_argument("--adapter", required=True, help=f"one of {sorted(ADAPTERS)} or a dotted function name")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--seed", type=int, default=0, help="seed of the new layers' random initialisation")
    p.add_argument("--ema", action="store_true", help="start from the source run's EMA weights of the network (use_ema: true)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.out.endswith(".safetensors"):
        raise SystemExit("--out must end in .safetensors")
    start = time.perf_counter()
    try:
        convert_checkpoint(args.src, args.config, args.out, args.adapter, seed=args.seed, ema=args.ema)
    except (ValueError, FileNotFoundError) as e:  # user errors: a message, not a traceback
        raise SystemExit(f"convert_checkpoint: {e}")
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
