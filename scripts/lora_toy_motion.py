#!/usr/bin/env python
"""Toy proof of motion LoRAs: a LoRA trained on clips whose shapes all move one way makes the toy model's
sampled videos move that way.

    python scripts/toy_curriculum.py --workdir runs/toy                      # the toy model
    python scripts/lora_toy_motion.py --base_ckpt runs/toy/stage3/checkpoints/last.ckpt --direction right

1. Data: synthetic shards (sgm.data.synthetic) whose shapes all move `--direction`.
2. Training: `main.py --base configs/toy/svd_toy.yaml configs/lora/toy_motion.yaml` from `--base_ckpt`
   (temporal-attention adapters; the toy model itself stays frozen).
3. Measurement: from `--num_images` held-out first frames (shapes of every colour, none moving yet), one
   video each with the adapter at strength 0 (the base model) and 1, same seeds. Per video the shape's
   displacement between the first and the last frame (peak of the circular cross-correlation of the shape
   masks, as shapes wrap around the frame); reported: the mean displacement (dx, dy) in pixels, its cosine
   with the direction, and the share of videos whose displacement points within 45 degrees of it.

Writes <workdir>/report.json. Exit status 0 when, with the adapter, the mean displacement points within
45 degrees of the direction, is at least 2 px along it, and the share moving that way exceeds the base
model's; 1 otherwise.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MIN_PX = 2.0  # the slowest toy clip moves 8 px between the first and the fourth of 4 frames at 6 fps
UNIT = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}  # y grows downwards


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base_ckpt", required=True, help="the toy model (stage 3 of scripts/toy_curriculum.py)")
    p.add_argument("--workdir", default="runs/lora_toy", help="data, run and report go here")
    p.add_argument("--direction", choices=sorted(UNIT), default="right")
    p.add_argument("--steps", type=int, default=200, help="LoRA training steps")
    p.add_argument("--batch_size", type=int, default=4, help="clips per training step")
    p.add_argument("--num_images", type=int, default=16, help="held-out first frames to sample from")
    p.add_argument("--num_steps", type=int, default=8, help="sampling steps")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip_training", action="store_true", help="reuse the adapter already in --workdir")
    return p.parse_args(argv)


def shape_mask(frame: np.ndarray, threshold: float = 60.0) -> np.ndarray:
    """(H, W) bool: pixels far from the frame's median colour (the background covers most of a toy frame)."""
    background = np.median(frame.reshape(-1, 3).astype(np.float64), axis=0)
    return np.abs(frame.astype(np.float64) - background).sum(-1) > threshold


