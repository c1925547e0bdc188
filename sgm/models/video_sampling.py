"""The pieces of a video sampling run that are chosen per call: which sampler, the guider built
from the guidance options, and the (c, uc) pair guidance compares. `DiffusionEngine.sample_video`
puts them together."""
from typing import Dict, Mapping, Optional, Sequence, Tuple

from omegaconf import OmegaConf

from ..modules.diffusionmodules.guiders import LinearPredictionGuider, VanillaCFG
from ..util import get_obj_from_str, instantiate_from_config

_PREFIX = "sgm.modules.diffusionmodules.sampling."
SAMPLERS: Dict[str, str] = {
    "euler": _PREFIX + "EulerEDMSampler",           # SVD's default (deterministic ODE)
    "heun": _PREFIX + "HeunEDMSampler",             # 2nd order, ~2 network calls per step
    "euler_a": _PREFIX + "EulerAncestralSampler",   # stochastic
    "dpmpp_2s_a": _PREFIX + "DPMPP2SAncestralSampler",
    "dpmpp_2m": _PREFIX + "DPMPP2MSampler",
    "lms": _PREFIX + "LinearMultistepSampler",
    # few-step students of configs/distill/ (no guidance: it was distilled in)
    "consistency": "sgm.modules.diffusionmodules.consistency.ConsistencySampler",
}
SAMPLER_NAMES = tuple(SAMPLERS)
# Parameters that only one family of samplers accepts; dropped when switching family.
_FAMILY_PARAMS = ("s_churn", "s_tmin", "s_tmax", "s_noise", "eta", "order", "num_teacher_steps", "boundary_config")


def _plain(config: Mapping) -> Dict:
    return OmegaConf.to_container(OmegaConf.create(dict(config)), resolve=True)


def guider_config_for_call(guider_config: Optional[Mapping], num_frames: int, min_scale: Optional[float] = None,
                           max_scale: Optional[float] = None) -> Optional[Dict]:
    """The guider config with this call's frame count and scales (None keeps the config's).

    Per-frame guiders (LinearPredictionGuider and its triangle / trapezoid / spatiotemporal kinds)
    take `num_frames`, `min_scale` (the low end of their per-frame curve: the first frame of the
    linear ramp, both ends of a triangle or trapezoid) and `max_scale` (its high end). VanillaCFG
    takes `max_scale` as its one scale. Other guiders are used as configured.
    """
    if guider_config is None:
        return None
    cfg = _plain(guider_config)
    cls = get_obj_from_str(cfg["target"])
    params = dict(cfg.get("params") or {})
    if issubclass(cls, LinearPredictionGuider):
        params["num_frames"] = num_frames
        if min_scale is not None:
            params["min_scale"] = min_scale
        if max_scale is not None:
            params["max_scale"] = max_scale
    elif issubclass(cls, VanillaCFG) and max_scale is not None:
        params["scale"] = max_scale
    return {"target": cfg["target"], "params": params}


def sampler_config_for_call(sampler_config: Mapping, name: Optional[str] = None, num_frames: Optional[int] = None,
                            min_scale: Optional[float] = None, max_scale: Optional[float] = None) -> Dict:
    """`sampler_config` with the sampler `name` (a SAMPLERS name; None keeps the config's; switching
    family drops the other family's parameters) and its guider for `num_frames` and the scales."""
    cfg = _plain(sampler_config)
    params = dict(cfg.get("params") or {})
    target = cfg["target"]
    if name is not None:
        if name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLER_NAMES)}")
        if SAMPLERS[name] != target:
            params = {k: v for k, v in params.items() if k not in _FAMILY_PARAMS}
        target = SAMPLERS[name]
    if num_frames is not None and params.get("guider_config") is not None:
        params["guider_config"] = guider_config_for_call(params["guider_config"], num_frames, min_scale, max_scale)
    params["verbose"] = False
    return {"target": target, "params": params}


def build_sampler(sampler_config: Mapping, name: Optional[str] = None, num_frames: Optional[int] = None,
                  min_scale: Optional[float] = None, max_scale: Optional[float] = None):
    """A new sampler from `sampler_config_for_call` (nothing shared with other calls)."""
    return instantiate_from_config(sampler_config_for_call(sampler_config, name, num_frames, min_scale, max_scale))


def guidance_conditioning(conditioner, batch: Dict, uc_keys: Optional[Sequence[str]] = None) -> Tuple[Dict, Dict]:
    """(c, uc) for guided sampling, conditioning dropout off.

    uc_keys: input keys whose embeddings are zeroed in uc (SVD: the two conditioning-frame keys).
    None: the unconditional branch is what conditioning dropout taught the model: an embedder
    trained with `ucg_rate` > 0 gets its `legacy_ucg_value` as input (e.g. the empty caption) when
    it has one, else a zero embedding."""
    batch_uc = dict(batch)
    if uc_keys is None:
        uc_keys = []
        for e in conditioner.embedders:
            if e.ucg_rate <= 0 or e.input_key is None:
                continue
            if e.legacy_ucg_val is not None:
                batch_uc[e.input_key] = [e.legacy_ucg_val] * len(batch[e.input_key])
            else:
                uc_keys.append(e.input_key)
    return conditioner.get_unconditional_conditioning(batch, batch_uc=batch_uc, force_uc_zero_embeddings=list(uc_keys))
