"""Video webdataset for SVD training: clips of T frames at a target fps, with SVD's conditioning keys.

Each shard sample is `<key>.mp4` + `<key>.json` (docs/data.md). A sample becomes (before batching):

    frames                     float32 (T, 3, H, W) in [-1, 1]
    cond_frames_without_noise  float32 (3, H, W)   the clip's first frame
    cond_aug                   float32 ()           sigma, log sigma ~ N(cond_aug_mean, cond_aug_std^2)
    cond_frames                float32 (3, H, W)   first frame + sigma * N(0, 1)
    fps_id                     int64 ()             the clip's frame rate - 1
    motion_bucket_id           int64 ()             from the json (or its motion_score, or a default)
    txt                        str                  the caption
    num_video_frames           int64 ()             T

and `VideoDataModule` batches them for Lightning.
"""
import json
import logging
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from sgm.data.clips import FRAME_START_POLICIES, clip_frame_indices, frame_stride
from sgm.data.cond_aug import noise_cond_frame, sample_cond_aug
from sgm.data.datamodule import ShardDataModule
from sgm.data.motion import (
    DEFAULT_MOTION_BUCKET_SCALE,
    MAX_MOTION_BUCKET_ID,
    motion_bucket_from_score,
)
from sgm.data.shard_dataset import ShardDataset
from sgm.data.transforms import CROP_MODES, resize_cover_crop, to_signed_unit
from sgm.data.video_decode import decode_video_frames
from sgm.data.webdataset_utils import SampleSkipped, ShardSpec

logger = logging.getLogger(__name__)

__all__ = ["VideoDataset", "VideoDataModule", "read_json_meta", "read_caption"]


def read_json_meta(sample: dict) -> Dict[str, Any]:
    """The sample's parsed `.json` (a dict); `SampleSkipped` when it is missing or is not a JSON object."""
    key = sample.get("__key__", "?")
    if "json" not in sample:
        raise SampleSkipped("missing_member", f"{key}: no .json member")
    try:
        meta = json.loads(sample["json"])
    except (ValueError, UnicodeDecodeError) as e:
        raise SampleSkipped("bad_json", f"{key}: .json does not parse ({e})") from None
    if not isinstance(meta, dict):
        raise SampleSkipped("bad_json", f"{key}: .json is a {type(meta).__name__}, not an object")
    return meta


def read_caption(sample: dict, meta: Dict[str, Any]) -> str:
    """`meta["caption"]`, else the sample's `.txt` member, else an empty caption."""
    caption = meta.get("caption")
    if caption is None and "txt" in sample:
        caption = bytes(sample["txt"]).decode("utf-8", errors="replace").strip()
    if caption is None:
        return ""
    if not isinstance(caption, str):
        raise SampleSkipped("bad_json", f"{sample.get('__key__', '?')}: caption is not a string: {caption!r}")
    return caption


def _positive_number(meta: Dict[str, Any], name: str, key: str) -> Optional[float]:
    value = meta.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise SampleSkipped("bad_json", f"{key}: json {name!r} must be a positive finite number, got {value!r}")
    return float(value)


