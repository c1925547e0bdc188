"""Optional CLIP scores from local open_clip weights: an aesthetic score (linear head on the image embedding)
and the image-caption cosine similarity. Nothing is downloaded: the model is built with `pretrained=None` and
the user's checkpoint is loaded from disk."""
import logging
from pathlib import Path
from typing import List

import numpy as np

from .config import ClipScoreConfig

__all__ = ["ClipScorer"]

logger = logging.getLogger(__name__)


class ClipScorer:
    """Scores RGB frames with an open_clip model.

    Args:
        cfg: ClipScoreConfig; `cfg.weights` must be set (callers skip CLIP scoring when it is not).
    """

    def __init__(self, cfg: ClipScoreConfig):
        import open_clip
        import torch

        weights = Path(cfg.weights)
        if not weights.is_file():
            raise ValueError(f"clip.weights {weights} does not exist (give a local open_clip checkpoint, or null to skip CLIP scores)")
        name = cfg.model
        if name.endswith(".json"):
            if not Path(name).is_file():
                raise ValueError(f"clip.model config {name} does not exist")
            open_clip.add_model_config(name)
            name = Path(name).stem
        if name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {cfg.model!r}; give a name from open_clip.list_models() or a config .json")
        self.torch = torch
        self.device = torch.device(cfg.device)
        model, _, self.preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
        open_clip.load_checkpoint(model, str(weights))
        self.model = model.eval().to(self.device)
        self.tokenizer = open_clip.get_tokenizer(name)
        self.head = _load_linear_head(cfg.aesthetic_head) if cfg.aesthetic_head else None

    def image_embeddings(self, frames: List[np.ndarray]):
        """L2-normalised image embeddings (N, D) of RGB frames (H, W, 3) uint8."""
        from PIL import Image

        batch = self.torch.stack([self.preprocess(Image.fromarray(f)) for f in frames]).to(self.device)
        with self.torch.no_grad():
            emb = self.model.encode_image(batch).float()
        return emb / emb.norm(dim=-1, keepdim=True)

    def scores(self, frames: List[np.ndarray], caption: str) -> dict:
        """`clip_aesthetic` (mean over frames, when a head is set) and `clip_similarity` (mean cosine between the
        frames and `caption`, when the caption is not empty)."""
        emb = self.image_embeddings(frames)  # (N, D)
        out = {}
        if self.head is not None:
            weight, bias = self.head
            out["clip_aesthetic"] = float((emb @ weight.T + bias).mean())
        if caption:
            with self.torch.no_grad():
                txt = self.model.encode_text(self.tokenizer([caption]).to(self.device)).float()
            txt = txt / txt.norm(dim=-1, keepdim=True)
            out["clip_similarity"] = float((emb @ txt.T).mean())
        return out


def _load_linear_head(path: str):
    """(weight (1, D), bias (1,)) float tensors from a torch state dict or an .npz file."""
    import torch

    if not Path(path).is_file():
        raise ValueError(f"clip.aesthetic_head {path} does not exist")
    if path.endswith(".npz"):
        data = {k: torch.from_numpy(v) for k, v in np.load(path).items()}
    else:
        data = torch.load(path, map_location="cpu", weights_only=True)
    weights = [v for k, v in data.items() if k.endswith("weight")]
    biases = [v for k, v in data.items() if k.endswith("bias")]
    if len(weights) != 1 or len(biases) != 1 or weights[0].ndim != 2 or weights[0].shape[0] != 1:
        raise ValueError(f"{path} must hold one linear layer: a `weight` of shape (1, D) and a `bias` of shape (1,)")
    return weights[0].float(), biases[0].float().reshape(1)
