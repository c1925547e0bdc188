"""The motion-score -> `motion_bucket_id` (0-255) mapping, saved as JSON for reuse at sampling time.

Usage at sampling time: `MotionBucketMapping.load("out/motion_buckets.json").bucket(score)`.
"""
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np

from sgm.data.motion import MAX_MOTION_BUCKET_ID, motion_bucket_from_score

from .config import BucketConfig

__all__ = ["MotionBucketMapping", "fit_motion_mapping", "load_motion_mapping"]

UNIT = "mean optical-flow magnitude in frame widths per second (Farneback on frames sampled at about 2 fps)"


@dataclass
class MotionBucketMapping:
    """A monotone map from motion score to bucket id.

    Args:
        method: `quantile` (bucket = number of `edges` below score, ties counted half), `linear` (`round(score * scale)`, the rule of
            `sgm.data.motion`) or `log` (255 * (log s - log log_min) / (log log_max - log log_min)).
        edges: 255 increasing score thresholds for `quantile`.
        scale: factor for `linear`.
        log_min, log_max: scores mapped to 0 and 255 by `log`.
        num_fitted: number of clips the mapping was fitted on (informative).
        unit: what the motion score measures (informative, saved with the mapping).
    """

    method: str
    edges: List[float] = field(default_factory=list)
    scale: float = 127.0
    log_min: float = 0.001
    log_max: float = 2.0
    num_fitted: int = 0
    unit: str = UNIT

    def bucket(self, score: float) -> int:
        """The bucket id (0..255) of a motion score."""
        score = float(score)
        if self.method == "quantile":
            # Edges equal to the score count half: a mapping fitted on one clip (or on equal scores) puts that
            # score in the middle bucket, not in the top one.
            edges = np.asarray(self.edges)
            below, up_to = np.searchsorted(edges, score, side="left"), np.searchsorted(edges, score, side="right")
            return int((below + up_to + 1) // 2)
        if self.method == "linear":
            return motion_bucket_from_score(max(score, 0.0), self.scale)
        if self.method == "log":
            t = (math.log(max(score, 1e-12)) - math.log(self.log_min)) / (math.log(self.log_max) - math.log(self.log_min))
            return int(min(max(round(t * MAX_MOTION_BUCKET_ID), 0), MAX_MOTION_BUCKET_ID))
        raise ValueError(f"unknown motion mapping method {self.method!r}")

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: Union[str, Path]) -> "MotionBucketMapping":
        try:
            data = json.loads(Path(path).read_text())
            mapping = cls(**data)
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"cannot read a motion bucket mapping from {path}: {e}") from None
        if mapping.method == "quantile" and len(mapping.edges) != MAX_MOTION_BUCKET_ID:
            raise ValueError(f"{path}: a quantile mapping needs {MAX_MOTION_BUCKET_ID} edges, has {len(mapping.edges)}")
        return mapping


load_motion_mapping = MotionBucketMapping.load


def fit_motion_mapping(scores: Sequence[float], cfg: BucketConfig) -> MotionBucketMapping:
    """Build the mapping of `cfg.method`; `quantile` puts the 1/256 ... 255/256 quantiles of `scores` as edges,
    so the clips it was fitted on spread evenly over the 256 buckets."""
    scores = np.asarray([s for s in scores if s is not None and math.isfinite(s)], dtype=np.float64)
    if cfg.method == "quantile":
        if scores.size == 0:
            raise ValueError("cannot fit a quantile motion mapping on zero clips; use buckets.method=linear or keep more clips")
        edges = np.quantile(scores, np.arange(1, MAX_MOTION_BUCKET_ID + 1) / (MAX_MOTION_BUCKET_ID + 1))
        return MotionBucketMapping("quantile", edges=[float(e) for e in edges], num_fitted=int(scores.size))
    if cfg.method == "log" and not 0 < cfg.log_min < cfg.log_max:
        raise ValueError(f"buckets.log_min and log_max must satisfy 0 < log_min < log_max, got {cfg.log_min}, {cfg.log_max}")
    return MotionBucketMapping(cfg.method, scale=cfg.scale, log_min=cfg.log_min, log_max=cfg.log_max,
                               num_fitted=int(scores.size))
