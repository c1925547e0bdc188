"""The outcome of one generation."""
from dataclasses import dataclass, field
from typing import Any, Dict

import numpy as np
from PIL import Image


@dataclass
class VideoResult:
    """frames: (T, H, W, 3) uint8. fps: playback rate (fps_id + 1). settings: every option that made
    the video, the seed actually used, the model (version/config/ckpt) and the package version.
    input_image: the exact RGB crop the model was conditioned on."""

    frames: np.ndarray
    fps: int
    settings: Dict[str, Any] = field(default_factory=dict)
    input_image: Image.Image = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])
