"""Decoding selected frames of an in-memory mp4 with PyAV (bundled FFmpeg libraries; no system ffmpeg)."""
import io
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from sgm.data.transforms import cover_size

__all__ = ["decode_video_frames"]


def decode_video_frames(
    data: bytes,
    choose: Callable[[Optional[float], int], Sequence[int]],
    cover: Optional[Tuple[int, int]] = None,
) -> Tuple[np.ndarray, Optional[float]]:
    """Decode the frames `choose` asks for from mp4 bytes; return them as (T, h, w, 3) uint8 RGB and the fps.

    `choose(container_fps, container_frame_count)` is called once the container is open, with the frame rate
    and frame count the container declares (None / 0 when it declares none), and returns increasing frame
    indices. Frames are decoded in order up to the last index (no seeking; clips are short). With
    `cover` = (H, W), FFmpeg's scaler resizes each frame (area averaging when shrinking) to the smallest size
    with the video's aspect ratio that covers (H, W), which is much cheaper than converting full-size frames.
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
        reformat = {"format": "rgb24"}
        if cover is not None:
            h, w = cover_size(stream.codec_context.height, stream.codec_context.width, cover)
            shrink = h < stream.codec_context.height
            reformat.update(height=h, width=w, interpolation="AREA" if shrink else "BILINEAR")
        frames, decoded = [], 0
        for frame in container.decode(stream):
            if decoded in wanted:
                frames.append(frame.to_ndarray(**reformat))  # (h, w, 3)
            decoded += 1
            if decoded > last:
                break
    if len(frames) != len(indices):
        raise ValueError(f"the video ended after {decoded} frames; frame {last} was needed")
    return np.stack(frames), fps
