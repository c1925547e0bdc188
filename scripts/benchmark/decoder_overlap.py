#!/usr/bin/env python
"""Error, time and memory of overlapping chunked decoding against whole-clip decoding, for SVD's
temporal decoder structure (ch_mult [1, 2, 4, 4], two res blocks per level, temporal res blocks and
output conv; the channel width is a flag so it runs on a CPU).

    python scripts/benchmark/decoder_overlap.py --frames 25 --decoding_t 14 --ch 32 --latent 8 16

For each overlap it prints: the max and mean absolute difference to whole-clip decoding (images in
[-1, 1]), the same on the frames next to a chunk boundary, the frames pushed through the decoder
(time is proportional to it) and the measured seconds. Peak memory is set by decoding_t alone
(frames per decoder call), not by the overlap. Results go to docs/sampling.md.
"""
import argparse
import json
import time

import torch

from sgm.inference.decoding import chunk_windows, decode_chunked, frames_decoded
from sgm.modules.autoencoding.temporal_ae import VideoDecoder


def build_decoder(ch: int, seed: int) -> VideoDecoder:
    torch.manual_seed(seed)
    decoder = VideoDecoder(attn_type="vanilla", double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3,
                           ch=ch, ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[], dropout=0.0,
                           video_kernel_size=[3, 1, 1]).eval()
    # Random weights everywhere, including the layers that start at zero (the temporal res blocks'
    # output convs), so every temporal layer mixes frames as in a trained decoder; the learned blend
    # sigmoid(mix_factor) = 0.5 gives the temporal branch half the weight.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in decoder.named_parameters():
            if name.endswith("mix_factor"):
                p.fill_(0.0)
            elif p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return decoder


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=25)
    p.add_argument("--decoding_t", type=int, default=14)
    p.add_argument("--overlaps", type=int, nargs="+", default=[0, 1, 2, 3, 4, 6])
    p.add_argument("--ch", type=int, default=32, help="decoder base width (128 in SVD)")
    p.add_argument("--latent", type=int, nargs=2, default=[8, 16], help="latent height, width")
    p.add_argument("--seeds", type=int, default=2, help="random decoders to average over")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for seed in range(args.seeds):
        decoder = build_decoder(args.ch, seed)
        g = torch.Generator().manual_seed(100 + seed)
        # Smooth-in-time latents, like a sampled video: a random walk over frames.
        z = torch.cumsum(0.3 * torch.randn(args.frames, 4, *args.latent, generator=g), dim=0) + torch.randn(1, 4, *args.latent, generator=g)

        def decode(chunk):
            return decoder(chunk, timesteps=chunk.shape[0])

        with torch.no_grad():
            whole = decode(z)
            for overlap in args.overlaps:
                if args.decoding_t <= 2 * overlap:
                    continue
                t0 = time.perf_counter()
                out = decode_chunked(decode, z, args.decoding_t, overlap)
                seconds = time.perf_counter() - t0
                diff = (out - whole).abs()  # (T, 3, H, W)
                windows = chunk_windows(args.frames, args.decoding_t, overlap)
                seams = sorted({k for _, _, ks, ke in windows for k in (ks - 1, ks) if 0 < ks < args.frames})
                per_frame = diff.flatten(1).max(1).values
                rows.append({"seed": seed, "overlap": overlap, "max_err": diff.max().item(), "mean_err": diff.mean().item(),
                             "seam_max_err": per_frame[seams].max().item() if seams else 0.0,
                             "frames_decoded": frames_decoded(args.frames, args.decoding_t, overlap), "seconds": seconds})
    print(f"T={args.frames} decoding_t={args.decoding_t} ch={args.ch} latent={args.latent} "
          f"receptive field={build_decoder(args.ch, 0).temporal_receptive_field()} frames each side")
    print(f"{'overlap':>7} {'max err':>9} {'mean err':>9} {'seam max':>9} {'frames':>6} {'seconds':>8}")
    for overlap in args.overlaps:
        sel = [r for r in rows if r["overlap"] == overlap]
        if not sel:
            continue
        mean = lambda k: sum(r[k] for r in sel) / len(sel)  # noqa: E731
        print(f"{overlap:>7} {mean('max_err'):>9.2e} {mean('mean_err'):>9.2e} {mean('seam_max_err'):>9.2e} "
              f"{sel[0]['frames_decoded']:>6} {mean('seconds'):>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
