"""Decoding selected frames of an in-memory mp4 with PyAV (bundled FFmpeg libraries; no system ffmpeg)."""
import io
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from sgm.data.transforms import cover_size
from sgm.media_read import display_size, quarter_turns, upright

__all__ = ["decode_video_frames"]


def decode_video_frames(
    data: bytes,
    choose: Callable[[Optional[float], int], Sequence[int]],
    cover: Optional[Tuple[int, int]] = None,
) -> Tuple[np.ndarray, Optional[float]]:
    """Decode the frames `choose` asks for from mp4 bytes; return them as (T, h, w, 3) uint8 RGB and the fps.

    `choose(container_fps, container_frame_count)` is called once the container is open, with the frame rate
    and frame count the container declares (None / 0 when it declares none), and returns increasing frame
    indices. Frames are decoded in order up to the last index (no seeking; clips are short) and turned upright
    by the stream's display matrix (a portrait phone video stored as landscape frames comes out portrait). With
    `cover` = (H, W), FFmpeg's scaler resizes each frame (area averaging when shrinking) to the smallest size
    with the video's upright aspect ratio that covers (H, W), which is much cheaper than converting full-size
    frames.
    Raises `ValueError` when the video ends before the last index, and PyAV's errors when the bytes do not decode.
    """
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        indices = list(choose(fps, int(stream.frames or 0)))
        wanted = set(indices)
        last = indices[-1]
        frames, decoded, size, interpolation = [], 0, None, None
        for frame in container.decode(stream):
            if size is None:  # upright size, known from the first frame's display matrix
                width, height = display_size(frame.width, frame.height, quarter_turns(frame))
                size = (width, height)
                if cover is not None:
                    h, w = cover_size(height, width, cover)
                    interpolation = "AREA" if h < height else "BILINEAR"
                    size = (w, h)
            if decoded in wanted:
                frames.append(upright(frame, size[0], size[1], "rgb24", interpolation))  # (h, w, 3)
            decoded += 1
            if decoded > last:
                break
    if len(frames) != len(indices):
        raise ValueError(f"the video ended after {decoded} frames; frame {last} was needed")
    return np.stack(frames), fps
