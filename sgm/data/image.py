"""Image webdataset for stage 1 (text-to-image): `jpg` (3, H, W) in [-1, 1] and `txt` (the caption).

Each shard sample is `<key>.jpg` (or `.jpeg`, `.png`, `.webp`) plus a caption in `<key>.json` (`"caption"`) or
`<key>.txt`. The image is resized to cover (H, W) and cropped; the batch key is `jpg` whatever the file type,
as in sgm's text-to-image configs.
"""
import io
import logging
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from sgm.data.datamodule import ShardDataModule
from sgm.data.shard_dataset import ShardDataset
from sgm.data.transforms import (
    CROP_MODES,
    cover_size,
    resize_cover_crop,
    to_signed_unit,
)
from sgm.data.video import read_caption, read_json_meta
from sgm.data.webdataset_utils import SampleSkipped, ShardSpec

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_EXTENSIONS", "ImageDataset", "ImageDataModule"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


class ImageDataset(ShardDataset):
    """Captioned images from webdataset shards, as `{"jpg": (3, H, W) in [-1, 1], "txt": str}`.

    Args:
        shards: shard spec (path, folder, glob, brace pattern, URL, `pipe:` command, or a list of them).
        size: output (height, width); images are resized to cover it, then cropped.
        crop: "random" or "center" crop after the resize.
        require_caption: skip (and count as "missing_member") samples with neither a json caption nor a
            `.txt`; when False they get the empty caption.
        shuffle_buffer, resampled, epoch_length, shard_shuffle_seed, seed, keep_key: streaming options of
            `sgm.data.shard_dataset.ShardDataset`.
    """

    def __init__(
        self,
        shards: ShardSpec,
        size: Sequence[int] = (512, 512),
        crop: str = "random",
        require_caption: bool = True,
        shuffle_buffer: int = 100,
        resampled: bool = False,
        epoch_length: Optional[int] = None,
        shard_shuffle_seed: Optional[int] = 0,
        seed: Optional[int] = None,
        keep_key: bool = False,
    ):
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (height, width), got {size}")
        if crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
        super().__init__(shards, shuffle_buffer, resampled, epoch_length, shard_shuffle_seed, seed, keep_key)
        self.size: Tuple[int, int] = (int(size[0]), int(size[1]))
        self.crop = crop
        self.require_caption = require_caption

    def decode(self, sample: dict, generator: Optional[torch.Generator] = None) -> dict:
        """Raw shard sample -> `{"jpg", "txt"}`; raises `SampleSkipped`."""
        from PIL import Image

        key = sample.get("__key__", "?")
        ext = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
        if ext is None:
            raise SampleSkipped("missing_member", f"{key}: no image member ({', '.join(IMAGE_EXTENSIONS)})")
        if "json" in sample:
            meta = read_json_meta(sample)
        elif "txt" in sample or not self.require_caption:
            meta = {}
        else:
            raise SampleSkipped("missing_member", f"{key}: no caption (.json with 'caption', or .txt)")
        if self.require_caption and "caption" not in meta and "txt" not in sample:
            raise SampleSkipped("missing_member", f"{key}: its json has no 'caption' and there is no .txt")
        caption = read_caption(sample, meta)
        try:
            with Image.open(io.BytesIO(sample[ext])) as image:
                # JPEGs can decode at 1/2, 1/4, 1/8 scale directly; draft keeps the result >= the cover size.
                cover_h, cover_w = cover_size(image.height, image.width, self.size)
                image.draft("RGB", (cover_w, cover_h))
                pixels = np.asarray(image.convert("RGB"))  # (h, w, 3) uint8
        except Exception as e:  # noqa: BLE001 (PIL raises several error types for damaged files)
            raise SampleSkipped("corrupt_image", f"{key}: the .{ext} does not decode ({type(e).__name__}: {e})") from None
        image = to_signed_unit(torch.from_numpy(pixels.copy()))[None]  # (1, 3, h, w) in [-1, 1]
        image = resize_cover_crop(image, self.size, self.crop, generator)[0].clamp(-1.0, 1.0).contiguous()
        out = {"jpg": image, "txt": caption}  # (3, H, W)
        return out


class ImageDataModule(ShardDataModule):
    """LightningDataModule of image batches: `jpg` (B, 3, H, W) in [-1, 1] and `txt` list[str].

    Config example (`data:` section)::

        target: sgm.data.image.ImageDataModule
        params:
          train: {shards: "data/toy/images/*.tar", size: [64, 64]}
          batch_size: 8

    Args: as `ShardDataModule`; `train` and `validation` hold `ImageDataset` arguments.
    """

    dataset_class = ImageDataset
