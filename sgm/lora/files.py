"""LoRA adapter files: ours, and the key names diffusers/peft use, both ways.

Ours: `<layer>.lora_A.weight` / `<layer>.lora_B.weight` with layer names of `model.diffusion_model`
(e.g. input_blocks.1.1.time_stack.0.attn1.to_q) and metadata format=sgm-lora, rank, alpha, targets
(JSON list of the patterns). No base weight is ever written.
diffusers/peft: `unet.<diffusers layer>.lora_A.weight` / `.lora_B.weight` (layer names of
UNetSpatioTemporalConditionModel), metadata `lora_adapter_metadata` = JSON {r, lora_alpha,
target_modules}. Read also: without the `unet.` prefix, with peft's `base_model.model.` prefix or
adapter name (`lora_A.default.weight`), the older `lora.down`/`lora.up` names, and per-layer `.alpha`.
kohya (the names ComfyUI's LoRA loader reads): `lora_unet_<our layer name, dots as underscores>.lora_down.weight` (A),
`.lora_up.weight` (B) and `.alpha` (a scalar tensor) per layer.
"""
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

from .adapters import adapter_info, lora_state_dict, merge
from .layer import AdapterInfo, add_adapter_to_layer

logger = logging.getLogger(__name__)

FORMAT = "sgm-lora"
UNET = "model.diffusion_model."
KOHYA = "lora_unet_"


@dataclass
class LoraFile:
    """An adapter read from disk, in our layer names. weights: {<layer>.lora_A.weight: (r, in), ...}."""

    weights: Dict[str, torch.Tensor]
    rank: int
    alpha: float
    targets: List[str]


def write_lora(lora: LoraFile, path: str) -> None:
    """Write an adapter to `path` (.safetensors) in our format."""
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file({k: v.contiguous() for k, v in lora.weights.items()}, path,
              metadata={"format": FORMAT, "rank": str(lora.rank), "alpha": str(lora.alpha),
                        "targets": json.dumps(lora.targets)})


def save_lora(network: nn.Module, name: str, path: str) -> None:
    """Write adapter `name` of `network` to `path` (.safetensors) in our format."""
    info = adapter_info(network, name)
    weights = {k: v.clone() for k, v in lora_state_dict(network, name).items()}
    write_lora(LoraFile(weights=weights, rank=info.rank, alpha=info.alpha, targets=list(info.targets)), path)


def _unet_rules(network: nn.Module):
    from ..interop.keymap import unet_rules
    from ..interop.layout import layout_of_unet

    return list(unet_rules(layout_of_unet(network)))


