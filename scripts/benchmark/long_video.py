#!/usr/bin/env python
"""Joins and colour drift of chained long videos (`--total_frames`) against naive last-frame chaining,
side by side in one run, over held-out inputs.

    python scripts/benchmark/long_video.py --ckpt runs/toy/stage3/<run>/checkpoints/last.ckpt
    python scripts/benchmark/long_video.py --random_weights          # no trained model at hand

Methods (all make the same number of frames from the same inputs):
- naive: what users do by hand: a clip from the image, then a clip from its last decoded frame, whose
  first frame (a copy of that frame) is dropped; each clip decoded on its own.
- chained: `sgm.inference.chaining` as `--total_frames` runs it (overlap tie, crossfade, one decode,
  every clip attending to the CLIP embedding of the video's first frame).
- chained + color_match: the same with `--color_match`.
- ablations: each clip attending to the CLIP embedding of the frame it starts on (as naive chaining
  does), the overlap without the latent tie (only the conditioning frame and the crossfade), and the
  tie released for the last steps (`--release_sigma`).

Join ratio: at each join, the largest frame-to-frame change (mean absolute pixel difference, 0..255)
over the transitions the join touches (from the last frame before the overlap, into the overlap frames
the crossfade makes, to the first new frame), divided by the mean change over all other transitions;
averaged over joins and over the inputs whose true continuation moves (a shape standing still makes
the truth's ratio 0/0). 1.0: a join is as smooth as the inside of a clip. Into / out of the overlap,
inside: those mean changes themselves (moving inputs), to see whether motion stalls or jumps there.
Overlap contrast: the spatial standard deviation of the overlap frames over that of the frames on
either side (1: as sharp; below 1: washed out, as a crossfade of two different latents makes them;
a washed-out frame also changes less from its neighbours, which lowers the join ratio without making
the join any better). Colour drift: distance of the last clip's mean RGB from the first clip's
(mean, median and worst over all inputs: a single input that runs away dominates the mean).
Inputs: first frames of moving-shape videos (sgm.data.synthetic) drawn with seeds the toy training
and evaluation data never use; the row "toy world (true continuation)" measures those videos
themselves at the model's frame rate, cut like the chain (e.g. the colour change of a shape leaving
the frame is not drift the model made). Results go to docs/sampling.md ("Longer videos").
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

HELD_OUT_SEED = 90_000  # the toy curriculum draws its data from seeds 23 and 1023


def held_out_videos(n: int, height: int, width: int, fps: float, num_frames: int) -> List[np.ndarray]:
    """Videos (num_frames, H, W, 3) of the toy world the curriculum's stage 3 learnt (four colours, each
    with its direction) at `fps`: the inputs are their first frames, the rest is the true continuation."""
    from sgm.data.synthetic import render_toy_video

    return [render_toy_video(np.random.default_rng([HELD_OUT_SEED, i]), height, width, fps, num_frames,
                             direction_by_colour=True)[0] for i in range(n)]


STILL = 0.5  # a true continuation whose mean frame-to-frame change is below this stands still


def join_transitions(clips: List[Dict]) -> List[range]:
    """For each join, the frames t whose transition t-1 -> t the join touches: from the last frame
    before the overlap into the first overlap frame, through the overlap, to the first new frame."""
    return [range(c["start"], c["start"] + c["overlap"] + 1) for c in clips[1:]]


def changes(frames: np.ndarray, clips: List[Dict]):
    """(largest frame-to-frame change across each join, mean change over the other transitions);
    a change is the mean absolute pixel difference (0..255) between consecutive frames."""
    change = np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))  # change[t-1]: frame t-1 -> t
    joins = join_transitions(clips)
    at_join = {t for join in joins for t in join}
    inside = [change[t - 1] for t in range(1, len(frames)) if t not in at_join]
    return [max(change[t - 1] for t in join) for join in joins], float(np.mean(inside))


def join_ratio(frames: np.ndarray, clips: List[Dict]) -> float:
    """Mean over joins of (largest change across the join) / (mean change inside clips)."""
    at_joins, inside = changes(frames, clips)
    return float(np.mean(at_joins) / max(inside, 1e-9))


def join_profile(frames: np.ndarray, clips: List[Dict]) -> Dict[str, float]:
    """Mean change into the overlap (last frame before it -> first overlap frame), out of it (last
    overlap frame -> first new frame) and inside clips (every other transition)."""
    change = np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))  # change[t-1]: frame t-1 -> t
    joins = join_transitions(clips)
    _, inside = changes(frames, clips)
    return {"into": float(np.mean([change[j[0] - 1] for j in joins])),
            "out": float(np.mean([change[j[-1] - 1] for j in joins])), "inside": inside}


def overlap_contrast(frames: np.ndarray, clips: List[Dict]) -> float:
    """Mean over joins of the spatial standard deviation of the overlap frames divided by that of the
    frame before the overlap and the first new frame (1: as sharp as its neighbours; below 1: washed out)."""
    std = frames.astype(np.float64).std(axis=(1, 2)).mean(axis=-1)  # (N,) per frame, mean over RGB
    ratios = []
    for c in clips[1:]:
        s, k = c["start"], c["overlap"]
        ratios.append(std[s:s + k].mean() / max(0.5 * (std[s - 1] + std[min(s + k, len(std) - 1)]), 1e-9))
    return float(np.mean(ratios))


def stands_still(truth: np.ndarray) -> bool:
    """Whether a true continuation (N, H, W, 3) hardly changes from frame to frame (its shapes stand still)."""
    return float(np.abs(np.diff(truth.astype(np.float64), axis=0)).mean()) < STILL


def coherence(videos: List[np.ndarray], clips: List[List[Dict]]) -> float:
    """Mean change inside clips divided by the mean difference between same-index frames of videos made
    from different inputs: near 1, consecutive frames are as unlike as unrelated videos (the model makes
    no coherent motion and the join ratio cannot tell methods apart); well below 1, it can."""
    inside = np.mean([changes(v, c)[1] for v, c in zip(videos, clips)])
    unrelated = np.mean([np.abs(a.astype(np.float64) - b).mean() for i, a in enumerate(videos) for b in videos[i + 1:]])
    return float(inside / max(unrelated, 1e-9))


def naive_chain(pipe, image: Image.Image, opts, total_frames: int):
    """Frames of last-frame chaining and its clips as (start, overlap) records: each new clip starts on
    the previous clip's last frame (overlap 1), whose copy in the new clip is dropped."""
    clip_opts = dataclasses.replace(opts, total_frames=None)
    frames = pipe.generate(image, clip_opts).frames
    clips = [{"start": 0, "end": len(frames), "overlap": 0}]
    while len(frames) < total_frames:
        start = len(frames) - 1
        new = pipe.generate(Image.fromarray(frames[-1]), clip_opts).frames[1:]
        frames = np.concatenate([frames, new])[:total_frames]
        clips.append({"start": start, "end": len(frames), "overlap": 1})
    return frames, clips


