"""sgm's import path for the conditioner and its embedders (each lives in a file of its own)."""
from .base import AbstractEmbModel
from .conditioner import GeneralConditioner
from .frame_encoder import VideoPredictionEmbedderWithEncoder
from .image_embedders import FrozenOpenCLIPImageEmbedder, FrozenOpenCLIPImagePredictionEmbedder
from .scalar_embedders import ConcatTimestepEmbedderND
from .text_embedders import FrozenOpenCLIPEmbedder

__all__ = [
    "AbstractEmbModel",
    "ConcatTimestepEmbedderND",
    "FrozenOpenCLIPEmbedder",
    "FrozenOpenCLIPImageEmbedder",
    "FrozenOpenCLIPImagePredictionEmbedder",
    "GeneralConditioner",
    "VideoPredictionEmbedderWithEncoder",
]
