"""Low-rank adapters (LoRA, Hu et al. 2021) on the nn.Linear layers of a network, by name.

Each adapted layer keeps its own weight and name; the adapters live next to it as
`<layer>.lora_A.<adapter>.weight` (rank x in) and `<layer>.lora_B.<adapter>.weight` (out x rank), the
names peft uses, and a forward hook adds  strength * alpha / rank * B(A(x))  to the layer's output.
B starts at zero, so a new adapter leaves the network unchanged; several adapters add up. Merging
adds the same product into the weight (faster; the strength is then fixed until reloading).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

LORA_KEYS = ("lora_A", "lora_B")


@dataclass
class AdapterInfo:
    """rank: the adapter's inner size r. alpha: its scale numerator (the update is alpha / r * B A).
    targets: the patterns that chose its layers (recorded in the adapter file). strength: the
    multiplier applied now (0 turns it off exactly). merged: its product was added into the weights."""

    rank: int
    alpha: float
    targets: List[str]
    strength: float = 1.0
    merged: bool = False

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def _lora_hook(layer: nn.Linear, args, output: torch.Tensor) -> torch.Tensor:
    x = args[0]
    for name, info in layer.lora_info.items():
        if info.merged or info.strength == 0.0:
            continue
        delta = layer.lora_B[name](layer.lora_A[name](x.to(layer.lora_A[name].weight.dtype)))
        output = output + (info.strength * info.scale) * delta.to(output.dtype)
    return output


def add_adapter_to_layer(layer: nn.Linear, name: str, info: AdapterInfo, init_a: bool = True) -> None:
    """Give `layer` the adapter `name` (A random as nn.Linear's default init when `init_a`, B zero)."""
    if not hasattr(layer, "lora_A"):
        layer.lora_A, layer.lora_B = nn.ModuleDict(), nn.ModuleDict()
        layer.lora_info = {}  # adapter name -> AdapterInfo
        layer.register_forward_hook(_lora_hook)
        # A checkpoint of the base model has no adapter weights; loading one must not ask for them.
        layer.inference_unused_keys = list(LORA_KEYS)
    if name in layer.lora_A:
        raise ValueError(f"an adapter named {name!r} is already attached; unload it first or pick another name")
    w = layer.weight
    a = nn.Linear(layer.in_features, info.rank, bias=False, device=w.device, dtype=w.dtype)
    if not init_a:
        nn.init.zeros_(a.weight)
    b = nn.Linear(info.rank, layer.out_features, bias=False, device=w.device, dtype=w.dtype)
    nn.init.zeros_(b.weight)
    layer.lora_A[name], layer.lora_B[name] = a, b
    layer.lora_info[name] = info


def remove_adapter_from_layer(layer: nn.Linear, name: str) -> None:
    """Drop the adapter `name` (unmerged ones only; a merged product cannot be taken out exactly)."""
    if layer.lora_info[name].merged:
        raise ValueError(f"adapter {name!r} is merged into the weights; reload the model to remove it")
    del layer.lora_A[name], layer.lora_B[name], layer.lora_info[name]
    if not layer.lora_info:
        for key, hook in list(layer._forward_hooks.items()):
            if hook is _lora_hook:
                del layer._forward_hooks[key]
        for attr in ("lora_A", "lora_B", "lora_info", "inference_unused_keys"):
            delattr(layer, attr)


@torch.no_grad()
def merge_layer(layer: nn.Linear, name: str) -> None:
    """Add strength * scale * B @ A into the layer's weight (computed in float32)."""
    info = layer.lora_info[name]
    if info.merged:
        return
    delta = layer.lora_B[name].weight.float() @ layer.lora_A[name].weight.float()  # (out, in)
    if info.strength != 0.0:
        layer.weight.add_((info.strength * info.scale * delta).to(layer.weight.dtype))
    info.merged = True


def adapted_layers(network: nn.Module, name: Optional[str] = None) -> Dict[str, nn.Linear]:
    """{layer name: layer} of every layer carrying adapter `name` (any adapter when None)."""
    return {n: m for n, m in network.named_modules()
            if hasattr(m, "lora_info") and (name is None or name in m.lora_info)}
