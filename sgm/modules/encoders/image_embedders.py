"""OpenCLIP image embedding of the conditioning frame (SVD's cross-attention context)."""
import contextlib
import logging
import os
from typing import Optional

import torch
from einops import rearrange, repeat

from ...util import instantiate_from_config
from .base import AbstractEmbModel

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Parameters of the OpenCLIP model that the image tower never reads (left in the official checkpoints).
CLIP_TEXT_LEFTOVERS = ["model.token_embedding.", "model.positional_embedding", "model.ln_final.",
                       "model.text_projection", "model.logit_scale", "model.logit_bias"]


@contextlib.contextmanager
def _quiet():
    """Silence open_clip's 'no pretrained weights' notice: weights come from the SVD checkpoint."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def resolve_config_path(path: str) -> str:
    """`path` as given, or relative to the repository root (configs shipped with the package)."""
    if os.path.isfile(path):
        return path
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    candidate = os.path.join(repo_root, path)
    if not os.path.isabs(path) and os.path.isfile(candidate):
        return candidate
    raise ValueError(f"open_clip model config {path!r} does not exist (also looked in {repo_root})")


def create_open_clip(arch: str, device: Optional[str] = None):
    """An OpenCLIP model with random weights, built without any download.

    arch: an open_clip model name (e.g. "ViT-H-14") or a path to an open_clip model-config JSON
    (registered under the file's stem). device: where to build; the current default device (e.g.
    inside `with torch.device("meta")`) wins over it.
    """
    import open_clip

    if arch.endswith(".json") or os.path.sep in arch:
        path = resolve_config_path(arch)
        open_clip.add_model_config(path)
        arch = os.path.splitext(os.path.basename(path))[0]
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown open_clip architecture {arch!r}; give a name from open_clip.list_models() "
                         f"or a path to a model-config JSON")
    default_device = torch.empty(()).device
    target = default_device if default_device.type == "meta" or device is None else torch.device(device)
    with _quiet():
        return open_clip.create_model(arch, pretrained=None, device=target)


class FrozenOpenCLIPImageEmbedder(AbstractEmbModel):
    """The OpenCLIP vision tower: image (B, 3, H, W) in [-1, 1] -> pooled embedding (B, D).

    arch: open_clip model name or path to a model-config JSON. version: pretrained tag or a local
    weights file; a tag is never downloaded (SVD checkpoints carry these weights), a file is loaded.
    device: kept for config compatibility. max_length: token count for `repeat_to_max_len`.
    freeze: no gradients, eval mode. antialias: antialiased resize to 224. ucg_rate: probability of
    zeroing an item's embedding in training. unsqueeze_dim: return (B, 1, D). repeat_to_max_len:
    also return the embedding repeated max_length times. num_image_crops, output_tokens: not
    supported (must stay 0 / False). init_device: device to build the model on.
    """

    output_key = "crossattn"
    inference_unused_keys = CLIP_TEXT_LEFTOVERS

    def __init__(self, arch: str = "ViT-H-14", version: Optional[str] = None, device: str = "cuda", max_length: int = 77,
                 freeze: bool = True, antialias: bool = True, ucg_rate: float = 0.0, unsqueeze_dim: bool = False,
                 repeat_to_max_len: bool = False, num_image_crops: int = 0, output_tokens: bool = False,
                 init_device: Optional[str] = None):
        super().__init__()
        if num_image_crops or output_tokens:
            raise ValueError("num_image_crops and output_tokens are not supported by this embedder")
        model = create_open_clip(arch, init_device)
        del model.transformer  # the text tower; its small leftovers stay for checkpoint compatibility
        model.attn_mask = None
        self.model = model
        if version is not None:
            if os.path.isfile(version):
                from ...checkpoint import read_state_dict

                missing, unexpected = self.model.load_state_dict(read_state_dict(version), strict=False)
                logger.info("loaded OpenCLIP weights from %s (%d missing, %d unexpected)", version, len(missing), len(unexpected))
            else:
                logger.info("OpenCLIP pretrained tag %r ignored: weights come from the model checkpoint", version)
        self.max_length = max_length
        self.antialias = antialias
        self.ucg_rate = ucg_rate
        self.unsqueeze_dim = unsqueeze_dim
        self.repeat_to_max_len = repeat_to_max_len
        if freeze:
            self.freeze()

    def freeze(self):
        self.model = self.model.eval()
        for param in self.parameters():
            param.requires_grad = False

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 3, 224, 224) normalised with the CLIP mean and std."""
        import kornia

        x = kornia.geometry.resize(x, (224, 224), interpolation="bicubic", align_corners=True, antialias=self.antialias)
        x = (x + 1.0) / 2.0
        mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype)
        std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype)
        return kornia.enhance.normalize(x, mean, std)

    def encode_with_vision_transformer(self, img: torch.Tensor) -> torch.Tensor:
        img = self.preprocess(img.float()).to(self.param_dtype())
        return self.model.visual(img)

    def forward(self, image: torch.Tensor, no_dropout: bool = False) -> torch.Tensor:
        z = self.encode_with_vision_transformer(image).to(image.dtype)  # (B, D)
        # NOTE: the original drops here whenever ucg_rate > 0, in eval mode too, and the conditioner sets
        # ucg_rate from its config entry and drops as well; here only a training-mode embedder drops.
        if self.ucg_rate > 0.0 and not no_dropout and self.training:
            keep = torch.bernoulli(torch.full((z.shape[0],), 1.0 - self.ucg_rate, device=z.device))
            z = keep[:, None].to(z.dtype) * z
        if self.unsqueeze_dim:
            z = z[:, None, :]
        if self.repeat_to_max_len:
            z_ = z[:, None, :] if z.dim() == 2 else z
            return repeat(z_, "b 1 d -> b n d", n=self.max_length), z
        return z

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self(image)


class FrozenOpenCLIPImagePredictionEmbedder(AbstractEmbModel):
    """CLIP embedding of the conditioning frame(s) as cross-attention tokens.

    open_clip_embedding_config: config of a FrozenOpenCLIPImageEmbedder. n_cond_frames: frames
    per video that are embedded (one token each). n_copies: how often each video's tokens repeat.
    (B*n_cond_frames, 3, H, W) -> (B*n_copies, n_cond_frames, D).
    """

    output_key = "crossattn"

    def __init__(self, open_clip_embedding_config: dict, n_cond_frames: int, n_copies: int):
        super().__init__()
        self.n_cond_frames = n_cond_frames
        self.n_copies = n_copies
        self.open_clip = instantiate_from_config(open_clip_embedding_config)

    def forward(self, vid: torch.Tensor) -> torch.Tensor:
        z = self.open_clip(vid)
        z = rearrange(z, "(b t) d -> b t d", t=self.n_cond_frames)
        return repeat(z, "b t d -> (b s) t d", s=self.n_copies)
