"""Motion scores of a clip from dense optical flow (Farnebäck) between its sampled frames."""
from typing import Optional, Sequence

import numpy as np

from .config import MotionConfig

__all__ = ["motion_score", "frame_difference"]


def motion_score(greys: Sequence[np.ndarray], indices: Sequence[int], fps: float, cfg: MotionConfig) -> Optional[float]:
    """Mean optical-flow magnitude in frame widths per second, averaged over consecutive sample pairs.

    `greys` are the clip's sampled grey frames (h, w) uint8 and `indices` their frame numbers; flow in pixels
    is divided by the frame width and by the time between the two samples, so the score does not depend on
    the analysis resolution or the sampling rate. None when the clip has fewer than two samples.
    """
    import cv2

    if len(greys) < 2:
        return None
    speeds = []
    for a, b, ia, ib in zip(greys[:-1], greys[1:], indices[:-1], indices[1:]):
        flow = cv2.calcOpticalFlowFarneback(
            a, b, None, cfg.pyr_scale, cfg.levels, cfg.winsize, cfg.iterations, cfg.poly_n, cfg.poly_sigma, 0
        )  # (h, w, 2) pixels
        magnitude = float(np.sqrt((flow.astype(np.float64) ** 2).sum(-1)).mean())
        speeds.append(magnitude / a.shape[1] / ((ib - ia) / fps))
    return float(np.mean(speeds))


def frame_difference(greys: Sequence[np.ndarray]) -> Optional[float]:
    """Mean absolute grey-level change (0-255) between consecutive sampled frames; near 0 for static clips."""
    if len(greys) < 2:
        return None
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(greys[:-1], greys[1:])]
    return float(np.mean(diffs))
