"""Scene-cut detection with PySceneDetect detectors, and splitting a video into clips at the cuts."""
from typing import List, Optional, Sequence, Tuple

from .config import CutConfig

__all__ = ["CutDetector", "split_at_cuts"]


class CutDetector:
    """Feeds frames one at a time to the configured PySceneDetect detectors and collects their cuts.

    A cut at frame k means a new clip starts at frame k. Args: `cfg` (CutConfig), `fps` of the video.
    """

    def __init__(self, cfg: CutConfig, fps: float):
        from scenedetect import (
            AdaptiveDetector,
            ContentDetector,
            FrameTimecode,
            ThresholdDetector,
        )
        from scenedetect.detector import FlashFilter

        self._timecode = FrameTimecode
        self.fps = fps
        self.min_scene_len = cfg.min_scene_len
        self.detectors = []
        try:
            if cfg.content is not None:
                # NOTE: PySceneDetect 0.7's default MERGE flash filter drops and shifts cuts on short scenes;
                # SUPPRESS (no cut within min_scene_len of the last one) keeps cuts on the exact frame.
                params = {"filter_mode": FlashFilter.Mode.SUPPRESS, **dict(cfg.content)}
                self.detectors.append(ContentDetector(min_scene_len=cfg.min_scene_len, **params))
            if cfg.threshold is not None:
                self.detectors.append(ThresholdDetector(min_scene_len=cfg.min_scene_len, **dict(cfg.threshold)))
            if cfg.adaptive is not None:
                self.detectors.append(AdaptiveDetector(min_scene_len=cfg.min_scene_len, **dict(cfg.adaptive)))
        except TypeError as e:
            raise ValueError(f"invalid cut-detector parameter in the `cuts` config: {e}") from None
        self.cuts: List[int] = []
        self._last = -1

    def process(self, index: int, frame_bgr) -> None:
        """Frame `index` (consecutive from 0) as a (H, W, 3) uint8 BGR array."""
        tc = self._timecode(index, self.fps)
        for detector in self.detectors:
            self.cuts.extend(int(c.frame_num) for c in detector.process_frame(tc, frame_bgr))
        self._last = index

    def finish(self) -> List[int]:
        """Sorted cut frames, after merging cuts of different detectors closer than `min_scene_len`."""
        if self._last >= 0:
            tc = self._timecode(self._last, self.fps)
            for detector in self.detectors:
                self.cuts.extend(int(c.frame_num) for c in detector.post_process(tc))
        merged: List[int] = []
        for cut in sorted(set(self.cuts)):
            if 0 < cut <= self._last and (not merged or cut - merged[-1] >= self.min_scene_len):
                merged.append(cut)
        return merged


def split_at_cuts(num_frames: int, cuts: Sequence[int], max_frames: Optional[int] = None) -> List[Tuple[int, int]]:
    """Half-open frame ranges [start, end) between consecutive cuts, covering all `num_frames` frames.

    With `max_frames`, a longer scene is split into the fewest equal-length pieces of at most `max_frames`.
    """
    bounds = [0] + [c for c in sorted(cuts) if 0 < c < num_frames] + [num_frames]
    spans = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        pieces = 1 if max_frames is None else -(-(b - a) // max_frames)  # ceil
        edges = [a + (b - a) * i // pieces for i in range(pieces + 1)]
        spans.extend(zip(edges[:-1], edges[1:]))
    return spans
