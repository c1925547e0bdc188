"""Videos longer than one clip: clips sampled one after another, tied together by overlapping latents.

A model makes clips of T frames. For `total_frames` N > T the video is made clip by clip:

1. Plan (`plan_chain`): clip 0 covers output frames [0, T); clip i starts K frames before clip i-1
   ends (K = the overlap), so the clips advance by T - K frames; the last clip is cut at N.
2. Condition: clip i is conditioned on the decoded frame where it starts (a frame inside the previous
   clip's overlap), as SVD's first frame reproduces its conditioning image; the CLIP embedding the
   network attends to stays that of the video's first frame (the pipeline's `sample_clip`). Taken
   from each clip's start frame instead, as naive chaining does, it feeds each clip's colour errors
   into the next clip's conditioning, and on the toy model a clip that went dark made the next one
   darker (docs/sampling.md, "Longer videos": mean colour drift 18.1 with it, 7.4 without).
3. Tie (`OverlapTie`): while clip i is sampled, the denoiser's prediction for its first K frames is
   replaced by the previous clip's last K latents, so those frames follow the previous clip's content
   re-noised to the current noise level (RePaint/SDEdit-style replacement, Lugmayr et al. 2022; Meng
   et al. 2022), and the network's temporal layers see them as context for the new frames (on the toy
   model that context moves the new frames little: 0.021 against 0.36 between consecutive latents).
   `release_sigma` > 0 releases the replacement for the last steps, so the overlap frames are finished
   by the model; the default holds it to the end, as a released overlap frame differs from the previous
   clip's and the crossfade blurs the two (docs/sampling.md, "Why the tie holds to the last step").
4. Crossfade (`crossfade`): in the overlap the output latents go linearly from the previous clip's to
   the new clip's, so no frame switches source abruptly.
5. Decode: the whole chained latent sequence is decoded in overlapping windows
   (`sgm.inference.decoding`), so decoder windows do not start at clip joins.

Replacing the *prediction* x0 (rather than x after each step) keeps the tie inside the denoiser
contract: every sampler works unchanged, and under the Euler ODE step a frame whose prediction is
`z` stays exactly on `z + sigma * noise`, i.e. the re-noised known latent with the frame's own noise.

Memory stays that of one clip: finished latents live on the CPU; only the K overlap latents and the
clip being sampled are on the device.
"""
import hashlib
import logging
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

logger = logging.getLogger(__name__)

Denoiser = Callable[[torch.Tensor, torch.Tensor, Dict], torch.Tensor]
# Noise level below which the overlap frames are left to the model (see `OverlapTie`). 0: the tie holds
# to the last step, so the overlap frames are exactly the previous clip's. Released (or without the tie),
# the new clip finishes its own version of those frames, further from the previous clip's than one frame
# step, and the crossfade blends the two into a washed-out frame (on the toy model: overlap contrast 0.94
# untied, 0.99 released at sigma 1, 1.05 tied; docs/sampling.md, "Why the tie holds to the last step").
CHAIN_RELEASE_SIGMA = 0.0