def chained(pipe, image: Image.Image, opts, tie: bool = True, release_sigma: float = 0.0, anchor: bool = True):
    from sgm.inference.chaining import chain_record
    from sgm.inference.seeds import derive_seed, image_fingerprint

    frame = pipe.prepare_image(image, opts)
    seed = derive_seed(opts.seed, image_fingerprint(image))  # as `generate` seeds a video of this image
    with torch.no_grad():
        z, record = pipe._chained_latents(frame, opts, seed, None, tie=tie, release_sigma=release_sigma,
                                             anchor=anchor)
    frames = pipe.decode_latents(z, opts)
    return frames, chain_record(frames, record["clips"])["clips"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/toy/svd_toy.yaml")
    p.add_argument("--ckpt", default=None, help="the model's weights (e.g. the toy curriculum's stage-3 last.ckpt)")
    p.add_argument("--random_weights", action="store_true", help="no checkpoint: random weights")
    p.add_argument("--inputs", type=int, default=4, help="held-out input images")
    p.add_argument("--clips", type=int, default=3, help="total_frames = clips x num_frames")
    p.add_argument("--overlap", type=int, default=None, help="chain_overlap (default: the library's)")
    p.add_argument("--num_steps", type=int, default=None)
    p.add_argument("--decoding_t", type=int, default=9, help="frames per decoder call (9: room for the default decoding overlap of 4)")
    p.add_argument("--release_sigma", type=float, nargs="*", default=[1.0], help="ablation: tie released below these")
    p.add_argument("--seed", type=int, default=23)
    p.add_argument("--device", default=None, help="cuda, cpu (default cuda when available)")
    p.add_argument("--dtype", default=None, choices=["fp16", "bf16", "fp32"], help="default fp16 on cuda, fp32 on cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the per-input rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from sgm.inference import SamplingOptions, VideoPipeline
    from sgm.inference.chaining import CHAIN_RELEASE_SIGMA, chain_record, default_overlap, plan_chain

    if args.ckpt is None and not args.random_weights:
        p.error("pass --ckpt (trained weights) or --random_weights")
    pipe = VideoPipeline.load(config=args.config, ckpt=args.ckpt, device=args.device, dtype=args.dtype,
                              random_weights=args.ckpt is None)
    if args.ckpt is None:  # a random init draws from the global RNG: make it the same in every run
        from tests.helpers import fill_deterministic_

        fill_deterministic_(pipe.model, args.seed)
    T = pipe.defaults.num_frames
    total = args.clips * T
    opts = SamplingOptions(seed=args.seed, num_steps=args.num_steps, decoding_t=args.decoding_t, total_frames=total,
                           chain_overlap=args.overlap).filled(pipe.defaults)
    overlap = opts.chain_overlap or default_overlap(T)
    truths = held_out_videos(args.inputs, opts.height, opts.width, opts.fps_id + 1, total)
    truth_clips = [c.to_dict() for c in plan_chain(total, T, overlap, 0)]
    methods = {
        # Reference: the toy world's own continuation of each input, cut where the chained clips are.
        "toy world (true continuation)": lambda i, im: (truths[i], truth_clips),
        "naive (last frame)": lambda i, im: naive_chain(pipe, im, opts, total),
        "chained": lambda i, im: chained(pipe, im, opts, release_sigma=CHAIN_RELEASE_SIGMA),
        "chained + color_match": lambda i, im: chained(pipe, im, dataclasses.replace(opts, color_match=True)),
        "CLIP embedding of each clip's start": lambda i, im: chained(pipe, im, opts, anchor=False),
        "overlap without the tie": lambda i, im: chained(pipe, im, opts, tie=False),
    }
    for sigma in args.release_sigma:
        methods[f"tie released below sigma {sigma:g}"] = lambda i, im, s=sigma: chained(pipe, im, opts, release_sigma=s)
    images = [Image.fromarray(v[0]) for v in truths]
    rows, made = [], {}
    for i, image in enumerate(images):
        for name, run in methods.items():
            t0 = time.perf_counter()
            frames, clips = run(i, image)
            assert len(frames) == total, (name, len(frames))
            drift = chain_record(frames, clips)["clips"][-1]["colour_drift"]
            rows.append({"input": i, "method": name, "moving": not stands_still(truths[i]),
                         "join_ratio": join_ratio(frames, clips), **join_profile(frames, clips),
                         "overlap_contrast": overlap_contrast(frames, clips), "colour_drift": drift,
                         "seconds": time.perf_counter() - t0})
            made.setdefault(name, []).append((frames, clips))
            print(f"input {i} {name:36s} join ratio {rows[-1]['join_ratio']:.3f}  overlap contrast "
                  f"{rows[-1]['overlap_contrast']:.3f}  colour drift {drift:.2f}", flush=True)

    weights = args.ckpt or f"random weights (seed {args.seed})"
    moving = [i for i, v in enumerate(truths) if not stands_still(v)]
    print(f"\n{args.config}, {weights}; {args.inputs} held-out inputs ({len(moving)} whose true continuation moves: "
          f"{moving}), {args.clips} clips of {T} frames (total {total}), overlap {overlap}, {opts.num_steps} steps, "
          f"{opts.sampler}\n")
    print("| method | join ratio, moving inputs: mean | worst input | change into the overlap | out of it | inside clips "
          "| overlap contrast | colour drift, last vs first clip (0..255), all inputs: mean | median | worst input "
          "| coherence (inside-clip change / unrelated videos) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in methods:
        mine = [r for r in rows if r["method"] == name]
        moved = [r for r in mine if r["moving"]] or mine
        ratios = [r["join_ratio"] for r in moved]
        worst = int(np.argmax(ratios))
        drifts = [r["colour_drift"] for r in mine]
        mean = {k: np.mean([r[k] for r in moved]) for k in ("into", "out", "inside", "overlap_contrast")}
        videos, clips = zip(*made[name])
        print(f"| {name} | {np.mean(ratios):.2f} | {ratios[worst]:.2f} (input {moved[worst]['input']}) | "
              f"{mean['into']:.1f} | {mean['out']:.1f} | {mean['inside']:.1f} | {mean['overlap_contrast']:.2f} | "
              f"{np.mean(drifts):.2f} | {np.median(drifts):.2f} | {max(drifts):.2f} (input {int(np.argmax(drifts))}) "
              f"| {coherence(list(videos), list(clips)):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