def _normalise_foreign_key(key: str) -> Optional[str]:
    """`<diffusers layer>.lora_A.weight` / `.lora_B.weight` / `.alpha` from the names in circulation."""
    for prefix in ("base_model.model.", "unet."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    key = key.replace(".lora.down.weight", ".lora_A.weight").replace(".lora.up.weight", ".lora_B.weight")
    key = re.sub(r"\.(lora_[AB])\.[^.]+\.weight$", r".\1.weight", key)  # peft's adapter name
    return key if key.endswith((".lora_A.weight", ".lora_B.weight", ".alpha")) else None


def _from_diffusers(tensors: Dict[str, torch.Tensor], metadata: Dict[str, str], network: nn.Module) -> LoraFile:
    from ..interop.keymap import translate

    rules = _unet_rules(network)
    weights, alphas, skipped = {}, [], []
    for key, value in tensors.items():
        norm = _normalise_foreign_key(key)
        if norm is None:
            skipped.append(key)
            continue
        layer, _, suffix = norm.rpartition(".lora_") if ".lora_" in norm else (norm[:-len(".alpha")], "", "alpha")
        ours = translate("unet." + layer, rules, to_diffusers=False)
        if not ours:
            skipped.append(key)
            continue
        if suffix == "alpha":
            alphas.append(float(value))
            continue
        weights[ours[0][len(UNET):] + ".lora_" + suffix] = value
    if skipped:
        logger.warning("%d key(s) of the LoRA file have no place in this UNet (ignored), e.g. %s", len(skipped), skipped[0])
    if not weights:
        raise ValueError("the LoRA file holds no UNet adapter weights this model has (text-encoder LoRAs do not apply to SVD)")
    rank = next(v.shape[0] for k, v in weights.items() if k.endswith("lora_A.weight"))
    meta = json.loads(metadata.get("lora_adapter_metadata", "{}") or "{}")
    alpha = float(meta.get("lora_alpha", alphas[0] if alphas else rank))
    return LoraFile(weights=weights, rank=int(meta.get("r", rank)), alpha=alpha, targets=["(imported)"])


def _from_kohya(tensors: Dict[str, torch.Tensor], network: nn.Module) -> LoraFile:
    """Kohya names: the layer is our name with dots as underscores, which is unique among this network's
    linear layers (checked), so it is looked up rather than guessed."""
    linear = {n.replace(".", "_"): n for n, m in network.named_modules() if isinstance(m, nn.Linear)}
    if len(linear) != len({n for n, m in network.named_modules() if isinstance(m, nn.Linear)}):
        raise ValueError("two linear layers of this network have the same kohya name; load the adapter in our format")
    weights, alphas, skipped = {}, {}, []
    for key, value in tensors.items():
        base, _, suffix = key.partition(".")
        layer = linear.get(base[len(KOHYA):]) if base.startswith(KOHYA) else None
        if layer is None or suffix not in ("lora_down.weight", "lora_up.weight", "alpha"):
            skipped.append(key)
        elif suffix == "alpha":
            alphas[layer] = float(value)
        else:
            weights[f"{layer}.lora_{'A' if suffix == 'lora_down.weight' else 'B'}.weight"] = value
    if skipped:
        logger.warning("%d key(s) of the LoRA file have no place in this UNet (ignored), e.g. %s", len(skipped), skipped[0])
    if not weights:
        raise ValueError("the kohya LoRA file holds no adapter for a layer of this UNet (lora_unet_* names of another model?)")
    rank = next(v.shape[0] for k, v in weights.items() if k.endswith("lora_A.weight"))
    if len(set(alphas.values())) > 1:
        raise ValueError("the kohya LoRA file has a different alpha per layer; only one alpha per adapter is supported")
    return LoraFile(weights=weights, rank=rank, alpha=next(iter(alphas.values()), float(rank)), targets=["(imported)"])


def read_lora(path: str, network: nn.Module) -> LoraFile:
    """The adapter in `path` (ours, diffusers/peft or kohya names, see the module doc) in our layer names."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"LoRA file not found: {os.path.abspath(path)}")
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if metadata.get("format") == FORMAT:
        return LoraFile(weights=tensors, rank=int(metadata["rank"]), alpha=float(metadata["alpha"]),
                        targets=json.loads(metadata.get("targets", "[]")))
    if any(k.startswith(KOHYA) for k in tensors):
        return _from_kohya(tensors, network)
    return _from_diffusers(tensors, metadata, network)


def load_lora(network: nn.Module, path: str, name: Optional[str] = None, strength: float = 1.0,
              do_merge: bool = False) -> str:
    """Attach the adapter in `path` as `name` (default: the file's stem) at `strength`; merge it into
    the weights when `do_merge`. Returns the adapter's name."""
    name = name or os.path.splitext(os.path.basename(path))[0]
    lora = read_lora(path, network)
    modules = dict(network.named_modules())
    layers = sorted({k.rsplit(".lora_", 1)[0] for k in lora.weights})
    missing = [n for n in layers if not isinstance(modules.get(n), nn.Linear)]
    if missing:
        raise ValueError(f"{path}: {len(missing)} adapted layer(s) are not linear layers of this network, e.g. {missing[0]}; "
                         f"the LoRA was made for another model")
    with torch.no_grad():
        for n in layers:
            layer = modules[n]
            add_adapter_to_layer(layer, name, AdapterInfo(rank=lora.rank, alpha=lora.alpha, targets=lora.targets,
                                                          strength=float(strength)))
            layer.lora_A[name].weight.copy_(lora.weights[f"{n}.lora_A.weight"])
            layer.lora_B[name].weight.copy_(lora.weights[f"{n}.lora_B.weight"])
    if do_merge:
        merge(network, name)
    logger.info("lora %s: %d layers, rank %d, alpha %g, strength %g%s", name, len(layers), lora.rank, lora.alpha,
                strength, ", merged" if do_merge else "")
    return name


def export_diffusers(path: str, out: str, network: nn.Module) -> int:
    """Write the adapter file `path` with diffusers/peft key names to `out`; returns the tensor count."""
    from safetensors.torch import save_file

    from ..interop.keymap import translate

    lora = read_lora(path, network)
    rules = _unet_rules(network)
    tensors, modules = {}, set()
    for key, value in lora.weights.items():
        layer, _, suffix = key.rpartition(".lora_")
        theirs = translate(UNET + layer, rules, to_diffusers=True)
        if not theirs:
            raise ValueError(f"{path}: layer {layer} has no diffusers counterpart")
        tensors[f"{theirs[0]}.lora_{suffix}"] = value.contiguous()
        modules.add(theirs[0][len("unet."):])
    meta = {"r": lora.rank, "lora_alpha": lora.alpha, "target_modules": sorted(modules)}
    save_file(tensors, out, metadata={"format": "pt", "lora_adapter_metadata": json.dumps(meta)})
    return len(tensors)


def export_kohya(path: str, out: str, network: nn.Module) -> int:
    """Write the adapter file `path` with kohya names (`lora_unet_<layer with underscores>.lora_down.weight`,
    `.lora_up.weight`, `.alpha`), the LoRA names ComfyUI's loader maps onto a UNet with sgm's layer names, to
    `out`; returns the tensor count."""
    from safetensors.torch import save_file

    lora = read_lora(path, network)
    tensors = {}
    for key, value in lora.weights.items():
        layer, _, suffix = key.rpartition(".lora_")
        base = KOHYA + layer.replace(".", "_")
        tensors[f"{base}.{'lora_down' if suffix == 'A.weight' else 'lora_up'}.weight"] = value.contiguous()
        tensors[f"{base}.alpha"] = torch.tensor(float(lora.alpha))  # once per layer (A and B write the same)
    save_file(tensors, out, metadata={"ss_network_dim": str(lora.rank), "ss_network_alpha": str(lora.alpha)})
    return len(tensors)
