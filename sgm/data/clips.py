"""Which source frames make a clip: the frame stride from source and target fps, and where the clip starts."""
from typing import List, Optional

import torch

__all__ = ["FRAME_START_POLICIES", "frame_stride", "clip_frame_indices"]

FRAME_START_POLICIES = ("random", "start", "center")


def frame_stride(source_fps: float, target_fps: float) -> int:
    """Take every `stride`-th source frame to play at about `target_fps`: `max(1, round(source / target))`.

    e.g. 30 fps -> 6 fps: stride 5; 24 -> 6: 4; 25 -> 6: 4 (6.25 fps); 4 -> 6: 1 (the clip stays at 4 fps).
    """
    if source_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got source {source_fps} and target {target_fps}")
    return max(1, round(source_fps / target_fps))


def clip_frame_indices(
    num_source_frames: int,
    num_frames: int,
    stride: int,
    policy: str = "random",
    generator: Optional[torch.Generator] = None,
) -> Optional[List[int]]:
    """Indices of `num_frames` source frames, `stride` apart; None when the video is too short for them.

    Args:
        num_source_frames: frames in the source video.
        num_frames: frames in the clip (T).
        stride: distance between picked source frames.
        policy: where the clip starts: "random" (uniform over all valid starts), "start" (frame 0) or
            "center" (the middle of the video).
        generator: random generator for the "random" policy (None: torch's global one).
    """
    if policy not in FRAME_START_POLICIES:
        raise ValueError(f"frame start policy must be one of {FRAME_START_POLICIES}, got {policy!r}")
    span = (num_frames - 1) * stride + 1  # source frames covered by the clip
    if num_source_frames < span:
        return None
    slack = num_source_frames - span
    if policy == "start":
        start = 0
    elif policy == "center":
        start = slack // 2
    else:
        start = int(torch.randint(0, slack + 1, (), generator=generator))
    return list(range(start, start + span, stride))
