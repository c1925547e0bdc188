"""The curation settings: one dataclass per stage, loaded from YAML (configs/curation/default.yaml).

Every threshold lives here. Analysis settings (`decode`, `cuts`, `motion`, `text`, `clip`, `caption`) decide
what is *measured*; their fingerprint is stored in each per-video record, so a changed measurement setting
re-analyses a video on the next run. `filters`, `buckets` and `output` only decide what is *kept and written*,
so `curate.py shard` can change them without recomputing anything.
"""
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

# Bumped when the analysis code measures differently, so older records are redone: 2 = frames turned upright,
# cut-short videos kept up to the damage; 3 = text lines no longer joined by long vertical edges.
ANALYSIS_VERSION = 3

__all__ = [
    "DecodeConfig", "CutConfig", "MotionConfig", "TextConfig", "ClipScoreConfig", "CaptionConfig",
    "FilterConfig", "BucketConfig", "OutputConfig", "CurationConfig", "load_config",
]


@dataclass
class DecodeConfig:
    """How frames are sampled during the single decoding pass of analysis.

    Args:
        detect_width: frames are downscaled to this width (aspect kept) before cut detection.
        sample_fps: rate at which frames are kept for motion, text and CLIP analysis (about 2 fps, as in the
            SVD paper's optical-flow scoring).
        analysis_width: width of the colour frames kept for text detection, CLIP and captions.
        jpeg_quality: the kept colour frames are held JPEG-compressed in memory at this quality (0-100), so a
            long video costs tens of kB per sampled frame rather than a raw frame.
        threads: decoder threads per worker process (0: FFmpeg's choice, frame + slice threading); 1 suits
            as many workers as cores, 0 suits few workers.
    """

    detect_width: int = 256
    sample_fps: float = 2.0
    analysis_width: int = 384
    jpeg_quality: int = 92
    threads: int = 1


@dataclass
class CutConfig:
    """Scene-cut detection with PySceneDetect; a detector set to null is off.

    Args:
        content: `ContentDetector` params (hard cuts: HSV/edge change between consecutive frames), e.g.
            `{threshold: 27.0}`.
        threshold: `ThresholdDetector` params (fades to and from black: mean brightness crossing `threshold`),
            e.g. `{threshold: 12.0, fade_bias: 0.0}`.
        adaptive: `AdaptiveDetector` params (hard cuts judged against a rolling average; more robust to fast
            camera motion than `content`), e.g. `{adaptive_threshold: 3.0}`.
        min_scene_len: minimum clip length in frames; given to every detector and used to merge cuts of
            different detectors that are closer than this.
        max_clip_seconds: scenes longer than this are split into equal pieces no longer than it, so each
            piece is scored (and kept or dropped) on its own; null keeps whole scenes.
    """

    content: Optional[Dict[str, Any]] = field(default_factory=lambda: {"threshold": 27.0})
    threshold: Optional[Dict[str, Any]] = field(default_factory=lambda: {"threshold": 12.0, "fade_bias": 0.0})
    adaptive: Optional[Dict[str, Any]] = None
    min_scene_len: int = 15
    max_clip_seconds: Optional[float] = None


@dataclass
class MotionConfig:
    """Dense optical flow (OpenCV Farnebäck) between consecutive sampled frames of a clip.

    Args:
        flow_width: sampled frames are downscaled to this width (grey) before computing flow.
        pyr_scale, levels, winsize, iterations, poly_n, poly_sigma: `cv2.calcOpticalFlowFarneback` params.
    """

    flow_width: int = 128
    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2


@dataclass
class TextConfig:
    """Text-area estimate (morphological gradient + connected components) on a few frames per clip.

    Args:
        frames_per_clip: how many sampled frames (evenly spread over the clip) are checked; the clip's
            `text_area` is the largest fraction found.
        min_char_height: smallest text-line height, as a fraction of the frame height.
        max_char_height: largest text-line height, as a fraction of the frame height.
        min_aspect: smallest width/height ratio of a text-line box.
        min_fill: smallest fraction of a box covered by gradient pixels.
        min_contrast: smallest grey-level gradient (0-255) counted as a stroke edge.
        min_edge_balance: smallest ratio (0-1) of the weaker to the stronger edge direction (Sobel x vs y)
            inside a box; text has both (about 0.7 and more), stripes and fences nearly one (below 0.3).
    """

    frames_per_clip: int = 3
    min_char_height: float = 0.015
    max_char_height: float = 0.2
    min_aspect: float = 1.5
    min_fill: float = 0.45
    min_contrast: int = 40
    min_edge_balance: float = 0.4


@dataclass
class ClipScoreConfig:
    """Optional CLIP scores; skipped unless `weights` is given. Nothing is ever downloaded.

    Args:
        model: an open_clip model name (e.g. `ViT-L-14`) or a path to an open_clip model-config JSON.
        weights: local open_clip checkpoint for `model`; null turns CLIP scoring off.
        aesthetic_head: optional local linear head on the L2-normalised image embedding (a torch state dict or
            `.npz` holding one `weight` (1, D) and one `bias` (1,)), e.g. the LAION aesthetic predictor.
        device: torch device for the CLIP model.
    """

    model: str = "ViT-L-14"
    weights: Optional[str] = None
    aesthetic_head: Optional[str] = None
    device: str = "cpu"


@dataclass
class CaptionConfig:
    """Where captions come from (first match wins).

    Args:
        sidecar: use `<video>.txt` next to a video as the caption of all its clips when it exists.
        captioner: optional `module:function` or `path/to/file.py:function`; called with the clip's middle
            frame(s) as a list of RGB `PIL.Image`s, returns the caption string.
        frames: how many frames (evenly spread over the clip) the captioner gets.
    """

    sidecar: bool = True
    captioner: Optional[str] = None
    frames: int = 1


