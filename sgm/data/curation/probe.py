"""Probe a video's stream properties (fps, frame count, size, duration) with PyAV."""
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Union

__all__ = ["VideoInfo", "VideoReadError", "probe_video"]


class VideoReadError(Exception):
    """A video cannot be opened or decoded; the message says why (it goes into the summary)."""


@dataclass
class VideoInfo:
    """Container-level facts about a video. `num_frames` is the container's count (0 when unknown);
    analysis replaces it with the number of frames actually decoded, and `width`, `height` (the stored
    frame size here) with the size as displayed, with `rotation` the counter-clockwise degrees (0, 90, 180,
    270) that turned the stored frames upright."""

    fps: float
    num_frames: int
    width: int
    height: int
    duration: float
    rotation: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def probe_video(path: Union[str, Path]) -> VideoInfo:
    """Read the first video stream's properties; raises VideoReadError for unreadable files."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError("no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate or rate <= 0:
                raise VideoReadError("unknown frame rate")
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1e6  # av.time_base is microseconds
            else:
                duration = float(stream.frames / rate) if stream.frames else 0.0
            width, height = stream.codec_context.width, stream.codec_context.height
            if not width or not height:
                raise VideoReadError("video stream has no frame size")
            return VideoInfo(float(Fraction(rate)), int(stream.frames or 0), int(width), int(height), duration)
    except VideoReadError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoReadError(f"{type(e).__name__}: {e}") from None
