"""The per-video unit of work: probe, detect cuts, split into clips and score every clip.

`analyze_video` is what a process pool, a Slurm array task or a Ray Data `map` calls; it returns a JSON-able
record and never raises for a bad video (the record then has `status: "error"` and the reason).
"""
import logging
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from .config import CurationConfig
from .cuts import split_at_cuts
from .motion import frame_difference, motion_score
from .probe import VideoReadError
from .records import clip_id, video_id
from .scan import ScanResult, decode_jpeg_rgb, scan_video
from .text import text_area_fraction

__all__ = ["analyze_video"]

logger = logging.getLogger(__name__)

# Heavy per-process helpers (CLIP model, captioner), built once per worker process and settings.
_CACHE: Dict[str, object] = {}


def _evenly(items: list, count: int) -> list:
    """`count` items spread evenly over `items` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def _clip_scorer(cfg: CurationConfig):
    if not cfg.clip.weights:
        return None
    key = f"clip:{cfg.clip}"
    if key not in _CACHE:
        from .clip_scores import ClipScorer

        _CACHE[key] = ClipScorer(cfg.clip)
    return _CACHE[key]


def _captioner(cfg: CurationConfig):
    if not cfg.caption.captioner:
        return None
    key = f"caption:{cfg.caption.captioner}"
    if key not in _CACHE:
        from .captions import load_captioner

        _CACHE[key] = load_captioner(cfg.caption.captioner)
    return _CACHE[key]


def _score_clip(scan: ScanResult, start: int, end: int, base_caption: Optional[str], cfg: CurationConfig) -> dict:
    fps = scan.info.fps
    samples = [s for s in scan.samples if start <= s.index < end]
    greys, indices = [s.grey for s in samples], [s.index for s in samples]
    scores = {
        "motion_score": motion_score(greys, indices, fps, cfg.motion, [s.next_grey for s in samples]),
        "frame_diff": frame_difference(greys),
        "text_area": max((text_area_fraction(decode_jpeg_rgb(s.jpeg), cfg.text)
                          for s in _evenly(samples, cfg.text.frames_per_clip)), default=None),
    }
    caption = base_caption
    if caption is None and samples and _captioner(cfg) is not None:
        from PIL import Image

        frames = [Image.fromarray(decode_jpeg_rgb(s.jpeg)) for s in _evenly(samples, cfg.caption.frames)]
        caption = str(_captioner(cfg)(frames)).strip()
    scorer = _clip_scorer(cfg)
    if scorer is not None and samples:
        middle = samples[len(samples) // 2]
        scores.update(scorer.scores([decode_jpeg_rgb(middle.jpeg)], caption or ""))
    return {
        "start_frame": start,
        "end_frame": end,
        "num_frames": end - start,
        "start_time": start / fps,
        "duration": (end - start) / fps,
        "num_samples": len(samples),
        "scores": scores,
        "caption": caption or "",
    }


def analyze_video(path: Union[str, Path], cfg: CurationConfig) -> dict:
    """The analysis record of one video: its probe facts and one entry per clip with every score."""
    from .captions import sidecar_caption

    path = Path(path).resolve()
    vid = video_id(path)
    record = {"video_id": vid, "path": str(path), "fingerprint": cfg.analysis_fingerprint()}
    _clip_scorer(cfg), _captioner(cfg)  # settings errors (a missing checkpoint, a bad captioner) stop the run here
    try:
        scan = scan_video(path, cfg.decode, cfg.cuts, cfg.motion)
        base_caption = sidecar_caption(path) if cfg.caption.sidecar else None
        clips: List[dict] = []
        max_frames = None
        if cfg.cuts.max_clip_seconds is not None:
            max_frames = max(1, int(cfg.cuts.max_clip_seconds * scan.info.fps))
        for index, (start, end) in enumerate(split_at_cuts(scan.info.num_frames, scan.cuts, max_frames)):
            clips.append({"clip_id": clip_id(vid, index), **_score_clip(scan, start, end, base_caption, cfg)})
    except VideoReadError as e:
        logger.warning("skipping unreadable video %s: %s", path, e)
        return {**record, "status": "error", "error": str(e), "clips": []}
    except Exception as e:  # one odd video (or a captioner failing on it) must not stop a long run
        logger.exception("skipping video %s after an unexpected error", path)
        return {**record, "status": "error", "error": f"unexpected {type(e).__name__}: {e}", "clips": []}
    if scan.truncated:
        logger.warning("%s: %s; keeping the %d frames before it", path, scan.truncated, scan.info.num_frames)
        record["truncated"] = scan.truncated
    return {**record, "status": "ok", "info": scan.info.to_dict(), "cuts": scan.cuts, "clips": clips}
