#!/usr/bin/env python
"""What the overlap tie of chained clips does to the latents, on held-out inputs (the inputs of
scripts/benchmark/long_video.py).

    python scripts/benchmark/chain_tie_probe.py --config runs/toy/stage3/configs/config.yaml \
        --ckpt runs/toy/stage3/checkpoints/last.ckpt --inputs 8

For each input: clip 0 from the image, then clip 1 from clip 0's decoded frame at clip 1's start, as
`--total_frames` makes it (same seeds, CLIP embedding of the video's first frame), sampled twice with the
same seed: with the tie (`OverlapTie`, to the last step) and without. Reported, as mean absolute latent
differences: the step between consecutive frames inside clip 0 (the scale), the distance of clip 1's
own first frame (untied) from clip 0's latent of the same frame (what a crossfade without the tie blends),
and how far the tie moves clip 1's new frames (after the overlap).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/toy/svd_toy.yaml")
    p.add_argument("--ckpt", required=True, help="the model's weights (e.g. the toy curriculum's stage-3 last.ckpt)")
    p.add_argument("--inputs", type=int, default=8, help="held-out input images")
    p.add_argument("--overlap", type=int, default=None, help="chain_overlap (default: the library's)")
    p.add_argument("--decoding_t", type=int, default=9)
    p.add_argument("--seed", type=int, default=23)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from scripts.benchmark.long_video import held_out_videos
    from sgm.inference import SamplingOptions, VideoPipeline
    from sgm.inference.chaining import OverlapTie, default_overlap, plan_chain
    from sgm.inference.seeds import derive_seed, image_fingerprint

    pipe = VideoPipeline.load(config=args.config, ckpt=args.ckpt, device="cpu", dtype="fp32")
    T = pipe.defaults.num_frames
    opts = SamplingOptions(seed=args.seed, decoding_t=args.decoding_t, total_frames=2 * T,
                           chain_overlap=args.overlap).filled(pipe.defaults)
    k = opts.chain_overlap or default_overlap(T)
    videos = held_out_videos(args.inputs, opts.height, opts.width, opts.fps_id + 1, 2 * T)

    def mad(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().mean())

    rows = []
    with torch.no_grad():
        for i, video in enumerate(videos):
            image = Image.fromarray(video[0])
            first = pipe.prepare_image(image, opts)
            clips = plan_chain(2 * T, T, k, derive_seed(opts.seed, image_fingerprint(image)))
            z0 = pipe._sample_latents(first, opts, clips[0].seed, None).float()  # (T, C, h, w)
            s = clips[1].start
            window = max(0, min(s - opts.decoding_t // 2, T - opts.decoding_t))  # as the pipeline decodes it
            start = Image.fromarray(pipe._decode(z0[window:window + opts.decoding_t], opts, None)[s - window])
            free = pipe._sample_latents(start, opts, clips[1].seed, None, None, clip_image=first).float()
            tied = pipe._sample_latents(start, opts, clips[1].seed, None, OverlapTie(z0[s:s + k], T).wrap,
                                        clip_image=first).float()
            rows.append({"step": np.mean([mad(z0[t + 1], z0[t]) for t in range(T - 1)]),
                         "own_first": mad(free[:k], z0[s:s + k]), "tie_moves_new": mad(tied[k:], free[k:]),
                         "tie_moves_first_new": mad(tied[k], free[k])})
            print(f"input {i}: " + ", ".join(f"{n} {v:.3f}" for n, v in rows[-1].items()), flush=True)

    mean = {n: np.mean([r[n] for r in rows]) for n in rows[0]}
    print(f"\n{args.config}, {args.ckpt}; {args.inputs} held-out inputs, clips of {T}, overlap {k}, {opts.num_steps} steps;"
          " mean absolute latent difference\n")
    print("| step between consecutive frames (clip 0) | clip 1's own overlap frames vs clip 0's "
          "| tie's effect on clip 1's new frames | on its first new frame |")
    print("|---:|---:|---:|---:|")
    print(f"| {mean['step']:.3f} | {mean['own_first']:.3f} | {mean['tie_moves_new']:.3f} | {mean['tie_moves_first_new']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
