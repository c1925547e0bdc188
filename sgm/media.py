"""H.264 (and other PyAV codec) streams that encode reproducibly: the same frames give the same bytes."""
from fractions import Fraction
from typing import Dict, Iterable, Optional

import numpy as np


def add_video_stream(container, codec: str, fps: float, width: int, height: int,
                     options: Optional[Dict[str, str]] = None, threads: int = 1):
    """Add a yuv420p `codec` stream (e.g. "libx264") of `width` x `height` at `fps` to an open PyAV `container`.

    options: encoder options (e.g. {"crf": "18", "preset": "veryfast"}). threads: encoder threads.
    NOTE: x264's own `threads` option is not enough; PyAV's codec context defaults to automatic
    threading, and with it the same frames now and then encode to different bytes. Setting the context's
    thread count to 1 makes the output bit-reproducible (checked over repeated encodes).
    """
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.thread_count = threads
    stream.options = {**(options or {}), "threads": str(threads)}
    return stream


def encode_rgb_frames(container, stream, frames: Iterable[np.ndarray]) -> None:
    """Encode RGB frames (H, W, 3) uint8 into `stream`, then flush the encoder."""
    import av

    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
