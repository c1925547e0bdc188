"""OpenCLIP text embedding of the caption (the cross-attention context of SD 2.1 and of the curriculum's
stages 1 and 2: text-to-image and text-to-video)."""
import logging
import os
from typing import List, Optional, Sequence, Union

import torch

from .base import AbstractEmbModel
from .image_embedders import create_open_clip

logger = logging.getLogger(__name__)

# Parameters of the OpenCLIP model that the text tower never reads.
CLIP_VISION_LEFTOVERS = ["model.logit_scale", "model.logit_bias", "model.text_projection"]


class FrozenOpenCLIPEmbedder(AbstractEmbModel):
    """The OpenCLIP text tower: captions -> token features (B, 77, width), as in Stable Diffusion 2.x.

    arch: open_clip model name (SD 2.1: "ViT-H-14", width 1024) or a path to an open_clip
    model-config JSON (e.g. configs/curriculum/toy/tiny_text_clip.json). version: a local weights
    file (an open_clip state dict: `transformer.*`, `token_embedding.*`, ...) to load, or None. A
    pretrained tag (e.g. "laion2b_s32b_b79k") is never downloaded: it is ignored with a log line, since
    the weights come from the model checkpoint (`conditioner.embedders.N.model.*`).
    device: kept for config compatibility (the module follows `.to()`). max_length: token count
    (open_clip's context length, 77). freeze: no gradients, eval mode. layer: "last" (output of the
    last transformer block) or "penultimate" (skip the last block; SD 2.x), both followed by
    `ln_final`. init_device: device to build the model on.

    Tokenisation uses open_clip's bundled BPE vocabulary (no download); ids go up to 49407, so the
    text config needs `vocab_size` 49408.
    """

    output_key = "crossattn"
    inference_unused_keys = CLIP_VISION_LEFTOVERS
    LAYERS = ("last", "penultimate")

    def __init__(self, arch: str = "ViT-H-14", version: Optional[str] = None, device: str = "cuda", max_length: int = 77,
                 freeze: bool = True, layer: str = "last", init_device: Optional[str] = None):
        super().__init__()
        if layer not in self.LAYERS:
            raise ValueError(f"layer must be one of {self.LAYERS}, got {layer!r}")
        model = create_open_clip(arch, init_device)
        del model.visual  # the image tower; the text tower's leftovers stay for checkpoint compatibility
        vocab = model.token_embedding.num_embeddings
        if vocab < 49408:
            raise ValueError(f"open_clip config {arch!r} has vocab_size {vocab}; the bundled tokenizer needs 49408")
        if model.positional_embedding.shape[0] < max_length:
            raise ValueError(f"max_length {max_length} exceeds the model's context length {model.positional_embedding.shape[0]}")
        self.model = model
        if version is not None:
            self._load(version)
        self.max_length = max_length
        self.layer = layer
        # Transformer blocks to skip at the end: 0 for "last", 1 for "penultimate".
        self.layer_idx = self.LAYERS.index(layer)
        if freeze:
            self.freeze()

    def _load(self, version: str) -> None:
        if not os.path.isfile(version):
            logger.info("OpenCLIP pretrained tag %r ignored: weights come from the model checkpoint", version)
            return
        from ...checkpoint import read_state_dict

        state = {k: v for k, v in read_state_dict(version).items() if not k.startswith("visual.")}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        logger.info("loaded OpenCLIP text weights from %s (%d missing, %d unexpected)", version, len(missing), len(unexpected))

    def freeze(self):
        self.model = self.model.eval()
        for param in self.parameters():
            param.requires_grad = False

    def tokenize(self, text: Union[str, Sequence[str]]) -> torch.Tensor:
        """Captions -> token ids (B, max_length), padded with zeros, truncated with the end token kept."""
        import open_clip

        if isinstance(text, str):
            text = [text]
        if not all(isinstance(t, str) for t in text):
            raise ValueError("FrozenOpenCLIPEmbedder takes a list of caption strings")
        return open_clip.tokenize(list(text), context_length=self.max_length)

    def encode_with_transformer(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L) -> features (B, L, width) of the chosen layer, after ln_final."""
        model = self.model
        dtype = model.token_embedding.weight.dtype
        x = model.token_embedding(tokens).to(dtype) + model.positional_embedding[: tokens.shape[1]].to(dtype)  # (B, L, W)
        mask = model.attn_mask
        if mask is not None:
            mask = mask[: tokens.shape[1], : tokens.shape[1]].to(x.device)
        blocks = model.transformer.resblocks
        batch_first = getattr(model.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)  # (L, B, W)
        for block in blocks[: len(blocks) - self.layer_idx]:
            x = block(x, attn_mask=mask)
        if not batch_first:
            x = x.transpose(0, 1)
        return model.ln_final(x)

    def forward(self, text: Union[str, List[str]]) -> torch.Tensor:
        device = self.model.token_embedding.weight.device
        return self.encode_with_transformer(self.tokenize(text).to(device))  # (B, 77, width)

    def encode(self, text: Union[str, List[str]]) -> torch.Tensor:
        return self(text)
