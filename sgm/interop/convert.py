"""State dicts between the official sgm layout and diffusers' StableVideoDiffusionPipeline components.

`to_diffusers` returns the components' state dicts plus `extras`: the sgm tensors diffusers has no
place for (the CLIP text-tower leftovers, the decoder half of the conditioning autoencoder, copies
that differ from their source). `to_sgm` takes them back, so sgm -> diffusers -> sgm gives the same
tensors, bit for bit.
"""
import logging
from collections import defaultdict
from typing import Dict, Optional, Tuple

import torch

from .keymap import rules, split_component, translate
from .layout import Layout

logger = logging.getLogger(__name__)

StateDict = Dict[str, torch.Tensor]
QKV = ".self_attn.qkv_proj."


def _is_vae_attention(dkey: str) -> bool:
    return dkey.startswith("vae.") and ".attentions.0.to_" in dkey and dkey.endswith(".weight")


def _to_diffusers_value(dkey: str, value: torch.Tensor) -> torch.Tensor:
    if _is_vae_attention(dkey):
        return value.reshape(value.shape[0], value.shape[1])  # 1x1 conv (C, C, 1, 1) -> linear (C, C)
    if dkey == "image_encoder.visual_projection.weight":
        return value.t().contiguous()  # open_clip's (width, D) matrix multiplies from the right
    return value


def _to_sgm_value(dkey: str, value: torch.Tensor) -> torch.Tensor:
    if _is_vae_attention(dkey):
        return value.reshape(*value.shape, 1, 1)
    if dkey == "image_encoder.visual_projection.weight":
        return value.t().contiguous()
    return value


def to_diffusers(state_dict: StateDict, layout: Layout) -> Tuple[Dict[str, StateDict], StateDict]:
    """({component: state dict}, extras) from a full sgm state dict."""
    table = rules(layout)
    flat: StateDict = {}
    extras: StateDict = {}
    for key, value in state_dict.items():
        targets = translate(key, table, to_diffusers=True)
        if not targets:
            extras[key] = value
            continue
        dkey = targets[0]
        converted = _to_diffusers_value(dkey, value)
        if dkey in flat:  # a copy (e.g. the first-stage encoder): kept only if it differs from the source
            if not torch.equal(flat[dkey], converted) or flat[dkey].dtype != converted.dtype:
                extras[key] = value
            continue
        flat[dkey] = converted
    _split_qkv(flat)
    components: Dict[str, StateDict] = defaultdict(dict)
    for dkey, value in flat.items():
        component, rest = split_component(dkey)
        components[component][rest] = value
    return dict(components), extras


def _split_qkv(flat: StateDict) -> None:
    for dkey in [k for k in flat if QKV in k]:
        head, tail = dkey.split(QKV)
        q, k, v = flat.pop(dkey).chunk(3, dim=0)
        for name, part in zip(("q_proj", "k_proj", "v_proj"), (q, k, v)):
            flat[f"{head}.self_attn.{name}.{tail}"] = part.contiguous()


def _merge_qkv(flat: StateDict) -> None:
    for qkey in [k for k in flat if ".self_attn.q_proj." in k and k.startswith("image_encoder.")]:
        head, tail = qkey.split(".self_attn.q_proj.")
        parts = [flat.pop(f"{head}.self_attn.{n}.{tail}") for n in ("q_proj", "k_proj", "v_proj")]
        flat[f"{head}{QKV}{tail}"] = torch.cat(parts, dim=0)


def to_sgm(components: Dict[str, StateDict], layout: Layout, extras: Optional[StateDict] = None) -> StateDict:
    """A full sgm state dict from diffusers components ({"unet": ..., "vae": ..., "image_encoder": ...})
    and the `extras` written next to them (if any). Diffusers keys without an sgm place are reported."""
    table = rules(layout)
    flat = {f"{c}.{k}": v for c, sd in components.items() for k, v in sd.items()}
    _merge_qkv(flat)
    out: StateDict = {}
    unplaced = []
    for dkey, value in flat.items():
        targets = translate(dkey, table, to_diffusers=False)
        if not targets:
            unplaced.append(dkey)
            continue
        for i, key in enumerate(targets):
            converted = _to_sgm_value(dkey, value)
            out[key] = converted if i == 0 else converted.clone()  # copies must not share storage on save
    out.update(extras or {})
    if unplaced:
        logger.warning("%d diffusers weight(s) have no place in the sgm layout (ignored), e.g. %s", len(unplaced),
                       ", ".join(sorted(unplaced)[:3]))
    return out
