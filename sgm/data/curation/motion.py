"""Motion scores of a clip from dense optical flow (Farnebäck) between its sampled frames."""
from typing import Optional, Sequence

import numpy as np

from .config import MotionConfig

__all__ = ["motion_score", "frame_difference"]


def motion_score(greys: Sequence[np.ndarray], indices: Sequence[int], fps: float, cfg: MotionConfig,
                 next_greys: Optional[Sequence[Optional[np.ndarray]]] = None) -> Optional[float]:
    """Mean optical-flow magnitude in frame widths per second, averaged over consecutive sample pairs.

    `greys` are the clip's sampled grey frames (h, w) uint8 and `indices` their frame numbers; flow in pixels
    is divided by the frame width and by the time between the two samples, so the score does not depend on
    the analysis resolution or the sampling rate. None when the clip has fewer than two samples.

    `next_greys[k]` (optional) is the frame right after sample k. Farnebäck alone tracks only a few pixels
    between samples half a second apart: faster than about 0.1 frame widths per second its score fell back
    to 0.05-0.1, below slower clips. The flow from sample k to the frame after it, scaled to the time between
    the samples, starts the flow between the samples near the answer, which extends the range to about 0.8.
    """
    import cv2

    if len(greys) < 2:
        return None
    speeds = []
    for k, (a, b, ia, ib) in enumerate(zip(greys[:-1], greys[1:], indices[:-1], indices[1:])):
        after = None if next_greys is None else next_greys[k]
        flow, flags = None, 0
        if after is not None and ib - ia > 1:
            flow, flags = _farneback(a, after, cfg) * float(ib - ia), cv2.OPTFLOW_USE_INITIAL_FLOW
        flow = _farneback(a, b, cfg, flow, flags)  # (h, w, 2) pixels
        magnitude = float(np.sqrt((flow.astype(np.float64) ** 2).sum(-1)).mean())
        speeds.append(magnitude / a.shape[1] / ((ib - ia) / fps))
    return float(np.mean(speeds))


def _farneback(a: np.ndarray, b: np.ndarray, cfg: MotionConfig, initial: Optional[np.ndarray] = None,
               flags: int = 0) -> np.ndarray:
    """Dense flow (h, w, 2) in pixels from grey frame `a` to `b`, optionally refined from `initial`."""
    import cv2

    return cv2.calcOpticalFlowFarneback(
        a, b, initial, cfg.pyr_scale, cfg.levels, cfg.winsize, cfg.iterations, cfg.poly_n, cfg.poly_sigma, flags
    )


def frame_difference(greys: Sequence[np.ndarray]) -> Optional[float]:
    """Mean absolute grey-level change (0-255) between consecutive sampled frames; near 0 for static clips."""
    if len(greys) < 2:
        return None
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(greys[:-1], greys[1:])]
    return float(np.mean(diffs))
