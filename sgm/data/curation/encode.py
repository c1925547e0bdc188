"""Cut clips out of a source video frame-exactly and re-encode them as H.264 yuv420p mp4 with PyAV."""
import os
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ...media import add_video_stream
from .config import OutputConfig

__all__ = ["output_size", "cached_clip_path", "encode_clips"]


def output_size(width: int, height: int, max_short_side: Optional[int]) -> Tuple[int, int]:
    """(w, h) of the encoded clip: downscaled so the short side is <= max_short_side, rounded down to even."""
    scale = 1.0
    if max_short_side is not None and min(width, height) > max_short_side:
        scale = max_short_side / min(width, height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def cached_clip_path(out_dir: Path, clip: dict) -> Path:
    """Where clip (`clip_id`, `start_frame`, `end_frame`) is encoded. The frame span is part of the name:
    re-analysis with other cut settings gives a clip id new frames, and must not reuse the old file."""
    return out_dir / f"{clip['clip_id']}_{clip['start_frame']}-{clip['end_frame']}.mp4"


class _ClipEncoder:
    """An open mp4 being written to a temporary file; `close()` renames it into place."""

    def __init__(self, path: Path, rate: Fraction, size: Tuple[int, int], cfg: OutputConfig):
        import av

        self.path, self.tmp = path, path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.container = av.open(str(self.tmp), mode="w", format="mp4")
        # One encoder thread (see sgm.media). NOTE: PyAV's conversions keep state between videos in a process,
        # so the same clip can encode to slightly different bytes after other videos; the pipeline encodes each
        # video in a fresh process, and resumes never re-encode a finished clip (see `encode_clips`).
        self.stream = add_video_stream(self.container, "libx264", rate, size[0], size[1],
                                       {"crf": str(cfg.crf), "preset": cfg.preset})
        self.size, self.count, self.frame_time_base = size, 0, Fraction(rate.denominator, rate.numerator)

    def write(self, frame) -> None:
        import av

        # A fresh frame, so no source timestamp or picture type (forced keyframes) reaches the encoder.
        planes = frame.reformat(width=self.size[0], height=self.size[1], format="yuv420p").to_ndarray()
        out = av.VideoFrame.from_ndarray(planes, format="yuv420p")  # planes: (H * 3 / 2, W)
        out.pts = self.count
        out.time_base = self.frame_time_base
        self.count += 1
        for packet in self.stream.encode(out):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)


def encode_clips(source: Path, clips: Sequence[dict], out_dir: Path, cfg: OutputConfig) -> Dict[str, Path]:
    """Write each clip (`clip_id`, `start_frame`, `end_frame`) of `source` to `cached_clip_path(out_dir, clip)`.

    Clips whose file already exists are skipped (resume); the source is decoded once, up to the last frame
    needed. Returns clip id -> path for all `clips`.
    """
    import av

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {c["clip_id"]: cached_clip_path(out_dir, c) for c in clips}
    todo: List[dict] = sorted((c for c in clips if not paths[c["clip_id"]].exists()), key=lambda c: c["start_frame"])
    if not todo:
        return paths
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate).limit_denominator(1001)
        size = output_size(stream.codec_context.width, stream.codec_context.height, cfg.max_short_side)
        pending, current = list(todo), None
        for index, frame in enumerate(container.decode(video=0)):
            if current is None and pending and index == pending[0]["start_frame"]:
                clip = pending.pop(0)
                current = (clip, _ClipEncoder(paths[clip["clip_id"]], rate, size, cfg))
            if current is not None:
                current[1].write(frame)
                if index + 1 == current[0]["end_frame"]:
                    current[1].close()
                    current = None
                    if not pending:
                        break
    if current is not None or pending:
        raise RuntimeError(f"{source} ended before the frames analysed earlier; was the file changed since analysis?")
    return paths
