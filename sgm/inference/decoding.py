"""Decoding a clip's latents in overlapping chunks of at most `decoding_t` frames.

The temporal decoder mixes neighbouring frames, so decoding a long clip in disjoint chunks (what the
original sampling script does) shows a seam where one chunk ends: the frames on either side of it
were decoded without seeing each other. Here every chunk is decoded with `overlap` frames of extra
context on each side that are computed and thrown away; each kept frame then sees at least
`overlap` neighbours on both sides (or the clip's own end). With overlap >= the decoder's temporal
receptive field, a decoder whose temporal layers are convolutions decodes exactly as it would the
whole clip at once.

NOTE: SVD's temporal res blocks normalise with a GroupNorm over (C, T, H, W), so their statistics
couple all frames of a chunk and no finite overlap is exact for that decoder; the error shrinks
with the overlap. docs/sampling.md gives the measured error, time and memory per overlap
(scripts/benchmark/decoder_overlap.py) and why the default is what it is.
"""
import warnings
from typing import Callable, List, Optional, Tuple

import torch

Progress = Optional[Callable[[int, int, str], None]]


def chunk_windows(num_frames: int, decoding_t: int, overlap: int) -> List[Tuple[int, int, int, int]]:
    """[(window_start, window_end, keep_start, keep_end)] covering 0..num_frames.

    Each window holds at most decoding_t frames; it keeps [keep_start, keep_end) and has at least
    `overlap` frames of context before and after the kept frames unless the clip ends there.
    """
    if decoding_t < 1:
        raise ValueError(f"decoding_t must be >= 1, got {decoding_t}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if num_frames > decoding_t and decoding_t <= 2 * overlap:
        raise ValueError(f"decoding_t={decoding_t} leaves no frame to keep with overlap={overlap} on both sides; "
                         f"use decoding_t > 2 * overlap (e.g. decoding_t={2 * overlap + 1}) or a smaller overlap")
    windows = []
    keep_start = 0
    while keep_start < num_frames:
        start = max(0, keep_start - overlap)
        end = min(num_frames, start + decoding_t)
        keep_end = end if end == num_frames else end - overlap
        assert keep_end > keep_start
        windows.append((start, end, keep_start, keep_end))
        keep_start = keep_end
    return windows


def effective_overlap(num_frames: int, decoding_t: int, overlap: int) -> int:
    """`overlap`, lowered to the largest value decoding_t allows (with a warning when lowered)."""
    if num_frames <= decoding_t or decoding_t > 2 * overlap:
        return overlap
    lowered = (decoding_t - 1) // 2
    warnings.warn(f"decoding_overlap={overlap} needs decoding_t > {2 * overlap}; using overlap {lowered} with "
                  f"decoding_t={decoding_t}", stacklevel=2)
    return lowered


def decode_chunked(decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, decoding_t: int, overlap: int,
                   progress: Progress = None, on_chunk: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Decode latents z (T, C, h, w) of one clip with `decode` (one call per window, the window being
    the whole clip as far as the decoder knows). Returns the kept frames concatenated, (T, ...).

    on_chunk: applied to each chunk's kept frames as soon as it is decoded (e.g. moving them to the
    CPU as uint8), so the decoded clip never sits on the accelerator whole.
    """
    windows = chunk_windows(z.shape[0], decoding_t, overlap)
    parts = []
    for i, (start, end, keep_start, keep_end) in enumerate(windows):
        x = decode(z[start:end])  # (end - start, 3, H, W)
        x = x[keep_start - start:keep_end - start]
        parts.append(on_chunk(x) if on_chunk is not None else x)
        if progress is not None:
            progress(i + 1, len(windows), "decoding")
    return torch.cat(parts, dim=0)


def frames_decoded(num_frames: int, decoding_t: int, overlap: int) -> int:
    """Frames pushed through the decoder in total (the time cost of the overlap)."""
    return sum(end - start for start, end, _, _ in chunk_windows(num_frames, decoding_t, overlap))
