"""Which layers of the video UNet get adapters: presets or regular expressions over layer names in
`model.diffusion_model`. Only nn.Linear layers are adapted."""
import re
from typing import Dict, List, Sequence, Union

from torch import nn

_ATTN = r"attn[12]\.(to_q|to_k|to_v|to_out\.0)$"
PRESETS: Dict[str, List[str]] = {
    # the temporal attention of every SpatialVideoTransformer (the SVD paper's camera-motion LoRAs)
    "temporal": [r"(^|\.)time_stack\.\d+\." + _ATTN],
    # the spatial (per-frame) self- and cross-attention
    "spatial": [r"(^|\.)transformer_blocks\.\d+\." + _ATTN],
    # the feed-forward layers of the temporal transformer blocks (ff_in before, ff after the temporal attention)
    "temporal_ff": [r"(^|\.)time_stack\.\d+\.(ff_in|ff)\.net\.(0\.proj|2)$"],
}
PRESETS["all_attention"] = PRESETS["temporal"] + PRESETS["spatial"]

Targets = Union[str, Sequence[str]]


def target_patterns(targets: Targets) -> List[str]:
    """Regular expressions for `targets`: a preset name (temporal, spatial, all_attention, temporal_ff), one regular
    expression, or a list mixing both."""
    items = [targets] if isinstance(targets, str) else list(targets)
    if not items:
        raise ValueError("lora targets are empty; use temporal, spatial, all_attention, temporal_ff or regular expressions")
    patterns = []
    for item in items:
        patterns += PRESETS.get(item, [item])
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"lora target {p!r} is not a regular expression: {e}") from e
    return patterns


def find_targets(network: nn.Module, targets: Targets) -> Dict[str, nn.Linear]:
    """{name: layer} of the nn.Linear layers of `network` whose name matches one of the patterns
    (re.search). ValueError naming the pattern when one matches no linear layer."""
    patterns = target_patterns(targets)
    found: Dict[str, nn.Linear] = {}
    for pattern in patterns:
        hits = {n: m for n, m in network.named_modules()
                if isinstance(m, nn.Linear) and re.search(pattern, n) and ".lora_" not in n}
        if not hits:
            raise ValueError(f"lora target {pattern!r} matches no linear layer of the network "
                             f"(layer names look like input_blocks.1.1.time_stack.0.attn1.to_q)")
        found.update(hits)
    return dict(sorted(found.items()))
