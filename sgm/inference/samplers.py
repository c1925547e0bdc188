"""Sampler names accepted by `SamplingOptions.sampler` / `--sampler` (defined in the model layer,
`sgm.models.video_sampling`, where a sampler for a call is built)."""
from ..models.video_sampling import SAMPLER_NAMES, SAMPLERS, build_sampler

__all__ = ["SAMPLERS", "SAMPLER_NAMES", "build_sampler"]
