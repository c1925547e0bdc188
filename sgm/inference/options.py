"""Sampling options and how unset (None) options are filled from a model's `sampling:` defaults."""
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from .samplers import SAMPLER_NAMES, SAMPLERS

# Options that a config's `sampling:` section (or the model's sampler/guider config) may default.
DEFAULTED = ("num_frames", "num_steps", "fps_id", "motion_bucket_id", "cond_aug", "decoding_t", "height",
             "width", "min_cfg", "max_cfg", "sampler", "decoding_overlap")
# Used when neither the options nor the config say anything.
FALLBACKS = {"num_frames": 14, "num_steps": 25, "fps_id": 6, "motion_bucket_id": 127, "cond_aug": 0.02,
             "decoding_t": 14, "height": 576, "width": 1024, "min_cfg": 1.0, "max_cfg": 2.5, "sampler": "euler",
             "decoding_overlap": 4}  # measured: docs/sampling.md, "Decoding in chunks"


@dataclass
class SamplingOptions:
    """Everything that controls one generated video; None means "the pipeline's default".

    num_frames: frames T of the video. num_steps: sampler steps. fps_id: frame-rate conditioning;
    the video is written at fps_id + 1 frames per second (NOTE: SVD conditions on fps - 1).
    motion_bucket_id: motion conditioning, 0..255 (more motion when higher). cond_aug: noise level
    added to the conditioning frame (more freedom from the input when higher). seed: base seed;
    each image and video index derives its own seed from it (see `sgm.inference.seeds`).
    decoding_t: frames decoded per VAE call (lower: less memory). decoding_overlap: frames of
    temporal context each decoding chunk adds on each side of the frames it keeps (see
    `sgm.inference.decoding`). height, width: output size in pixels (multiples of 64).
    min_cfg, max_cfg: the low and high end of the guider's per-frame guidance scale: on the first
    and last frame for the linear guider (SVD's), at both ends and in the middle for the triangle
    and trapezoid guiders; a VanillaCFG model uses max_cfg as its one scale. sampler: a name from
    `sgm.inference.samplers.SAMPLER_NAMES`. crop_offset: (x, y) in [0, 1] placing the crop after
    resizing the image to cover the target: 0 left/top, 0.5 centre, 1 right/bottom.
    total_frames: frames of the whole video; above num_frames the video is made of chained clips
    (`sgm.inference.chaining`), below it is the first total_frames frames of one clip; None: one
    clip. chain_overlap: frames each chained clip shares with the previous one, 1..num_frames-1
    (None: num_frames // 4, at least 1). color_match: hold each chained clip's latent colour
    statistics to the first clip's.
    """

    num_frames: Optional[int] = None
    num_steps: Optional[int] = None
    fps_id: Optional[int] = None
    motion_bucket_id: Optional[int] = None
    cond_aug: Optional[float] = None
    seed: int = 23
    decoding_t: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    min_cfg: Optional[float] = None
    max_cfg: Optional[float] = None
    sampler: Optional[str] = None
    crop_offset: Tuple[float, float] = (0.5, 0.5)
    decoding_overlap: Optional[int] = None
    total_frames: Optional[int] = None
    chain_overlap: Optional[int] = None
    color_match: bool = False

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["crop_offset"] = list(self.crop_offset)
        return d

    def filled(self, defaults: "SamplingOptions") -> "SamplingOptions":
        """A copy with every None replaced by the value in `defaults`, then validated."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in DEFAULTED:
            if values[name] is None:
                values[name] = getattr(defaults, name)
        opts = SamplingOptions(**values)
        opts.validate()
        return opts

    def validate(self) -> None:
        """Raise ValueError naming the option and its valid range."""
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.num_frames is None or self.num_frames >= 1, f"num_frames must be >= 1, got {self.num_frames}")
        need(self.num_steps is None or self.num_steps >= 1, f"num_steps must be >= 1, got {self.num_steps}")
        need(self.fps_id is None or self.fps_id >= 0, f"fps_id must be >= 0 (the video plays at fps_id + 1), got {self.fps_id}")
        need(self.motion_bucket_id is None or 0 <= self.motion_bucket_id <= 255,
             f"motion_bucket_id must be in 0..255, got {self.motion_bucket_id}")
        need(self.cond_aug is None or self.cond_aug >= 0, f"cond_aug must be >= 0, got {self.cond_aug}")
        need(self.decoding_t is None or self.decoding_t >= 1, f"decoding_t must be >= 1, got {self.decoding_t}")
        need(self.decoding_overlap is None or self.decoding_overlap >= 0,
             f"decoding_overlap must be >= 0, got {self.decoding_overlap}")
        need(self.total_frames is None or self.total_frames >= 1, f"total_frames must be >= 1, got {self.total_frames}")
        need(self.chain_overlap is None or self.chain_overlap >= 1,
             f"chain_overlap must be >= 1 (frames each clip shares with the previous one), got {self.chain_overlap}")
        chained = None not in (self.total_frames, self.num_frames) and self.total_frames > self.num_frames
        need(not chained or self.num_frames >= 2, f"chaining clips (total_frames={self.total_frames} > num_frames="
             f"{self.num_frames}) needs num_frames >= 2")
        need(not chained or self.chain_overlap is None or self.chain_overlap < self.num_frames,
             f"chain_overlap must be below num_frames={self.num_frames} (each clip must add frames), "
             f"got {self.chain_overlap}")
        for name in ("height", "width"):
            v = getattr(self, name)
            # 32: the toy models (f4 autoencoder, 3 UNet downsamplings); SVD's sizes are multiples of 64
            need(v is None or (v >= 32 and v % 32 == 0), f"{name} must be a positive multiple of 32, got {v}")
        need(self.sampler is None or self.sampler in SAMPLER_NAMES,
             f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLER_NAMES)}")
        need(len(tuple(self.crop_offset)) == 2 and all(0.0 <= float(c) <= 1.0 for c in self.crop_offset),
             f"crop_offset must be two numbers (x, y) in [0, 1], got {self.crop_offset}")


def sampler_name(target: Optional[str]) -> Optional[str]:
    """The SAMPLERS name of a sampler class path (None when it has none)."""
    return next((name for name, path in SAMPLERS.items() if path == target), None)


def defaults_from_config(cfg: Mapping) -> SamplingOptions:
    """SamplingOptions from a full config: its `sampling:` section, then the model's sampler (its
    kind, steps) and guider params (guidance scales, frames), then FALLBACKS."""
    section = dict(cfg.get("sampling", {}) or {})
    values: Dict[str, Any] = {}
    sampler_cfg = (cfg.get("model", {}).get("params", {}) or {}).get("sampler_config") or {}
    sampler_params = sampler_cfg.get("params", {}) or {}
    guider_params = (sampler_params.get("guider_config") or {}).get("params", {}) or {}
    scale = guider_params.get("scale")  # VanillaCFG: one scale, used as max_cfg (min_cfg has no role there)
    from_model = {"num_steps": sampler_params.get("num_steps"), "min_cfg": guider_params.get("min_scale", scale),
                  "max_cfg": guider_params.get("max_scale", scale), "num_frames": guider_params.get("num_frames"),
                  "sampler": sampler_name(sampler_cfg.get("target"))}
    for name in DEFAULTED:
        value = section.get(name)
        if value is None:
            value = from_model.get(name)
        values[name] = FALLBACKS[name] if value is None else value
    opts = SamplingOptions(**values)
    opts.validate()
    return opts
