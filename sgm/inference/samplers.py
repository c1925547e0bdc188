"""Sampler names accepted by `SamplingOptions.sampler` / `--sampler`, and building one from a model's
sampler config (same discretization and guider, another stepping rule)."""
from typing import Dict, Mapping

from omegaconf import OmegaConf

from ..util import instantiate_from_config

_PREFIX = "sgm.modules.diffusionmodules.sampling."
SAMPLERS: Dict[str, str] = {
    "euler": _PREFIX + "EulerEDMSampler",           # SVD's default (deterministic ODE)
    "heun": _PREFIX + "HeunEDMSampler",             # 2nd order, ~2 network calls per step
    "euler_a": _PREFIX + "EulerAncestralSampler",   # stochastic
    "dpmpp_2s_a": _PREFIX + "DPMPP2SAncestralSampler",
    "dpmpp_2m": _PREFIX + "DPMPP2MSampler",
    "lms": _PREFIX + "LinearMultistepSampler",
}
SAMPLER_NAMES = tuple(SAMPLERS)
# Parameters that only one family of samplers accepts; dropped when switching family.
_FAMILY_PARAMS = ("s_churn", "s_tmin", "s_tmax", "s_noise", "eta", "order")


def build_sampler(sampler_config: Mapping, name: str):
    """The sampler `name` with the discretization, guider and steps of `sampler_config`.

    The model's own sampler params are kept when `name` is the model's sampler.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLER_NAMES)}")
    cfg = OmegaConf.to_container(OmegaConf.create(dict(sampler_config)), resolve=True)
    params = dict(cfg.get("params", {}))
    if cfg.get("target") != SAMPLERS[name]:
        params = {k: v for k, v in params.items() if k not in _FAMILY_PARAMS}
    params["verbose"] = False
    return instantiate_from_config({"target": SAMPLERS[name], "params": params})
