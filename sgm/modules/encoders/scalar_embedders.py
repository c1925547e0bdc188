"""Sinusoidal embeddings of scalar conditions (fps, motion bucket, noise augmentation, sizes)."""
import torch
from einops import rearrange

from ..diffusionmodules.openaimodel import Timestep
from .base import AbstractEmbModel


class ConcatTimestepEmbedderND(AbstractEmbModel):
    """Embeds each of the d scalars of an item sinusoidally and concatenates: (B,) or (B, d) -> (B, d*outdim).

    outdim: embedding width per scalar.

    NOTE: the values are embedded as given; SVD's `fps_id` is the frame rate minus one and
    `cond_aug` the noise level itself, as in the original training.
    """

    output_key = "vector"

    def __init__(self, outdim: int):
        super().__init__()
        self.timestep = Timestep(outdim)
        self.outdim = outdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"{type(self).__name__} takes (B,) or (B, d) values, got shape {tuple(x.shape)}")
        b, d = x.shape
        emb = self.timestep(rearrange(x, "b d -> (b d)"))
        return rearrange(emb, "(b d) d2 -> b (d d2)", b=b, d=d, d2=self.outdim)
