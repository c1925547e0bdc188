"""Synthetic shards of moving shapes, so the whole training pipeline runs with no downloads.

Each toy video shows one coloured square or circle on a plain background, moving left, right, up or down at
a constant known speed (or standing still) and wrapping around the frame edges, so the caption ("a red circle
moving left quickly") stays true for the whole clip. Videos are written at several source frame rates
(12, 24 and 30 fps by default) with the same duration, so a clip sampled at a lower target fps covers the same
motion whatever the source rate.

Speeds are in frame widths per second (`SPEED_LEVELS`, the same in pixels per second along either axis), and
that speed is the clip's `motion_score`; `motion_bucket_id` follows `sgm.data.motion.motion_bucket_from_score`
(score 1.0 -> 127, static -> 0). Everything is derived from `seed`, the shard index and the sample index, so the
same call writes byte-identical shards.

The shard layout is the project's shard contract (see docs/data.md): `<key>.mp4` (H.264, yuv420p) and
`<key>.json` for videos; `<key>.jpg` and `<key>.json` (with a `caption`) for images.
"""
import io
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from sgm.data.motion import motion_bucket_from_score
from sgm.media import encode_mp4_bytes

__all__ = [
    "SPEED_LEVELS",
    "COLOUR_DIRECTIONS",
    "encode_mp4",
    "render_toy_video",
    "render_toy_image",
    "write_toy_video_shards",
    "write_toy_image_shards",
]

