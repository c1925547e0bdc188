"""Video batches flattened to frames: B videos of T frames are (B*T, ...), video-major.

The one place where per-video conditioning is repeated per frame and where the network's video
inputs (`num_video_frames`, `image_only_indicator`) are made; used by the training loss and by
`DiffusionEngine.sample_video`.
"""
from typing import Dict, Optional

import torch


def frames_per_video(batch: Dict, n_frames_total: int) -> Optional[int]:
    """T of a video batch (`num_video_frames`, an int or a (B,) tensor of equal values), None for images."""
    t = batch.get("num_video_frames")
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        values = t.flatten().tolist()
        if len(set(values)) != 1:
            raise ValueError(f"every video of a batch must have the same number of frames, got num_video_frames={values}")
        t = values[0]
    t = int(t)
    if t < 1 or n_frames_total % t:
        raise ValueError(f"num_video_frames={t} does not divide the {n_frames_total} frames of the batch")
    return t


def expand_cond_per_frame(cond: Dict[str, torch.Tensor], n_videos: int, t: int) -> Dict[str, torch.Tensor]:
    """Repeat per-video conditioning (first dim B) for each of the T frames -> (B*T, ...), video-major,
    as the original sampling does; entries already per frame (B*T) are kept."""
    out = {}
    for key, value in cond.items():
        if value.shape[0] == n_videos * t:
            out[key] = value
        elif value.shape[0] == n_videos:
            out[key] = value.repeat_interleave(t, dim=0)  # (B, ...) -> (B*T, ...)
        else:
            raise ValueError(f"conditioning {key!r} has {value.shape[0]} rows; expected {n_videos} (per video) "
                             f"or {n_videos * t} (per frame); check the embedders' n_copies")
    return out


def video_model_inputs(n_videos: int, t: int, device: torch.device, dtype: torch.dtype = torch.float32,
                       image_only_indicator: Optional[torch.Tensor] = None) -> Dict:
    """The network's keyword inputs for B videos of T frames: `num_video_frames` T and
    `image_only_indicator` (B, T), 1 where a frame is a still image (zeros unless given)."""
    if image_only_indicator is None:
        image_only_indicator = torch.zeros(n_videos, t, device=device, dtype=dtype)  # (B, T)
    return {"num_video_frames": t, "image_only_indicator": image_only_indicator.to(device)}
