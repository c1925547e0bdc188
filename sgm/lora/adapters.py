"""Adding, weighting, merging and removing named LoRA adapters on a network (the video UNet,
`model.diffusion_model`)."""
import logging
from typing import Dict, List, Optional

import torch
from torch import nn

from .layer import AdapterInfo, adapted_layers, add_adapter_to_layer, merge_layer, remove_adapter_from_layer
from .targets import Targets, find_targets, target_patterns

logger = logging.getLogger(__name__)


def add_lora(network: nn.Module, name: str = "default", rank: int = 16, alpha: Optional[float] = None,
             targets: Targets = "temporal", strength: float = 1.0) -> List[str]:
    """Attach a new adapter `name` to the layers `targets` chooses (see sgm.lora.targets); returns
    their names. rank: inner size r. alpha: scale numerator (default r, i.e. scale 1). The adapter
    starts as a no-op (B = 0)."""
    if rank < 1:
        raise ValueError(f"lora rank must be >= 1, got {rank}")
    layers = find_targets(network, targets)
    patterns = target_patterns(targets)
    for layer in layers.values():
        add_adapter_to_layer(layer, name, AdapterInfo(rank=rank, alpha=float(alpha if alpha is not None else rank),
                                                      targets=patterns, strength=strength))
    logger.info("lora %r: rank %d on %d layers (%s)", name, rank, len(layers), ", ".join(patterns))
    return list(layers)


def adapter_names(network: nn.Module) -> List[str]:
    names = []
    for layer in adapted_layers(network).values():
        names += [n for n in layer.lora_info if n not in names]
    return names


def _layers(network: nn.Module, name: str) -> Dict[str, nn.Linear]:
    layers = adapted_layers(network, name)
    if not layers:
        raise ValueError(f"no lora adapter named {name!r}; loaded: {adapter_names(network) or 'none'}")
    return layers


def set_strength(network: nn.Module, name: str, strength: float) -> None:
    """Weight of adapter `name` from now on (0: off, exactly the base network). Unmerged adapters only."""
    for layer in _layers(network, name).values():
        if layer.lora_info[name].merged:
            raise ValueError(f"lora {name!r} is merged into the weights; load it unmerged (merge=False) to change strength")
        layer.lora_info[name].strength = float(strength)


def merge(network: nn.Module, name: str) -> None:
    """Add adapter `name` into the weights at its current strength: no extra work per step afterwards."""
    for layer in _layers(network, name).values():
        merge_layer(layer, name)


def remove_lora(network: nn.Module, name: str) -> None:
    """Detach adapter `name` (unmerged only)."""
    for layer in _layers(network, name).values():
        remove_adapter_from_layer(layer, name)


def lora_state_dict(network: nn.Module, name: str) -> Dict[str, torch.Tensor]:
    """{<layer>.lora_A.weight, <layer>.lora_B.weight} of adapter `name`: the adapter alone, no base weight."""
    out = {}
    for layer_name, layer in _layers(network, name).items():
        out[f"{layer_name}.lora_A.weight"] = layer.lora_A[name].weight.detach()
        out[f"{layer_name}.lora_B.weight"] = layer.lora_B[name].weight.detach()
    return out


def adapter_info(network: nn.Module, name: str) -> AdapterInfo:
    return next(iter(_layers(network, name).values())).lora_info[name]