def displacement(first: np.ndarray, last: np.ndarray) -> Optional[Tuple[float, float]]:
    """(dx, dy) pixels moving the shape of `first` onto that of `last` (circular cross-correlation peak);
    None when a frame shows no shape."""
    a, b = shape_mask(first).astype(np.float64), shape_mask(last).astype(np.float64)
    if a.sum() == 0 or b.sum() == 0:
        return None
    corr = np.real(np.fft.ifft2(np.conj(np.fft.fft2(a)) * np.fft.fft2(b)))
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    return float((dx + w // 2) % w - w // 2), float((dy + h // 2) % h - h // 2)


def summarize(moves: List[Optional[Tuple[float, float]]], direction: str) -> Dict:
    u = np.array(UNIT[direction])
    found = np.array([m for m in moves if m is not None]).reshape(-1, 2)
    mean = found.mean(0) if len(found) else np.zeros(2)
    norms = np.linalg.norm(found, axis=1) if len(found) else np.zeros(0)
    along = [(m @ u) / n > np.cos(np.pi / 4) if n > 0 else False for m, n in zip(found, norms)]
    return {"videos": len(moves), "with_shape": int(len(found)), "mean_displacement_px": [round(float(v), 3) for v in mean],
            "mean_cosine_with_direction": round(float(mean @ u / np.linalg.norm(mean)), 3) if np.linalg.norm(mean) else 0.0,
            "share_moving_that_way": round(float(np.mean(along)) if along else 0.0, 3),
            "displacements": [list(m) if m is not None else None for m in moves]}


def train(args, work: Path) -> Path:
    from sgm.data.synthetic import write_toy_video_shards

    shards = work / f"data_{args.direction}"
    # the slowest toy speed: 16 px between the first and last of 4 frames in the 64-pixel crop the toy
    # model trains on (at 1 frame width per second a shape would travel the whole crop and look still)
    write_toy_video_shards(shards, num_shards=2, samples_per_shard=32, size=(64, 128), seed=args.seed,
                           direction=args.direction, speeds=(0.25,))
    cmd = [sys.executable, str(REPO / "main.py"), "--base", str(REPO / "configs/toy/svd_toy.yaml"),
           str(REPO / "configs/lora/toy_motion.yaml"), f"model.params.ckpt_path={args.base_ckpt}",
           f"data.params.train.shards={shards}", f"lightning.trainer.max_steps={args.steps}",
           f"data.params.batch_size={args.batch_size}",
           "lightning.trainer.enable_progress_bar=false", "--logdir", str(work / "logs"), "--name", f"lora_{args.direction}"]
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    runs = sorted((work / "logs").glob(f"*_lora_{args.direction}"))
    return runs[-1] / "lora" / "last.safetensors"


def eval_images(n: int, seed: int):
    """First frames of held-out toy clips (every colour and direction), 64x64 as the toy model trains."""
    from PIL import Image

    from sgm.data.synthetic import render_toy_video

    images = []
    for i in range(n):
        frames, _ = render_toy_video(np.random.default_rng([seed, 999, i]), 64, 64, fps=6.0, num_frames=1)
        images.append(Image.fromarray(frames[0]))
    return images


def measure(args, adapter: Path) -> Dict:
    import torch

    from sgm.inference import SamplingOptions, VideoPipeline

    torch.set_num_threads(args.threads)
    pipe = VideoPipeline.load(config=str(REPO / "configs/toy/svd_toy.yaml"), ckpt=args.base_ckpt, device="cpu",
                              lora=[(str(adapter), 0.0)], merge_lora=False)
    name = pipe.info["lora"][0]["name"]
    opts = SamplingOptions(num_frames=4, num_steps=args.num_steps, seed=args.seed, width=64, height=64)
    report = {}
    for strength in (0.0, 1.0):
        pipe.set_lora_strength(name, strength)
        moves = []
        for image in eval_images(args.num_images, args.seed):
            frames = pipe.generate(image, opts).frames  # (T, H, W, 3) uint8
            moves.append(displacement(frames[0], frames[-1]))
        report[f"strength_{strength:g}"] = summarize(moves, args.direction)
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    adapter = (sorted((work / "logs").glob(f"*_lora_{args.direction}"))[-1] / "lora" / "last.safetensors"
               if args.skip_training else train(args, work))
    report = {"direction": args.direction, "adapter": str(adapter), "base_ckpt": args.base_ckpt, "steps": args.steps,
              **measure(args, adapter)}
    base, lora = report["strength_0"], report["strength_1"]
    along = float(np.array(lora["mean_displacement_px"]) @ np.array(UNIT[args.direction]))
    report["passed"] = bool(lora["mean_cosine_with_direction"] > np.cos(np.pi / 4) and along >= MIN_PX
                            and lora["share_moving_that_way"] > base["share_moving_that_way"])
    (work / "report.json").write_text(json.dumps(report, indent=1))
    for key in ("strength_0", "strength_1"):
        r = report[key]
        print(f"{key}: mean displacement {r['mean_displacement_px']} px, cosine with {args.direction} "
              f"{r['mean_cosine_with_direction']}, share moving {args.direction} {r['share_moving_that_way']} "
              f"({r['with_shape']}/{r['videos']} videos show a shape)")
    print(f"{'PASSED' if report['passed'] else 'FAILED'}; report: {work / 'report.json'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
