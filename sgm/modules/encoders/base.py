"""The embedder contract of the GeneralConditioner."""
from typing import List, Optional, Union

import torch
import torch.nn as nn


class AbstractEmbModel(nn.Module):
    """An embedder turns one batch entry (its `input_key`) into one conditioning tensor.

    Class attribute `output_key` says where the conditioner puts the result: "vector" (B, D) joins the
    UNet's `y`, "crossattn" (B, M, D) its cross-attention context, "concat" (B, C, h, w) its input
    channels. The conditioner sets `input_key`, `is_trainable`, `ucg_rate` (probability of dropping
    the embedding to zero in training), `ucg_group` (embedders dropped together) and `legacy_ucg_val`
    from the config entry.

    `inference_unused_keys` lists state-dict key prefixes (relative to the embedder) that the
    forward pass never reads, so a checkpoint may lack them.
    """

    output_key: Optional[str] = None
    inference_unused_keys: List[str] = []

    def __init__(self):
        super().__init__()
        self.is_trainable: bool = False
        self.ucg_rate: Union[float, torch.Tensor] = 0.0
        self.ucg_group: Optional[str] = None
        self.input_key: Optional[str] = None
        self.legacy_ucg_val = None

    def param_dtype(self, default: torch.dtype = torch.float32) -> torch.dtype:
        p = next(self.parameters(), None)
        return default if p is None else p.dtype
