"""Memory savers that leave the sampled video unchanged: dropping weights sampling never reads, and
running the transformer MLPs over chunks of tokens."""
import logging
from typing import Optional

import torch.nn as nn

from ..modules.attention import FeedForward

logger = logging.getLogger(__name__)

# Attributes of OpenCLIP's model that belong to the text tower; the image tower never reads them.
_CLIP_TEXT_ATTRS = ("token_embedding", "positional_embedding", "ln_final", "text_projection", "logit_scale",
                    "logit_bias", "transformer")


def _numel(obj) -> int:
    if isinstance(obj, nn.Module):
        return sum(p.numel() for p in obj.parameters()) + sum(b.numel() for b in obj.buffers())
    return obj.numel() if hasattr(obj, "numel") else 0


def _drop(owner: nn.Module, attr: str) -> int:
    value = getattr(owner, attr, None)
    if value is None:
        return 0
    n = _numel(value)
    delattr(owner, attr)
    return n


def release_unused_weights(model: nn.Module) -> int:
    """Delete the parts of a DiffusionEngine that image-to-video sampling never runs; returns the
    number of values freed. Afterwards the model can sample but not encode with its first stage,
    be trained or be saved as a complete checkpoint.

    Dropped: the first-stage encoder (sampling only decodes), the decoder half of the autoencoder
    inside the conditioning-frame embedder (it only encodes), the CLIP text-tower leftovers.
    """
    freed = 0
    first_stage = getattr(model, "first_stage_model", None)
    if first_stage is not None:
        for attr in ("encoder", "quant_conv"):
            freed += _drop(first_stage, attr)
    conditioner = getattr(model, "conditioner", None)
    for embedder in getattr(conditioner, "embedders", []):
        encoder = getattr(embedder, "encoder", None)
        if getattr(embedder, "is_ae", False) and encoder is not None:
            for attr in ("decoder", "post_quant_conv"):
                freed += _drop(encoder, attr)
        for module in embedder.modules():
            if hasattr(module, "visual") and hasattr(module, "encode_text"):  # an OpenCLIP model
                for attr in _CLIP_TEXT_ATTRS:
                    freed += _drop(module, attr)
    logger.info("released %.1fM weights that sampling does not use", freed / 1e6)
    return freed


def set_ff_chunk_size(model: nn.Module, chunk_size: Optional[int]) -> int:
    """Run every transformer feed-forward of `model` over at most `chunk_size` tokens at a time (None:
    all at once). The MLP acts on each token alone, so outputs do not change. Returns how many
    FeedForward modules were set."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"ff_chunk_size must be >= 1 or None, got {chunk_size}")
    n = 0
    for module in model.modules():
        if isinstance(module, FeedForward):
            module.chunk_size = chunk_size
            n += 1
    return n
