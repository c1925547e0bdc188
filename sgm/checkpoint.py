"""Reading checkpoints (.safetensors, .ckpt, .pt) and loading them into models, including models built
on the meta device (the weights are assigned, never copied twice)."""
import logging
import os
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

StateDict = Dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint cannot be used with this model; the message says why and what to do."""


def read_state_dict(path: str, device: Union[str, torch.device] = "cpu") -> StateDict:
    """The state dict in `path`: a .safetensors file, a torch pickle (.ckpt/.pt/.pth/.bin, loaded
    with weights_only=True; a Lightning checkpoint's 'state_dict' entry is unwrapped) or a diffusers
    StableVideoDiffusionPipeline folder (converted to the official layout, see sgm.interop)."""
    if os.path.isdir(path):
        from .interop import is_diffusers_folder, read_diffusers_folder

        if not is_diffusers_folder(path):
            raise CheckpointError(f"{path} is a folder but not a diffusers pipeline folder (no model_index.json); "
                                  f"give a .safetensors/.ckpt file or a StableVideoDiffusionPipeline folder")
        return {k: v.to(device) for k, v in read_diffusers_folder(path).items()}
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {os.path.abspath(path)}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path, device=str(device))
        except Exception as e:  # noqa: BLE001 - SafetensorError and OSError for a damaged or partial file
            raise CheckpointError(f"could not read {path} as a .safetensors file ({type(e).__name__}: {e}); the file is "
                                  f"probably incomplete or damaged: download it again and compare its size") from e
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with what to do
        raise CheckpointError(f"could not read {path} as a torch checkpoint ({type(e).__name__}: {e}); "
                              f"use a .safetensors file or a .ckpt/.pt saved by torch.save") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return obj


def key_group(key: str) -> str:
    """A readable group for a state-dict key, e.g. 'conditioner.embedders.3' or 'model.diffusion_model'."""
    parts = key.split(".")
    depth = 3 if parts[0] == "conditioner" else 2
    return ".".join(parts[:depth])


def summarize_keys(keys: Iterable[str], limit: int = 3) -> str:
    groups: Dict[str, List[str]] = defaultdict(list)
    for k in keys:
        groups[key_group(k)].append(k)
    lines = []
    for group, ks in sorted(groups.items()):
        sample = ", ".join(ks[:limit]) + (", ..." if len(ks) > limit else "")
        lines.append(f"  {group}: {len(ks)} key(s) ({sample})")
    return "\n".join(lines)


def inference_unused_keys(model: nn.Module) -> List[str]:
    """Absolute state-dict key prefixes that the model's forward pass never reads (declared by its
    submodules through `inference_unused_keys`)."""
    prefixes = []
    for name, module in model.named_modules():
        for rel in getattr(module, "inference_unused_keys", ()) or ():
            prefixes.append(f"{name}.{rel}" if name else rel)
    return prefixes


def _has_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))


def _materialize_meta_(model: nn.Module, device: torch.device) -> List[str]:
    """Replace parameters and buffers still on the meta device by zeros on `device`; return their names."""
    filled = []
    for mod_name, module in model.named_modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if p.is_meta:
                setattr(module, name, nn.Parameter(torch.zeros(p.shape, dtype=p.dtype, device=device), requires_grad=p.requires_grad))
                filled.append(f"{mod_name}.{name}" if mod_name else name)
        for name, b in list(module.named_buffers(recurse=False)):
            if b is not None and b.is_meta:
                module._buffers[name] = torch.zeros(b.shape, dtype=b.dtype, device=device)
                filled.append(f"{mod_name}.{name}" if mod_name else name)
    return filled


def load_checkpoint(model: nn.Module, source: Union[str, StateDict], dtype: Optional[torch.dtype] = None,
                    device: Union[str, torch.device] = "cpu", strict_unused: bool = False) -> Tuple[List[str], List[str]]:
    """Load `source` (a path or a state dict) into `model`; returns (missing, unexpected) keys.

    dtype: cast floating-point weights to it (default: the dtype the model was built with, so an fp16
    file fills an fp32 model and the reverse). device: where tensors are read to. A model with
    parameters on the meta device gets the loaded tensors assigned (no second copy).

    Missing keys that the forward pass reads raise CheckpointError; missing keys it never reads (the
    CLIP text-tower leftovers, the conditioning autoencoder's decoder) are only reported, and on
    the meta device filled with zeros, unless `strict_unused`. Unexpected keys are reported.
    """
    path = source if isinstance(source, str) else None
    state_dict = read_state_dict(source, device=device) if isinstance(source, str) else source
    expected = model.state_dict()
    on_meta = _has_meta(model)

    converted = {}
    owned = isinstance(source, str)  # a dict we read ourselves can be emptied as we go, to keep one copy
    loaded_keys = set(state_dict)
    for key in list(state_dict):
        value = state_dict.pop(key) if owned else state_dict[key]
        target = expected.get(key)
        if target is None:
            continue
        if tuple(value.shape) != tuple(target.shape):
            raise CheckpointError(f"{path or 'state dict'}: {key} has shape {tuple(value.shape)} but the model expects "
                                  f"{tuple(target.shape)}; the checkpoint belongs to a different model config")
        want = dtype or target.dtype
        converted[key] = value.to(want) if value.is_floating_point() and value.dtype != want else value

    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(loaded_keys - set(expected))
    unused = tuple(inference_unused_keys(model))
    needed = [k for k in missing if not k.startswith(unused)] if unused else missing
    if needed or (strict_unused and missing):
        keys = missing if strict_unused else needed
        raise CheckpointError(f"{path or 'state dict'} lacks {len(keys)} weight(s) that the model uses:\n{summarize_keys(keys)}\n"
                              f"Check that the config matches the checkpoint (e.g. svd vs. svd_image_decoder).")
    result = model.load_state_dict(converted, strict=False, assign=on_meta)
    if on_meta:
        filled = _materialize_meta_(model, torch.device(device))
        if filled:
            logger.info("filled %d unused weight(s) absent from the checkpoint with zeros", len(filled))
    if missing:
        logger.info("checkpoint %s has no entries for %d weight(s) the forward pass does not use:\n%s",
                    path or "", len(missing), summarize_keys(missing))
    if unexpected:
        logger.warning("checkpoint %s has %d key(s) this model does not have (ignored):\n%s",
                       path or "", len(unexpected), summarize_keys(unexpected))
    assert not result.unexpected_keys
    return missing, unexpected
