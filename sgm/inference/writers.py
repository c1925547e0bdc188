"""Writing a VideoResult: mp4 (H.264, yuv420p), webm (VP9), gif, animated webp, a folder of PNG
frames, the settings sidecar JSON and the input frame. Encoding uses PyAV's bundled FFmpeg
libraries; no system ffmpeg is needed."""
import json
import logging
from pathlib import Path
from typing import Callable, Dict, Iterable, Sequence, Union

import numpy as np
from PIL import Image

from ..media import write_video_file
from .result import VideoResult

logger = logging.getLogger(__name__)

FORMATS = ("mp4", "webm", "gif", "webp", "png")


def parse_formats(values: Union[str, Iterable[str]]) -> tuple:
    """('mp4', 'gif') from 'mp4,gif' or ['mp4', 'gif,webp']; ValueError names an unknown format."""
    items = [values] if isinstance(values, str) else list(values)
    out = []
    for item in items:
        for fmt in str(item).split(","):
            fmt = fmt.strip().lower().lstrip(".")
            if not fmt:
                continue
            if fmt not in FORMATS:
                raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
            if fmt not in out:
                out.append(fmt)
    if not out:
        raise ValueError(f"no output format given; choose from {', '.join(FORMATS)}")
    return tuple(out)


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad (T, H, W, 3) to even H and W by repeating the last row/column (yuv420p needs even sizes)."""
    _, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else frames


def _write_av(frames: np.ndarray, path: Path, fps: int, codec: str, options: Dict[str, str]) -> None:
    frames = _even(frames)
    write_video_file(path, frames, int(fps), frames.shape[2], frames.shape[1], codec, options)


def write_mp4(frames: np.ndarray, path: Path, fps: int) -> None:
    """H.264 High profile, yuv420p, faststart (plays in every browser while it downloads); the same frames
    give the same bytes (see sgm.media)."""
    _write_av(frames, path, fps, "libx264", {"crf": "18", "preset": "medium"})


def write_webm(frames: np.ndarray, path: Path, fps: int) -> None:
    _write_av(frames, path, fps, "libvpx-vp9", {"crf": "30", "b": "0"})


def write_gif(frames: np.ndarray, path: Path, fps: int) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=False)


def write_webp(frames: np.ndarray, path: Path, fps: int) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, quality=90)


def write_png_frames(frames: np.ndarray, folder: Path, fps: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")


WRITERS: Dict[str, Callable[[np.ndarray, Path, int], None]] = {
    "mp4": write_mp4, "webm": write_webm, "gif": write_gif, "webp": write_webp, "png": write_png_frames}


def output_path(stem: Path, fmt: str) -> Path:
    return stem.parent / f"{stem.name}_frames" if fmt == "png" else stem.with_name(f"{stem.name}.{fmt}")


def write_video(result: VideoResult, out_stem: Union[str, Path], formats: Sequence[str] = ("mp4",)) -> Dict[str, Path]:
    """Write `result` as <out_stem>.<fmt> for each format (png: folder <out_stem>_frames/), plus
    <out_stem>.json (settings) and <out_stem>_input.png (the conditioning frame). Returns the paths
    by format, with keys 'json' and 'input' for the last two."""
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(result.frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"result.frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    paths: Dict[str, Path] = {}
    for fmt in parse_formats(formats):
        path = output_path(stem, fmt)
        WRITERS[fmt](frames, path, int(result.fps))
        paths[fmt] = path
        logger.info("wrote %s", path)
    sidecar = stem.with_name(f"{stem.name}.json")
    settings = dict(result.settings)
    settings["fps"] = int(result.fps)
    settings["files"] = {k: p.name for k, p in paths.items()}
    sidecar.write_text(json.dumps(settings, indent=2, sort_keys=True, default=str))
    paths["json"] = sidecar
    if result.input_image is not None:
        input_path = stem.with_name(f"{stem.name}_input.png")
        result.input_image.save(input_path)
        paths["input"] = input_path
    return paths
