"""Cut clips out of a source video frame-exactly and re-encode them as H.264 yuv420p mp4 with PyAV."""
import os
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ...media import VideoWriter
from ...media_read import DecodableFrames, display_size, quarter_turns, upright_yuv420p
from .config import OutputConfig

__all__ = ["output_size", "cached_clip_path", "encode_clips", "remove_stale_temporaries"]

TMP_PREFIX = "."  # temporary clip files are hidden: .<clip file name>.<pid>.tmp


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
        self.path, self.tmp = path, path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.tmp")
        self.size = size
        self.writer = VideoWriter(self.tmp, rate, size[0], size[1], "libx264", {"crf": str(cfg.crf), "preset": cfg.preset},
                                  format="mp4")

    def write(self, frame) -> None:
        self.writer.write_yuv420p(upright_yuv420p(frame, *self.size))  # (H * 3 / 2, W)

    def close(self) -> None:
        self.writer.close()
        os.replace(self.tmp, self.path)


def remove_stale_temporaries(out_dir: Path) -> int:
    """Delete the temporary files that killed encodes left in `out_dir`; returns how many. Call it only while no
    other process encodes into `out_dir`."""
    stale = list(out_dir.glob(f"{TMP_PREFIX}*.mp4.*.tmp")) if out_dir.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def encode_clips(source: Path, clips: Sequence[dict], out_dir: Path, cfg: OutputConfig) -> Dict[str, Path]:
    """Write each clip (`clip_id`, `start_frame`, `end_frame`) of `source` to `cached_clip_path(out_dir, clip)`.

    Clips whose file already exists are skipped (resume); the source is decoded once, up to the last frame
    needed, and turned upright (its display matrix). Returns clip id -> path for all `clips`.
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
        frames = DecodableFrames(container, stream)
        pending, current, size = list(todo), None, None
        for index, frame in enumerate(frames):
            if size is None:
                width, height = display_size(frame.width, frame.height, quarter_turns(frame))
                size = output_size(width, height, cfg.max_short_side)
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
