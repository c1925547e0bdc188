"""Keep/drop decisions from stored scores, so thresholds can change without re-analysis."""
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .config import FilterConfig

__all__ = ["FILTERS", "Filter", "failed_filters", "active_filters"]


@dataclass(frozen=True)
class Filter:
    """Drop a clip named `name` when `score` is below (`bound="min"`) or above (`bound="max"`) `threshold_key`."""

    name: str
    score: str
    bound: str  # "min" or "max"
    threshold_key: str  # field of FilterConfig


FILTERS: Tuple[Filter, ...] = (
    Filter("too_short", "duration", "min", "min_duration"),
    Filter("too_long", "duration", "max", "max_duration"),
    Filter("low_motion", "motion_score", "min", "min_motion"),
    Filter("high_motion", "motion_score", "max", "max_motion"),
    Filter("static", "frame_diff", "min", "min_frame_diff"),
    Filter("text", "text_area", "max", "max_text_area"),
    Filter("low_aesthetic", "clip_aesthetic", "min", "min_aesthetic"),
    Filter("low_clip_similarity", "clip_similarity", "min", "min_clip_similarity"),
)


def clip_score(clip: dict, name: str) -> Optional[float]:
    """A clip's stored score (`duration` lives beside the scores)."""
    return clip.get(name) if name == "duration" else clip["scores"].get(name)


def active_filters(cfg: FilterConfig) -> List[Tuple[Filter, float]]:
    """The filters whose threshold is set, with that threshold."""
    return [(f, getattr(cfg, f.threshold_key)) for f in FILTERS if getattr(cfg, f.threshold_key) is not None]


def failed_filters(clip: dict, cfg: FilterConfig) -> Tuple[List[str], List[str]]:
    """(names of the filters the clip fails, names of active filters whose score the clip lacks).

    A missing score (e.g. no CLIP weights were given, or too few samples for motion) fails the motion and
    static filters (nothing shows the clip moves) but not the optional CLIP filters, which are then just
    reported as not applied.
    """
    failed, missing = [], []
    for f, threshold in active_filters(cfg):
        value = clip_score(clip, f.score)
        if value is None:
            missing.append(f.name)
            if f.score in ("motion_score", "frame_diff") and f.bound == "min":
                failed.append(f.name)
            continue
        if (f.bound == "min" and value < threshold) or (f.bound == "max" and value > threshold):
            failed.append(f.name)
    return failed, missing
