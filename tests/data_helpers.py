"""Helpers for the data tests: hand-made shards with known contents (ramps, gradients, broken members)."""
import io
import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

from sgm.data.synthetic import encode_mp4


def ramp_video(num_frames: int, height: int = 16, width: int = 16, step: int = 8) -> np.ndarray:
    """(T, H, W, 3) uint8 where frame i is uniform gray of value `step * i`: the frame index is readable back."""
    values = (np.arange(num_frames) * step).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (num_frames, height, width, 3)).copy()


def video_sample(key: str, frames: np.ndarray, fps: float, **meta) -> Dict[str, bytes]:
    """A shard sample (mp4 + json) for `frames` at `fps`; extra json fields from `meta`."""
    info = {
        "fps": float(fps),
        "num_frames": int(frames.shape[0]),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "duration": frames.shape[0] / fps,
        "caption": f"clip {key}",
        "motion_score": 0.5,
        "motion_bucket_id": 64,
    }
    info.update(meta)
    info = {k: v for k, v in info.items() if v is not None}
    return {"__key__": key, "mp4": encode_mp4(frames, fps, crf=0), "json": json.dumps(info).encode()}


def image_sample(key: str, image: np.ndarray, caption: Optional[str] = "an image", as_txt: bool = False) -> Dict[str, bytes]:
    """A shard sample with a PNG image and its caption in json (or in a .txt when `as_txt`)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    sample = {"__key__": key, "png": buf.getvalue()}
    if as_txt:
        sample["txt"] = caption.encode()
    elif caption is not None:
        sample["json"] = json.dumps({"caption": caption}).encode()
    return sample


def write_shard(path: Path, samples: Iterable[Dict[str, bytes]]) -> Path:
    """Write raw samples (bytes members) into one webdataset tar shard."""
    import webdataset as wds

    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path), encoder=False) as sink:
        for sample in samples:
            sink.write(sample)
    return path


def write_video_shards(folder: Path, num_shards: int, per_shard: int, num_frames: int = 6, fps: float = 12) -> List[Path]:
    """`num_shards` shards of small ramp videos with keys `k<shard>_<i>`."""
    return [
        write_shard(
            folder / f"shard-{s:04d}.tar",
            [video_sample(f"k{s}_{i}", ramp_video(num_frames), fps) for i in range(per_shard)],
        )
        for s in range(num_shards)
    ]
