"""Reading video frames the way a viewer sees them: turned upright by the stream's display matrix, and as
far as a damaged or cut-short file decodes.

Phones record portrait video as landscape frames plus a display matrix ("rotate 90°"); FFmpeg's libraries
decode the stored frames and leave the turning to the player. Everything in the project that reads video
frames for a model (curation, the training loader) goes through `upright`, so a portrait video is analysed,
encoded and trained upright. Mirroring in a display matrix is not applied (cameras do not write it), and a
rotation that is not a multiple of 90° is rounded to the nearest quarter turn.
"""
import logging
from typing import Iterator, Optional, Tuple

import numpy as np

__all__ = ["DecodableFrames", "display_size", "quarter_turns", "upright", "upright_yuv420p"]

logger = logging.getLogger(__name__)


def quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns (0-3) that show the PyAV `frame` upright (0 without a display matrix)."""
    rotation = frame.rotation  # degrees counter-clockwise, in [-180, 180]
    return int(round(rotation / 90.0)) % 4 if rotation else 0


def display_size(width: int, height: int, turns: int) -> Tuple[int, int]:
    """(w, h) of a `width` x `height` stored frame once turned `turns` quarter turns."""
    return (height, width) if turns % 2 else (width, height)


def upright(frame, width: int, height: int, format: str = "rgb24", interpolation: Optional[str] = None) -> np.ndarray:
    """`frame` as an (height, width, C) array in `format` (e.g. "rgb24", "bgr24", "gray"), upright.

    `width` x `height` is the size *as displayed*; FFmpeg's scaler resizes the stored frame to the matching
    stored size (`interpolation`: PyAV's name, e.g. "AREA"; None: PyAV's default), then numpy turns it.
    """
    turns = quarter_turns(frame)
    stored_w, stored_h = display_size(width, height, turns)
    kwargs = {"interpolation": interpolation} if interpolation else {}
    array = frame.reformat(width=stored_w, height=stored_h, format=format, **kwargs).to_ndarray()
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def upright_yuv420p(frame, width: int, height: int) -> np.ndarray:
    """`frame` as yuv420p planes (height * 3 / 2, width) uint8 (PyAV's layout), `width` x `height` as displayed
    (both even), upright. A yuv420p frame of that size is passed through without FFmpeg's scaler."""
    turns = quarter_turns(frame)
    stored_w, stored_h = display_size(width, height, turns)
    planes = frame.reformat(width=stored_w, height=stored_h, format="yuv420p").to_ndarray()  # (h * 3 / 2, w)
    if not turns:
        return planes
    y = planes[:stored_h]
    u, v = planes[stored_h:].reshape(2, stored_h // 2, stored_w // 2)
    turned = [np.rot90(p, turns).ravel() for p in (y, u, v)]
    return np.concatenate(turned).reshape(height * 3 // 2, width)


class DecodableFrames:
    """Iterate over the decoded frames of `stream` in an open PyAV `container`, stopping cleanly at the first
    packet that cannot be read or decoded (a cut-short download, a damaged file).

    After the loop, `error` is None when the whole stream decoded, else the reason it stopped, and `count`
    the number of frames yielded. Frames are decoded packet by packet and the decoder is drained at the end,
    so the count does not depend on decoder threading.
    """

    def __init__(self, container, stream):
        self.container, self.stream = container, stream
        self.error: Optional[str] = None
        self.count = 0

    def __iter__(self) -> Iterator:
        import av

        try:
            for packet in self.container.demux(self.stream):
                for frame in packet.decode():  # the last, empty packet drains the decoder
                    self.count += 1
                    yield frame
        except (av.error.FFmpegError, OSError) as e:
            self.error = f"{type(e).__name__}: {e}"
            try:
                for frame in self.stream.codec_context.decode(None):  # frames still inside the decoder
                    self.count += 1
                    yield frame
            except (av.error.FFmpegError, OSError):
                pass
