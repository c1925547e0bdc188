"""The project's one video-file writer: faststart mp4 (H.264) or webm (VP9) that encodes reproducibly.

Every mp4 the project writes (sampler, demo, training video logger, curated clips, toy and synthetic videos)
goes through `VideoWriter`, so they all share two properties:

- **faststart**: the `moov` index comes before the `mdat` media data, so a browser plays the file while it
  downloads. FFmpeg's mov muxer does this when the *container* is opened with `movflags=faststart` (as an
  encoder option it is silently ignored) and it can reopen the finished file, so in-memory output goes
  through a temporary file (`encode_mp4_bytes`).
- **the same bytes for the same frames**, whatever the process did before or the size of its environment.
  NOTE: libx264 running its AVX-512 code with its macroblock-tree rate control (mbtree) on is not
  reproducible: on this project's AVX-512 machine, one-thread encodes of the same frames gave different files from one encode to the next
  (3-4 different files in 4 encodes of the frames in `tests/test_media.py`, decoding up to 31/255 apart),
  depending on what memory the process had used before, so the bytes changed with earlier encodes and with
  the length of LD_LIBRARY_PATH. Every encode was identical with x264's assembly limited to AVX2, or with
  the macroblock tree off. Turning the tree off costs up to 2x the file size at the same crf and quality
  (a smooth pan, PSNR 34.6 dB: 67 kB instead of 30 kB), so where `/proc/cpuinfo` shows AVX-512 we limit
  x264 to AVX2 code (25 frames of 576x320 at preset medium: 1.05 s instead of 1.0 s); on an x86 CPU whose
  flags cannot be read we turn the tree off.
  x264 also runs on one thread. The bytes are the same on one machine and library build; another CPU may
  take other assembly paths and give other (equally reproducible) bytes.
"""
import functools
import os
import platform
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, Optional, Union

import numpy as np

__all__ = ["X264_PARAMS", "VideoWriter", "encode_mp4_bytes", "write_video_file", "x264_params"]

# One x264 thread, no lookahead or sliced threads; `x264_params()` adds the CPU setting (module docstring).
X264_PARAMS = "threads=1:lookahead-threads=1:sliced-threads=0"


@functools.lru_cache(maxsize=None)
def x264_params() -> str:
    """`X264_PARAMS` plus what keeps x264 away from its non-reproducible AVX-512 code on this machine."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = None
    if flags is None:
        x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
        return X264_PARAMS + (":mbtree=0" if x86 else "")
    return X264_PARAMS + (":asm=AVX2" if "avx512f" in flags and "avx2" in flags else "")


_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "matroska"}


class VideoWriter:
    """A video file being written frame by frame; use as a context manager or call `close()`.

    Args:
        path: output file; its suffix picks the container (.mp4/.mov are faststart, .webm, .mkv).
        fps: frame rate (a float is turned into the nearest fraction with denominator <= 1001).
        width, height: frame size in pixels; both even (yuv420p halves the chroma planes).
        codec: PyAV encoder name, "libx264" (H.264) or "libvpx-vp9".
        options: encoder options, e.g. {"crf": "18", "preset": "medium"}; `x264-params` given here are
            appended after the reproducibility settings (`x264_params()`), so they win.
        rotation: display rotation in degrees counter-clockwise (a display-matrix tag, frames are not turned);
            0 writes no tag.
        format: FFmpeg container name ("mp4", "webm", ...) when the file name's suffix does not say it.
    """

    def __init__(self, path: Union[str, os.PathLike], fps: float, width: int, height: int, codec: str = "libx264",
                 options: Optional[Dict[str, str]] = None, rotation: int = 0, format: Optional[str] = None):
        import av

        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"yuv420p video needs a positive even width and height, got {width}x{height}")
        path = Path(path)
        fmt = format or _CONTAINERS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"{path}: unknown video container {path.suffix!r}; use one of {', '.join(_CONTAINERS)}")
        container_options = {"movflags": "faststart"} if fmt in ("mp4", "mov") else {}
        self.container = av.open(str(path), mode="w", format=fmt, options=container_options)
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream(codec, rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        # NOTE: PyAV's codec context threads automatically unless told otherwise (x264's own `threads` is not enough).
        self.stream.codec_context.thread_count = 1
        options = dict(options or {})
        if codec == "libx264":
            options["x264-params"] = ":".join(p for p in (x264_params(), options.get("x264-params")) if p)
        self.stream.options = {**options, "threads": "1"}
        if rotation:
            self.stream.set_display_rotation(rotation)
        self.width, self.height, self.count = width, height, 0
        self.time_base = Fraction(rate.denominator, rate.numerator)

    def write_yuv420p(self, planes: np.ndarray) -> None:
        """One frame as yuv420p planes stacked as PyAV lays them out: (H * 3 / 2, W) uint8."""
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv420p")
        self._encode(frame)

    def write_rgb(self, rgb: np.ndarray) -> None:
        """One RGB frame (H, W, 3) uint8."""
        import av

        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"))

    def _encode(self, frame) -> None:
        if (frame.width, frame.height) != (self.width, self.height):
            raise ValueError(f"frame is {frame.width}x{frame.height}, the video {self.width}x{self.height}")
        # A fresh pts per frame, so no source timestamp or picture type reaches the encoder.
        frame.pts, frame.time_base = self.count, self.time_base
        self.count += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file (for mp4, this is when the index moves to the front)."""
        if self.container is None:
            return
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video_file(path: Union[str, os.PathLike], frames: Iterable[np.ndarray], fps: float, width: int, height: int,
                     codec: str = "libx264", options: Optional[Dict[str, str]] = None) -> Path:
    """Write RGB frames (each (H, W, 3) uint8) to `path` with a `VideoWriter`; returns the path."""
    with VideoWriter(path, fps, width, height, codec, options) as writer:
        for frame in frames:
            writer.write_rgb(frame)
    return Path(path)


def encode_mp4_bytes(frames: np.ndarray, fps: float, options: Optional[Dict[str, str]] = None) -> bytes:
    """RGB frames (T, H, W, 3) uint8 as the bytes of a faststart H.264 mp4 (written through a temporary file:
    moving the index to the front needs a file FFmpeg can reopen)."""
    with tempfile.TemporaryDirectory(prefix="sgm-mp4-") as folder:
        path = Path(folder) / "video.mp4"
        write_video_file(path, frames, fps, frames.shape[2], frames.shape[1], "libx264", options)
        return path.read_bytes()