# Object speeds in frame widths per second, with the adverb used in captions.
SPEED_LEVELS: Dict[float, str] = {0.0: "", 0.25: "slowly", 0.5: "steadily", 1.0: "quickly"}
COLOURS: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 220, 40),
    "cyan": (40, 215, 220),
    "magenta": (215, 50, 210),
}
BACKGROUNDS: Dict[str, Tuple[int, int, int]] = {"black": (10, 10, 10), "gray": (120, 120, 120), "white": (245, 245, 245)}
SHAPES = ("square", "circle")
# Unit vector (dx, dy) in image coordinates (y grows downwards) for each direction word.
DIRECTIONS: Dict[str, Tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
# The toy world's law of motion (`direction_by_colour=True`): four colours, each moving its own way, so the direction
# of a clip can be read off its first frame and an image-to-video model can be checked against the true clip. (With
# cyan and magenta as well, moving like red and green, the tiny toy model kept confusing cyan with green and blue.)
COLOUR_DIRECTIONS: Dict[str, str] = {"red": "right", "green": "left", "blue": "down", "yellow": "up"}
# A fixed tar mtime so that the same seed writes byte-identical shards.
_TAR_MTIME = 1_700_000_000.0

PathLike = Union[str, Path]


def encode_mp4(frames: np.ndarray, fps: float, crf: int = 18) -> bytes:
    """Encode RGB frames (T, H, W, 3) uint8 as a faststart H.264 yuv420p mp4 at `fps` (sgm.media: no system
    ffmpeg; the same frames give the same bytes).

    H and W must be even (yuv420p halves the chroma planes). `crf` is x264's constant rate factor (0 = lossless
    luma, 18 = visually lossless, 23 = x264's default).
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 yuv420p needs an even height and width, got {h}x{w}")
    if t == 0:
        raise ValueError("cannot encode a video with no frames")
    return encode_mp4_bytes(frames, fps, {"crf": str(crf), "preset": "veryfast"})


def _shape_mask(shape: str, cx: float, cy: float, radius: float, height: int, width: int) -> np.ndarray:
    """Boolean (H, W) mask of a square/circle centred at (cx, cy), wrapping around the frame edges (a torus)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5  # pixel centres
    dx = (xs - cx + width / 2) % width - width / 2
    dy = (ys - cy + height / 2) % height - height / 2
    if shape == "square":
        return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
    return dx * dx + dy * dy <= radius * radius


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def render_toy_video(
    rng: np.random.Generator, height: int, width: int, fps: float, num_frames: int, direction: Optional[str] = None,
    speeds: Optional[Sequence[float]] = None, direction_by_colour: bool = False, colours: Optional[Sequence[str]] = None,
) -> Tuple[np.ndarray, dict]:
    """Draw one moving-shape video (num_frames, height, width, 3) uint8 and its metadata (caption, speed, ...).
    direction: every shape moves this way (one of DIRECTIONS); default drawn. speeds: frame widths per
    second to draw from (default: the keys of SPEED_LEVELS, without 0 when a direction is given).
    direction_by_colour: the colour is one of COLOUR_DIRECTIONS and the direction follows it instead of being drawn.
    colours: names in COLOURS to draw the colour from (default all of them, or the four of COLOUR_DIRECTIONS with
    direction_by_colour)."""
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if direction is not None and direction_by_colour:
        raise ValueError("give either a direction or direction_by_colour, not both")
    if speeds is None and direction is not None:
        speeds = [v for v in SPEED_LEVELS if v > 0]
    allowed = COLOUR_DIRECTIONS if direction_by_colour else COLOURS
    unknown = sorted(set(colours or ()) - set(allowed))
    if unknown or (colours is not None and not colours):
        raise ValueError(f"colours must be a non-empty list from {', '.join(allowed)}, got {list(colours)}")
    colours = list(colours or allowed)
    shape, colour, background = _pick(rng, SHAPES), _pick(rng, colours), _pick(rng, list(BACKGROUNDS))
    speed = float(_pick(rng, list(SPEED_LEVELS if speeds is None else speeds)))  # frame widths per second
    drawn = _pick(rng, list(DIRECTIONS))
    direction = COLOUR_DIRECTIONS[colour] if direction_by_colour else direction or drawn
    radius = max(2.0, float(min(height, width)) * float(rng.uniform(0.12, 0.2)))
    cx0, cy0 = float(rng.uniform(0, width)), float(rng.uniform(0, height))
    speed_px = speed * width  # pixels per second, along either axis
    ux, uy = DIRECTIONS[direction]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    frames[:] = BACKGROUNDS[background]
    for i in range(num_frames):
        t = i / fps
        mask = _shape_mask(shape, cx0 + ux * speed_px * t, cy0 + uy * speed_px * t, radius, height, width)
        frames[i][mask] = COLOURS[colour]
    if speed == 0:
        caption = f"a {colour} {shape} standing still"
    else:
        caption = f"a {colour} {shape} moving {direction} {SPEED_LEVELS.get(speed, '')}".rstrip()
    meta = {
        "fps": float(fps),
        "num_frames": int(num_frames),
        "width": int(width),
        "height": int(height),
        "duration": num_frames / float(fps),
        "caption": caption,
        "motion_score": speed,
        "motion_bucket_id": motion_bucket_from_score(speed),
        "shape": shape,
        "colour": colour,
        "background": background,
        "direction": direction if speed > 0 else "none",
        "speed_px_per_s": speed_px,
    }
    return frames, meta


def render_toy_image(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, str]:
    """Draw one still image (height, width, 3) uint8 of one to three shapes and return it with its caption."""
    background = _pick(rng, list(BACKGROUNDS))
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUNDS[background]
    names = []
    for _ in range(int(rng.integers(1, 4))):
        shape, colour = _pick(rng, SHAPES), _pick(rng, list(COLOURS))
        radius = max(2.0, float(min(height, width)) * float(rng.uniform(0.1, 0.2)))
        mask = _shape_mask(shape, float(rng.uniform(0, width)), float(rng.uniform(0, height)), radius, height, width)
        image[mask] = COLOURS[colour]
        names.append(f"a {colour} {shape}")
    caption = (" and ".join(names)) + f" on a {background} background"
    return image, caption


def _check_size(size: Tuple[int, int]) -> Tuple[int, int]:
    height, width = int(size[0]), int(size[1])
    if height < 8 or width < 8 or height % 2 or width % 2:
        raise ValueError(f"size must be (height, width), both even and >= 8, got {tuple(size)}")
    return height, width


def _tar_writer(path: Path):
    import webdataset as wds

    return wds.TarWriter(str(path), encoder=False, mtime=_TAR_MTIME)


def _write_shards(out_dir: PathLike, prefix: str, num_shards: int, samples_per_shard: int,
                  sample: Callable[[int, int], dict]) -> List[Path]:
    """Write `<prefix>-000000.tar`, ... with `sample(shard, i)` members under keys `s<shard>_<i>`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(num_shards):
        path = out / f"{prefix}-{shard:06d}.tar"
        with _tar_writer(path) as sink:
            for i in range(samples_per_shard):
                sink.write({"__key__": f"s{shard:06d}_{i:06d}", **sample(shard, i)})
        paths.append(path)
    return paths


def write_toy_video_shards(
    out_dir: PathLike,
    num_shards: int = 2,
    samples_per_shard: int = 8,
    size: Tuple[int, int] = (64, 128),
    num_frames: Optional[int] = None,
    seed: int = 0,
    duration: float = 3.0,
    fps_choices: Sequence[float] = (12, 24, 30),
    prefix: str = "toy-video",
    direction: Optional[str] = None,
    speeds: Optional[Sequence[float]] = None,
    direction_by_colour: bool = False,
    colours: Optional[Sequence[str]] = None,
) -> List[Path]:
    """Write `num_shards` webdataset shards `<prefix>-000000.tar`, ... of moving-shape videos; return their paths.

    Args:
        out_dir: folder for the shards (created if missing).
        num_shards: number of `.tar` shards.
        samples_per_shard: videos per shard.
        size: (height, width) of the videos; both even (H.264 yuv420p).
        num_frames: frames per video; None means `round(duration * fps)` so every source fps covers the same time.
        seed: everything (shapes, colours, speeds, fps) derives from it; the same seed writes identical shards.
        duration: seconds per video when `num_frames` is None.
        fps_choices: source frame rates drawn from, uniformly.
        prefix: shard file name prefix (no dots).
        direction: every shape moves this way (left/right/up/down; e.g. data for a motion LoRA); default drawn.
        speeds: object speeds (frame widths per second) drawn from; default the keys of SPEED_LEVELS (without
            0 when a direction is given).
        direction_by_colour: shapes of four colours, each moving its own way (COLOUR_DIRECTIONS), so motion is
            predictable from the first frame (the toy curriculum's image-to-video data).
        colours: colour names to draw from (default all of COLOURS, or the four of COLOUR_DIRECTIONS with
            direction_by_colour); e.g. the toy world's four colours all moving one way, for a motion LoRA.
    """
    height, width = _check_size(size)
    if num_shards < 1 or samples_per_shard < 1:
        raise ValueError(f"need at least one shard and one sample per shard, got {num_shards}, {samples_per_shard}")
    def sample(shard: int, i: int) -> dict:
        rng = np.random.default_rng([seed, shard, i])
        fps = float(_pick(rng, list(fps_choices)))
        n = int(num_frames) if num_frames is not None else max(1, round(duration * fps))
        frames, meta = render_toy_video(rng, height, width, fps, n, direction, speeds, direction_by_colour, colours)
        return {"mp4": encode_mp4(frames, fps), "json": json.dumps(meta, sort_keys=True).encode()}

    return _write_shards(out_dir, prefix, num_shards, samples_per_shard, sample)


def write_toy_image_shards(
    out_dir: PathLike,
    num_shards: int = 2,
    samples_per_shard: int = 16,
    size: Tuple[int, int] = (64, 64),
    seed: int = 0,
    prefix: str = "toy-image",
    quality: int = 95,
) -> List[Path]:
    """Write `num_shards` image shards `<prefix>-000000.tar`, ... (`.jpg` + `.json` with `caption`) for stage 1.

    Args:
        out_dir: folder for the shards (created if missing).
        num_shards: number of `.tar` shards.
        samples_per_shard: images per shard.
        size: (height, width) of the images; both even.
        seed: the same seed writes identical shards.
        prefix: shard file name prefix (no dots).
        quality: JPEG quality (1..95).
    """
    from PIL import Image

    height, width = _check_size(size)
    if num_shards < 1 or samples_per_shard < 1:
        raise ValueError(f"need at least one shard and one sample per shard, got {num_shards}, {samples_per_shard}")
    def sample(shard: int, i: int) -> dict:
        rng = np.random.default_rng([seed, shard, i, 1])
        image, caption = render_toy_image(rng, height, width)
        jpg = io.BytesIO()
        Image.fromarray(image).save(jpg, format="JPEG", quality=quality)
        meta = {"caption": caption, "width": width, "height": height}
        return {"jpg": jpg.getvalue(), "json": json.dumps(meta, sort_keys=True).encode()}

    return _write_shards(out_dir, prefix, num_shards, samples_per_shard, sample)