@dataclass
class FilterConfig:
    """Keep/drop thresholds applied to the stored scores; null disables a bound.

    Args:
        min_duration, max_duration: clip duration bounds in seconds.
        min_motion, max_motion: bounds on `motion_score` (mean optical-flow magnitude in frame widths per second).
        min_frame_diff: clips whose mean absolute grey-level change between sampled frames (0-255) is below
            this are static (still images, frozen frames, slides).
        max_text_area: clips with a larger fraction of frame area covered by text-like boxes are dropped.
        min_aesthetic: lower bound on the CLIP aesthetic score (only when CLIP scoring ran).
        min_clip_similarity: lower bound on the CLIP image-caption cosine similarity (only when it ran).
    """

    min_duration: Optional[float] = 2.0
    max_duration: Optional[float] = None
    min_motion: Optional[float] = 0.005
    max_motion: Optional[float] = 2.0
    min_frame_diff: Optional[float] = 0.5
    max_text_area: Optional[float] = 0.1
    min_aesthetic: Optional[float] = None
    min_clip_similarity: Optional[float] = None


@dataclass
class BucketConfig:
    """How `motion_score` becomes `motion_bucket_id` (0-255); the fitted mapping is saved as JSON.

    Args:
        method: `quantile` (fit on the kept clips: every bucket gets about the same number of clips),
            `linear` (`round(score * scale)`, the rule of `sgm.data.motion`) or `log` (log-linear between
            `log_min` and `log_max`).
        scale: the `linear` factor.
        log_min, log_max: the scores mapped to buckets 0 and 255 by `log`.
    """

    method: str = "quantile"
    scale: float = 127.0
    log_min: float = 0.001
    log_max: float = 2.0


@dataclass
class OutputConfig:
    """Shards and clip encoding.

    Args:
        shard_size: maximum number of clips per shard.
        shard_max_bytes: a shard is closed once it holds more than this many bytes (null: no byte limit).
        max_short_side: clips are downscaled so their short side is at most this (null: source size);
            sizes are always rounded down to even numbers (yuv420p).
        crf: x264 constant rate factor of the re-encoded clips.
        preset: x264 preset.
    """

    shard_size: int = 1000
    shard_max_bytes: Optional[int] = 1_000_000_000
    max_short_side: Optional[int] = None
    crf: int = 20
    preset: str = "veryfast"


@dataclass
class CurationConfig:
    """All curation settings. `workers` is the process count (0 runs everything in this process)."""

    decode: DecodeConfig = field(default_factory=DecodeConfig)
    cuts: CutConfig = field(default_factory=CutConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    clip: ClipScoreConfig = field(default_factory=ClipScoreConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    buckets: BucketConfig = field(default_factory=BucketConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    workers: int = 2

    def analysis_fingerprint(self) -> str:
        """A short hash of the settings that change measured scores (not the filters or output)."""
        parts = {k: dataclasses.asdict(getattr(self, k)) for k in ("decode", "cuts", "motion", "text", "clip", "caption")}
        parts["analysis_version"] = ANALYSIS_VERSION
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: Optional[Union[str, Path]] = None, overrides: Sequence[str] = ()) -> CurationConfig:
    """The defaults, updated by the YAML file at `path` and then by `key.sub=value` overrides.

    Raises ValueError naming the key when the file or an override holds an unknown key or a wrong type.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base = OmegaConf.structured(CurationConfig)
    try:
        if path is not None:
            if not Path(path).is_file():
                raise ValueError(f"curation config {path} does not exist")
            base = OmegaConf.merge(base, OmegaConf.load(path))
        if overrides:
            base = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as e:
        raise ValueError(f"invalid curation config: {e}") from None
    cfg: CurationConfig = OmegaConf.to_object(base)
    # OmegaConf hands back DictConfig-free dataclasses; detector params are plain dicts.
    _validate(cfg)
    return cfg


def _validate(cfg: CurationConfig) -> None:
    if cfg.decode.sample_fps <= 0:
        raise ValueError(f"decode.sample_fps must be positive, got {cfg.decode.sample_fps}")
    for name in ("detect_width", "analysis_width"):
        if getattr(cfg.decode, name) < 16:
            raise ValueError(f"decode.{name} must be at least 16 pixels, got {getattr(cfg.decode, name)}")
    if cfg.motion.flow_width < 16:
        raise ValueError(f"motion.flow_width must be at least 16 pixels, got {cfg.motion.flow_width}")
    if cfg.cuts.min_scene_len < 1:
        raise ValueError(f"cuts.min_scene_len must be >= 1 frame, got {cfg.cuts.min_scene_len}")
    if cfg.cuts.max_clip_seconds is not None and cfg.cuts.max_clip_seconds <= 0:
        raise ValueError(f"cuts.max_clip_seconds must be positive or null, got {cfg.cuts.max_clip_seconds}")
    if cfg.buckets.method not in ("quantile", "linear", "log"):
        raise ValueError(f"buckets.method must be quantile, linear or log, got {cfg.buckets.method!r}")
    if cfg.output.shard_size < 1:
        raise ValueError(f"output.shard_size must be >= 1, got {cfg.output.shard_size}")
    if cfg.workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = in this process), got {cfg.workers}")
    if cfg.clip.aesthetic_head and not cfg.clip.weights:
        raise ValueError("clip.aesthetic_head needs clip.weights (the open_clip checkpoint the head was trained on)")
