"""Synthetic raw videos with known scenes (for tests and the throughput benchmark): moving textures, still
frames and text slides separated by hard cuts, written as H.264 mp4 with PyAV."""
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

from ...media import write_video_file

__all__ = ["render_scene", "write_video", "write_scene_video"]


def _texture(rng: np.random.Generator, height: int, width: int, tint: Tuple[int, int, int]) -> np.ndarray:
    """A smooth random colour texture (H, W, 3) uint8 with the given mean tint."""
    import cv2

    noise = rng.random((height // 12 + 2, width // 12 + 2, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip((smooth - 0.5) * 160 + np.asarray(tint, np.float32), 0, 255).astype(np.uint8)


def render_scene(kind: str, num_frames: int, height: int, width: int, seed: int = 0, speed: float = 1.5) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one scene.

    kind: `moving` (a texture panning `speed` pixels per frame), `static` (one texture, unchanged) or `text`
    (dense white text lines on a dark background, scrolling slowly so only the text filter drops it).
    """
    import cv2

    rng = np.random.default_rng(seed)
    if kind in ("moving", "static"):
        tint = tuple(int(v) for v in rng.integers(40, 215, 3))
        texture = _texture(rng, height, width * 2, tint)
        step = speed if kind == "moving" else 0.0
        return np.stack([np.roll(texture, -int(round(i * step)), axis=1)[:, :width] for i in range(num_frames)])
    if kind == "text":
        words = ["SALE", "NEWS", "BREAKING", "50% OFF", "TODAY", "CALL NOW", "LIVE", "SUBSCRIBE"]
        line_h = max(10, height // 9)
        frames = []
        for i in range(num_frames):
            frame = np.full((height, width, 3), 25, np.uint8)
            for row in range(1, height // line_h + 1):
                text = " ".join(words[(row + j) % len(words)] for j in range(4))
                cv2.putText(frame, text, (2 - i % 4, row * line_h - 2), cv2.FONT_HERSHEY_SIMPLEX,
                            line_h / 30.0, (235, 235, 235), 1, cv2.LINE_AA)
            frames.append(frame)
        return np.stack(frames)
    raise ValueError(f"unknown scene kind {kind!r}; use moving, static or text")


def write_video(path: Union[str, Path], frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Write frames (T, H, W, 3) uint8 RGB (even H and W) as an H.264 yuv420p mp4 (sgm.media)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video_file(path, frames, fps, frames.shape[2], frames.shape[1], "libx264",
                            {"crf": str(crf), "preset": "ultrafast"})


def write_scene_video(path: Union[str, Path], scenes: Sequence[Tuple[str, int]], height: int = 112, width: int = 192,
                      fps: float = 12.0, seed: int = 0) -> List[int]:
    """Write scenes `[(kind, num_frames), ...]` back to back (hard cuts between them); returns the cut frames."""
    parts = [render_scene(kind, n, height, width, seed=seed * 1000 + i) for i, (kind, n) in enumerate(scenes)]
    write_video(path, np.concatenate(parts), fps)
    return list(np.cumsum([n for _, n in scenes])[:-1].astype(int))