def default_overlap(clip_frames: int) -> int:
    """The default overlap K: a quarter of the clip, at least 1 (SVD 14 frames: 3; SVD-XT 25: 6)."""
    return max(1, clip_frames // 4)


def clip_seed(video_seed: int, index: int) -> int:
    """Seed of clip `index` of a chained video: clip 0 uses the video's seed (so its first clip is the
    video that `total_frames = T` gives), later clips a 63-bit hash of (video seed, index)."""
    if index == 0:
        return int(video_seed)
    digest = hashlib.sha256(f"chain:{int(video_seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class ClipPlan:
    """One clip of a chain. start, end: the output frames it covers, [start, end); overlap: how many of
    its first frames it shares with the previous clip (0 for the first); seed: its sampling seed."""

    index: int
    start: int
    end: int
    overlap: int
    seed: int

    def to_dict(self) -> Dict:
        return asdict(self)


def plan_chain(total_frames: int, clip_frames: int, overlap: int, video_seed: int) -> List[ClipPlan]:
    """The clips that make `total_frames` frames from clips of `clip_frames`, each new clip sharing
    `overlap` frames with the previous one. One clip when total_frames <= clip_frames."""
    if clip_frames < 2 and total_frames > clip_frames:
        raise ValueError(f"chaining needs clips of at least 2 frames, got num_frames={clip_frames}")
    if total_frames > clip_frames and not 1 <= overlap < clip_frames:
        raise ValueError(f"chain_overlap must be in 1..{clip_frames - 1} (num_frames - 1), got {overlap}")
    clips = [ClipPlan(0, 0, min(total_frames, clip_frames), 0, clip_seed(video_seed, 0))]
    while clips[-1].end < total_frames:
        start = clips[-1].end - overlap
        i = len(clips)
        clips.append(ClipPlan(i, start, min(total_frames, start + clip_frames), overlap, clip_seed(video_seed, i)))
    return clips


class OverlapTie:
    """Replaces the denoiser's prediction for the first K frames of a clip by known latents.

    known: (K, C, h, w) latents of the previous clip's last K frames (on the sampling device).
    num_frames: T, frames per clip (the denoiser sees (B*T, C, h, w) with B = 1 or 2 under guidance).
    release_sigma: at noise levels below this the prediction is left to the model, so the overlap
    frames are finished together with the new frames (0: replaced to the end).
    """

    def __init__(self, known: torch.Tensor, num_frames: int, release_sigma: float = 0.0):
        assert 1 <= known.shape[0] < num_frames, (known.shape, num_frames)
        self.known = known
        self.num_frames = num_frames
        self.release_sigma = float(release_sigma)

    def wrap(self, denoiser: Denoiser) -> Denoiser:
        """`denoiser` with the first K frames of every video in the batch predicted as `known`."""
        def tied(x: torch.Tensor, sigma: torch.Tensor, cond: Dict) -> torch.Tensor:
            denoised = denoiser(x, sigma, cond)  # (B*T, C, h, w)
            if float(sigma.max()) < self.release_sigma:
                return denoised
            k, t = self.known.shape[0], self.num_frames
            out = denoised.unflatten(0, (-1, t)).clone()  # (B, T, C, h, w); never edit the caller's tensor
            out[:, :k] = self.known.to(out)
            return out.flatten(0, 1)

        return tied


def crossfade(previous: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """Latents of the K overlap frames: the previous clip's (K, ...) fading linearly into the new
    clip's (K, ...), frame k weighting the new clip by (k + 1) / (K + 1)."""
    k = previous.shape[0]
    w = torch.arange(1, k + 1, dtype=torch.float32, device=previous.device) / (k + 1)  # (K,)
    w = w.view(-1, *([1] * (previous.dim() - 1)))
    return (1.0 - w) * previous + w * new.to(previous.device, previous.dtype)


def channel_stats(z: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and standard deviation of latents (T, C, h, w): (2, C)."""
    return torch.stack([z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3))])


def match_stats(z: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """z (T, C, h, w) shifted and scaled per channel so its mean and standard deviation are those of
    `reference` (2, C) (from `channel_stats`); the latent channels of SD's autoencoder carry colour and
    brightness, so this holds a clip's colour to the first clip's."""
    mean, std = channel_stats(z).to(z.device)
    ref_mean, ref_std = reference.to(z.device)
    view = (1, -1, 1, 1)
    return (z - mean.view(view)) * (ref_std / std.clamp_min(1e-6)).view(view) + ref_mean.view(view)


def ramp_in(z: torch.Tensor, target: torch.Tensor, overlap: int) -> torch.Tensor:
    """z (n, C, h, w) moved toward `target` (n, C, h, w) by a weight rising linearly over the frames after
    the first `overlap`: 0 on the overlap frames (they stay the previous clip's), 1 on the last frame. A
    colour correction applied this way grows through the clip instead of jumping in at its first new
    frame (on the toy model, by the benchmark's earlier join metric: worst join 1.22 instead of 1.38,
    docs/sampling.md "Longer videos")."""
    n = z.shape[0]
    assert 0 <= overlap < n, (overlap, n)
    w = ((torch.arange(n, dtype=torch.float32, device=z.device) - overlap + 1) / (n - overlap)).clamp(0.0, 1.0)  # (n,)
    return z + w.view(-1, *([1] * (z.dim() - 1))) * (target - z)


# sample_clip(frame, seed, wrap): the latents (T, C, h, w) of one clip starting on `frame` (a PIL
# image), sampled with `seed` and with the denoiser passed through `wrap` (None: unchanged).
ClipSampler = Callable[[object, int, Optional[Callable[[Denoiser], Denoiser]]], torch.Tensor]
# decode_frame(z, index): the RGB PIL image of frame `index` of the latents z (n, C, h, w) on the CPU.
FrameDecoder = Callable[[torch.Tensor, int], object]


def sample_chain(first_frame, clips: List[ClipPlan], clip_frames: int, sample_clip: ClipSampler,
                 decode_frame: FrameDecoder, tie: bool = True, release_sigma: float = 0.0, colour_match: bool = False) -> torch.Tensor:
    """The latents (N, C, h, w) of a chained video, on the CPU (N = clips[-1].end).

    first_frame: the conditioning image of clip 0. clips: from `plan_chain`. clip_frames: T, the frames
    `sample_clip` makes (the last clip is cut to its plan). tie: replace the overlap
    frames' prediction by the previous clip's latents while sampling (False: the clips only share the
    conditioning frame). release_sigma: see `OverlapTie`. colour_match: shift and scale each new clip's
    latents per channel toward the first clip's statistics (`match_stats`), ramped in over its new
    frames (`ramp_in`), before it is joined.
    """
    chain: Optional[torch.Tensor] = None  # (n, C, h, w) on the CPU
    reference = None
    frame = first_frame
    for clip in clips:
        wrap = None
        if clip.index > 0:
            frame = decode_frame(chain, clip.start)
            if tie:
                known = chain[clip.start:clip.start + clip.overlap]  # (K, C, h, w)
                wrap = OverlapTie(known, clip_frames, release_sigma).wrap
        z = sample_clip(frame, clip.seed, wrap)  # (T, C, h, w) on the device
        z = z[:clip.end - clip.start].float()
        if reference is None:
            reference = channel_stats(z).cpu()
        elif colour_match:
            z = ramp_in(z, match_stats(z, reference), clip.overlap)
        z = z.cpu()
        if chain is None:
            chain = z
        else:
            k = clip.overlap
            head = crossfade(chain[clip.start:clip.start + k], z[:k])
            chain = torch.cat([chain[:clip.start], head, z[k:]])
        logger.info("chain: clip %d/%d, frames %d-%d, seed %d", clip.index + 1, len(clips), clip.start, clip.end - 1,
                    clip.seed)
    return chain


def chain_record(frames: np.ndarray, clips: List[Dict]) -> Dict:
    """The measured colour of each clip of a decoded chained video (frames (N, H, W, 3) uint8): the
    clips' records with `colour_mean` (mean R, G, B over the clip's frames, 0..255) and `colour_drift`
    (distance of that mean from the first clip's), and the largest drift as `max_colour_drift`."""
    means = [frames[c["start"]:c["end"]].reshape(-1, 3).astype(np.float64).mean(axis=0) for c in clips]
    out = []
    for clip, mean in zip(clips, means):
        drift = float(np.linalg.norm(mean - means[0]))
        out.append(dict(clip, colour_mean=[round(float(v), 3) for v in mean], colour_drift=round(drift, 3)))
    return {"clips": out, "max_colour_drift": max(c["colour_drift"] for c in out)}