class VideoDataset(ShardDataset):
    """Clips of `num_frames` frames at about `fps` from mp4 + json webdataset shards (see the module docstring).

    Args:
        shards: shard spec (path, folder, glob, brace pattern, URL, `pipe:` command, or a list of them).
        num_frames: frames per clip, T (14 for SVD, 25 for SVD-XT).
        fps: target frame rate; every `round(source_fps / fps)`-th source frame is taken. The source fps is
            the json's `fps`, else the container's.
        size: output (height, width); frames are resized to cover it, then cropped.
        crop: "random" or "center" crop after the resize (the same for all frames of a clip).
        frame_start: where the clip starts in the video: "random", "start" or "center".
        cond_aug_mean: mean of log sigma for the conditioning-frame noise (SVD: -3.0).
        cond_aug_std: std of log sigma (SVD: 0.5); 0 gives the fixed sigma exp(mean).
        motion_bucket_scale: used when a json has `motion_score` but no `motion_bucket_id`:
            bucket = clip(round(score * scale), 0, 255) (see `sgm.data.motion`).
        default_motion_bucket_id: used when the json has neither (SVD's sampling default is 127).
        shuffle_buffer, resampled, epoch_length, shard_shuffle_seed, seed, keep_key: streaming options of
            `sgm.data.shard_dataset.ShardDataset`.

    Videos with fewer than `(num_frames - 1) * stride + 1` frames are skipped and counted as "too_short";
    undecodable mp4s, bad json and unreadable shards are skipped and counted too (`self.skipped`).
    """

    def __init__(
        self,
        shards: ShardSpec,
        num_frames: int = 14,
        fps: float = 6,
        size: Sequence[int] = (320, 576),
        crop: str = "random",
        frame_start: str = "random",
        cond_aug_mean: float = -3.0,
        cond_aug_std: float = 0.5,
        motion_bucket_scale: float = DEFAULT_MOTION_BUCKET_SCALE,
        default_motion_bucket_id: int = 127,
        shuffle_buffer: int = 100,
        resampled: bool = False,
        epoch_length: Optional[int] = None,
        shard_shuffle_seed: Optional[int] = 0,
        seed: Optional[int] = None,
        keep_key: bool = False,
    ):
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (height, width), got {size}")
        if crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
        if frame_start not in FRAME_START_POLICIES:
            raise ValueError(f"frame_start must be one of {FRAME_START_POLICIES}, got {frame_start!r}")
        if cond_aug_std < 0:
            raise ValueError(f"cond_aug_std must be >= 0, got {cond_aug_std}")
        if not 0 <= default_motion_bucket_id <= MAX_MOTION_BUCKET_ID:
            raise ValueError(f"default_motion_bucket_id must be in 0..255, got {default_motion_bucket_id}")
        if motion_bucket_scale <= 0:
            raise ValueError(f"motion_bucket_scale must be positive, got {motion_bucket_scale}")
        super().__init__(shards, shuffle_buffer, resampled, epoch_length, shard_shuffle_seed, seed, keep_key)
        self.num_frames = int(num_frames)
        self.fps = float(fps)
        self.size: Tuple[int, int] = (int(size[0]), int(size[1]))
        self.crop = crop
        self.frame_start = frame_start
        self.cond_aug_mean = float(cond_aug_mean)
        self.cond_aug_std = float(cond_aug_std)
        self.motion_bucket_scale = float(motion_bucket_scale)
        self.default_motion_bucket_id = int(default_motion_bucket_id)

    def _motion_bucket_id(self, meta: Dict[str, Any], key: str) -> int:
        bucket = meta.get("motion_bucket_id")
        if bucket is not None:
            if isinstance(bucket, bool) or not isinstance(bucket, (int, float)) or not 0 <= bucket <= 255:
                raise SampleSkipped("bad_json", f"{key}: motion_bucket_id must be in 0..255, got {bucket!r}")
            return round(bucket)
        score = meta.get("motion_score")
        if score is not None:
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score < math.inf:
                raise SampleSkipped("bad_json", f"{key}: motion_score must be a finite number >= 0, got {score!r}")
            return motion_bucket_from_score(score, self.motion_bucket_scale)
        return self.default_motion_bucket_id

    def decode(self, sample: dict, generator: Optional[torch.Generator] = None) -> dict:
        """Raw shard sample -> training sample (see the module docstring); raises `SampleSkipped`."""
        key = sample.get("__key__", "?")
        meta = read_json_meta(sample)
        json_fps = _positive_number(meta, "fps", key)
        json_frames = _positive_number(meta, "num_frames", key)
        caption = read_caption(sample, meta)
        motion_bucket_id = self._motion_bucket_id(meta, key)
        if "mp4" not in sample:
            raise SampleSkipped("missing_member", f"{key}: no .mp4 member")
        clip_fps = []

        def choose(container_fps: Optional[float], container_frames: int):
            source_fps = json_fps or container_fps
            if source_fps is None:
                raise SampleSkipped("bad_json", f"{key}: no fps in the json or the container")
            num_source = container_frames or int(json_frames or 0)
            stride = frame_stride(source_fps, self.fps)
            indices = clip_frame_indices(num_source, self.num_frames, stride, self.frame_start, generator)
            if indices is None:
                raise SampleSkipped(
                    "too_short",
                    f"{key}: {num_source} frames at {source_fps:g} fps; a clip of {self.num_frames} frames at "
                    f"{self.fps:g} fps (stride {stride}) needs {(self.num_frames - 1) * stride + 1}",
                )
            clip_fps.append(source_fps / stride)
            return indices

        try:
            pixels, _ = decode_video_frames(sample["mp4"], choose, cover=self.size)  # (T, h, w, 3) uint8
        except SampleSkipped:
            raise
        except Exception as e:  # noqa: BLE001 (PyAV raises many error types for damaged files)
            raise SampleSkipped("corrupt_video", f"{key}: the mp4 does not decode ({type(e).__name__}: {e})") from None

        frames = to_signed_unit(torch.from_numpy(pixels))  # (T, 3, h, w) in [-1, 1]
        frames = resize_cover_crop(frames, self.size, self.crop, generator).clamp(-1.0, 1.0).contiguous()
        cond_aug = sample_cond_aug(self.cond_aug_mean, self.cond_aug_std, generator)
        cond_frames, cond_frames_without_noise = noise_cond_frame(frames[0], cond_aug, generator)
        # NOTE: SVD conditions on fps - 1 (its `fps_id`). We use the clip's actual rate, source_fps / stride,
        # which is the target fps whenever the source rate is a multiple of it.
        fps_id = max(0, round(clip_fps[0]) - 1)
        out = {
            "frames": frames,  # (T, 3, H, W)
            "cond_frames_without_noise": cond_frames_without_noise.clone(),  # (3, H, W)
            "cond_frames": cond_frames,  # (3, H, W)
            "cond_aug": cond_aug,  # ()
            "fps_id": torch.tensor(fps_id, dtype=torch.long),
            "motion_bucket_id": torch.tensor(motion_bucket_id, dtype=torch.long),
            "txt": caption,
            "num_video_frames": torch.tensor(self.num_frames, dtype=torch.long),
        }
        return out


class VideoDataModule(ShardDataModule):
    """LightningDataModule of video batches (keys in the module docstring, batched along a new dim 0).

    Config example (`data:` section)::

        target: sgm.data.video.VideoDataModule
        params:
          train: {shards: "data/toy/videos/*.tar", num_frames: 14, fps: 6, size: [64, 128]}
          batch_size: 2
          num_workers: 2

    Args: as `ShardDataModule`; `train` and `validation` hold `VideoDataset` arguments.
    """

    dataset_class = VideoDataset
