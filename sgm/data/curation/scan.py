"""One decoding pass over a video, frames upright: cut detection on every frame, and frames sampled at about 2 fps."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from ...media_read import DecodableFrames, display_size, quarter_turns, upright
from .config import CutConfig, DecodeConfig, MotionConfig
from .cuts import CutDetector
from .probe import VideoInfo, VideoReadError, probe_video

__all__ = ["Sample", "ScanResult", "scan_video", "scaled_size", "decode_jpeg_rgb"]


@dataclass
class Sample:
    """A sampled frame: its index, a small grey copy for optical flow (and one of the frame right after it, to
    start the flow between samples from), and a JPEG of a colour copy."""

    index: int
    grey: np.ndarray  # (h, w) uint8 at motion.flow_width
    jpeg: bytes  # RGB frame at decode.analysis_width
    next_grey: Optional[np.ndarray] = None  # (h, w) uint8: frame index + 1 (None at the end of the video)


@dataclass
class ScanResult:
    info: VideoInfo  # num_frames = frames actually decoded; width, height as displayed (upright)
    cuts: List[int]
    samples: List[Sample] = field(default_factory=list)
    truncated: Optional[str] = None  # why decoding stopped before the end of the stream (None: it did not)


def scaled_size(width: int, height: int, target_width: int) -> tuple:
    """(w, h) with w <= target_width, aspect kept, both even and at least 2."""
    scale = min(1.0, target_width / width)
    w = max(2, int(round(width * scale)) // 2 * 2)
    h = max(2, int(round(height * scale)) // 2 * 2)
    return w, h


def _sample_indices_due(index: int, fps: float, sample_fps: float) -> bool:
    """True for the first frame of each 1/sample_fps period (frame times t = index / fps)."""
    period = fps / sample_fps
    return index == 0 or int(index // period) != int((index - 1) // period)


def scan_video(path: Union[str, Path], decode: DecodeConfig, cuts: CutConfig, motion: MotionConfig) -> ScanResult:
    """Decode `path` once, frames upright (display matrix). A file that stops decoding part-way (cut short,
    damaged) keeps the frames before the damage: `info.num_frames` counts them and `ScanResult.truncated`
    says why it stopped. Raises VideoReadError when it cannot be opened or decodes no frame."""
    import av
    import cv2

    info = probe_video(path)
    detector = CutDetector(cuts, info.fps)
    samples: List[Sample] = []
    count = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.codec_context.thread_count = "AUTO", decode.threads
            frames = DecodableFrames(container, stream)
            for frame in frames:
                if count == 0:  # the display size is known from the first frame's display matrix
                    turns = quarter_turns(frame)
                    info.width, info.height = display_size(frame.width, frame.height, turns)
                    info.rotation = 90 * turns
                    detect_w, detect_h = scaled_size(info.width, info.height, decode.detect_width)
                    flow_w, flow_h = scaled_size(info.width, info.height, motion.flow_width)
                    ana_w, ana_h = scaled_size(info.width, info.height, decode.analysis_width)
                small = upright(frame, detect_w, detect_h, "bgr24")
                detector.process(count, small)  # (h, w, 3) BGR
                due = _sample_indices_due(count, info.fps, decode.sample_fps)
                after_sample = bool(samples) and samples[-1].index == count - 1
                if due or after_sample:
                    grey = cv2.cvtColor(cv2.resize(small, (flow_w, flow_h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
                if after_sample:
                    samples[-1].next_grey = grey
                if due:
                    colour = upright(frame, ana_w, ana_h, "bgr24")
                    ok, jpeg = cv2.imencode(".jpg", colour, [cv2.IMWRITE_JPEG_QUALITY, decode.jpeg_quality])
                    assert ok, "OpenCV failed to JPEG-encode a frame"
                    samples.append(Sample(count, grey, jpeg.tobytes()))
                count += 1
    except (av.error.FFmpegError, OSError) as e:
        raise VideoReadError(f"decoding failed after {count} frames: {type(e).__name__}: {e}") from None
    if count == 0:
        raise VideoReadError(f"no decodable frames ({frames.error})" if frames.error else "no decodable frames")
    truncated = None
    if frames.error is not None:
        truncated = f"decoding stopped after {count} frames: {frames.error}"
    elif count < info.num_frames:  # a threaded decoder can end at the damage without an error
        truncated = f"decoding stopped after {count} of the {info.num_frames} frames the container declares"
    info.num_frames = count
    info.duration = count / info.fps
    return ScanResult(info=info, cuts=detector.finish(), samples=samples, truncated=truncated)


def decode_jpeg_rgb(jpeg: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a sample's JPEG bytes."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
