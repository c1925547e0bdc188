"""Turning the page's controls into `SamplingOptions`, and back."""
import random
from dataclasses import dataclass
from typing import Optional

MAX_SEED = 2**31 - 1  # stays exact in the browser's float64 numbers
EXTRA_FORMATS = ("gif", "webp", "webm")  # offered next to the mp4, which is always written


@dataclass
class FormValues:
    """The values of the page's sampling controls, as the browser sends them (numbers may be floats).

    Names follow `SamplingOptions`; crop_x / crop_y are `crop_offset`.
    """

    num_frames: float
    num_steps: float
    fps_id: float
    motion_bucket_id: float
    cond_aug: float
    min_cfg: float
    max_cfg: float
    seed: Optional[float]
    decoding_t: float
    width: float
    height: float
    crop_x: float
    crop_y: float
    total_frames: float = 0  # 0: one clip

    def to_options(self):
        """Validated `SamplingOptions`; ValueError names the control and its valid range."""
        from ..inference import SamplingOptions

        def whole(name: str, value) -> int:
            if value is None or float(value) != int(float(value)):
                raise ValueError(f"{name} must be a whole number, got {value}")
            return int(float(value))

        seed = whole("seed", self.seed)
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be in 0..{MAX_SEED}, got {seed}")
        opts = SamplingOptions(num_frames=whole("frames", self.num_frames), num_steps=whole("steps", self.num_steps),
                               fps_id=whole("fps_id", self.fps_id),
                               motion_bucket_id=whole("motion bucket", self.motion_bucket_id),
                               cond_aug=float(self.cond_aug), seed=seed, decoding_t=whole("decoding_t", self.decoding_t),
                               height=whole("height", self.height), width=whole("width", self.width),
                               min_cfg=float(self.min_cfg), max_cfg=float(self.max_cfg),
                               crop_offset=(float(self.crop_x), float(self.crop_y)),
                               total_frames=whole("total frames", self.total_frames or 0) or None)
        opts.validate()
        return opts


def random_seed(rng: Optional[random.Random] = None) -> int:
    """A fresh seed for the random-seed button."""
    return (rng or random).randint(0, MAX_SEED)
