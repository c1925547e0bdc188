"""The names the original sgm's scripts import from `sgm.inference.helpers`, so that code written
against the original runs here: `embed_watermark` (the video sampling script, the demos) and the
image-sampling helpers (`do_sample`, `do_img2img`, `get_batch`, ...) of its `sgm.inference.api`.

For new code, `sgm.inference.watermark` works on uint8 frames and `DiffusionEngine.sample_video` /
`VideoPipeline` sample videos.
"""
import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from ..util import append_dims
from .watermark import WATERMARK_BITS, WATERMARK_MESSAGE, _imwatermark

__all__ = ["WATERMARK_BITS", "WATERMARK_MESSAGE", "Img2ImgDiscretizationWrapper", "WatermarkEmbedder", "do_img2img",
           "do_sample", "embed_watermark", "get_batch", "get_input_image_tensor",
           "get_unique_embedder_keys_from_conditioner", "perform_save_locally"]


class WatermarkEmbedder:
    """Embeds `watermark` (a list of bits) with the DWT-DCT method into float images.

    Called on ([N,] B, 3, H, W) in [0, 1] (a torch tensor), returns the same shape, watermarked and
    clamped to [0, 1]. The `invisible-watermark` package is imported at the first call.
    """

    def __init__(self, watermark: Sequence[int]):
        self.watermark = list(watermark)
        self.num_bits = len(self.watermark)
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = _imwatermark().WatermarkEncoder()
            self._encoder.set_watermark("bits", self.watermark)
        return self._encoder

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        squeeze = image.ndim == 4
        batch = image[None] if squeeze else image  # (N, B, 3, H, W)
        flat = (255 * batch).detach().cpu().flatten(0, 1).permute(0, 2, 3, 1).numpy()  # (N*B, H, W, 3) RGB, float
        # NOTE: the encoder expects OpenCV's BGR order; the original passes float pixels in [0, 255].
        marked = np.stack([self.encoder.encode(np.ascontiguousarray(f[:, :, ::-1]), "dwtDct")[:, :, ::-1] for f in flat])
        out = torch.from_numpy(np.ascontiguousarray(marked)).permute(0, 3, 1, 2).reshape(batch.shape).to(image.device)
        out = torch.clamp(out / 255, min=0.0, max=1.0)
        return out[0] if squeeze else out


embed_watermark = WatermarkEmbedder(WATERMARK_BITS)


def get_unique_embedder_keys_from_conditioner(conditioner) -> List[str]:
    """The input keys the conditioner's embedders read (each once)."""
    return list({e.input_key for e in conditioner.embedders})


def perform_save_locally(save_path: str, samples: torch.Tensor) -> None:
    """Watermark images (B, 3, H, W) in [0, 1] and save them as numbered PNGs in `save_path`."""
    os.makedirs(save_path, exist_ok=True)
    count = len(os.listdir(save_path))
    for sample in embed_watermark(samples):
        pixels = (255.0 * sample.cpu().permute(1, 2, 0).numpy()).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(save_path, f"{count:09}.png"))
        count += 1


class Img2ImgDiscretizationWrapper:
    """A discretization keeping only the lowest `strength` fraction of its sigmas (at least one), for
    image-to-image: 1.0 keeps the whole schedule."""

    def __init__(self, discretization: Callable, strength: float = 1.0):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        self.discretization = discretization
        self.strength = strength

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        sigmas = self.discretization(*args, **kwargs)  # decreasing
        keep = max(int(self.strength * len(sigmas)), 1)
        return sigmas[len(sigmas) - keep:]


def get_batch(keys: Sequence[str], value_dict: Dict, N: Union[List[int], Tuple[int, ...]],
              device: str = "cuda") -> Tuple[Dict, Dict]:
    """(batch, batch_uc) of N = [n] (or [n, ...]) items for the SDXL-style demo conditions of `keys`:
    txt (prompt / negative_prompt), original_size_as_tuple, crop_coords_top_left, aesthetic_score
    (and negative_aesthetic_score), target_size_as_tuple; other keys are copied from value_dict."""
    n = math.prod(N)

    def rows(*values) -> torch.Tensor:
        return torch.tensor(list(values)).to(device).repeat(*N, 1)

    batch, batch_uc = {}, {}
    for key in keys:
        if key == "txt":
            batch["txt"] = np.repeat([value_dict["prompt"]], repeats=n).reshape(N).tolist()
            batch_uc["txt"] = np.repeat([value_dict["negative_prompt"]], repeats=n).reshape(N).tolist()
        elif key == "original_size_as_tuple":
            batch[key] = rows(value_dict["orig_height"], value_dict["orig_width"])
        elif key == "crop_coords_top_left":
            batch[key] = rows(value_dict["crop_coords_top"], value_dict["crop_coords_left"])
        elif key == "aesthetic_score":
            batch[key] = rows(value_dict["aesthetic_score"])
            batch_uc[key] = rows(value_dict["negative_aesthetic_score"])
        elif key == "target_size_as_tuple":
            batch[key] = rows(value_dict["target_height"], value_dict["target_width"])
        else:
            batch[key] = value_dict[key]
    for key, value in batch.items():
        if key not in batch_uc and isinstance(value, torch.Tensor):
            batch_uc[key] = value.clone()
    return batch, batch_uc


def get_input_image_tensor(image: Image.Image, device: str = "cuda") -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1] from a PIL image, resized down to multiples of 64."""
    w, h = image.size
    image = image.resize((w - w % 64, h - h % 64))
    array = np.array(image.convert("RGB"))[None].transpose(0, 3, 1, 2)
    return (torch.from_numpy(array).to(dtype=torch.float32) / 127.5 - 1.0).to(device)


def _conditioning(model, value_dict: Dict, num_samples: int, force_uc_zero_embeddings, device: str, skip: Sequence[str]):
    batch, batch_uc = get_batch(get_unique_embedder_keys_from_conditioner(model.conditioner), value_dict,
                                [num_samples], device=device)
    c, uc = model.conditioner.get_unconditional_conditioning(batch, batch_uc=batch_uc,
                                                              force_uc_zero_embeddings=force_uc_zero_embeddings or [])
    for k in c:
        if k not in skip:
            c[k], uc[k] = c[k][:num_samples].to(device), uc[k][:num_samples].to(device)
    return batch, c, uc


def _finish(model, samples_z: torch.Tensor, filter, return_latents: bool):
    samples = torch.clamp((model.decode_first_stage(samples_z) + 1.0) / 2.0, min=0.0, max=1.0)
    if filter is not None:
        samples = filter(samples)
    return (samples, samples_z) if return_latents else samples


def do_sample(model, sampler, value_dict: Dict, num_samples: int, H: int, W: int, C: int, F: int,
              force_uc_zero_embeddings: Optional[List] = None, batch2model_input: Optional[List] = None,
              return_latents: bool = False, filter=None, device: str = "cuda"):
    """Text/image-to-image sampling of `num_samples` images (num_samples, 3, H, W) in [0, 1] with
    `sampler`, under autocast and the EMA weights. C, F: latent channels and downsampling factor.
    batch2model_input: batch keys passed to the network."""
    with torch.no_grad(), torch.autocast(device), model.ema_scope():
        batch, c, uc = _conditioning(model, value_dict, num_samples, force_uc_zero_embeddings, device, skip=("crossattn",))
        extra = {k: batch[k] for k in batch2model_input or []}
        randn = torch.randn(num_samples, C, H // F, W // F).to(device)

        def denoiser(x, sigma, cond):
            return model.denoiser(model.model, x, sigma, cond, **extra)

        return _finish(model, sampler(denoiser, randn, cond=c, uc=uc), filter, return_latents)


def do_img2img(img: torch.Tensor, model, sampler, value_dict: Dict, num_samples: int,
               force_uc_zero_embeddings: Optional[List] = None, additional_kwargs: Optional[Dict] = None,
               offset_noise_level: float = 0.0, return_latents: bool = False, skip_encode: bool = False,
               filter=None, device: str = "cuda"):
    """Image-to-image: noise the latents of `img` (or `img` itself with skip_encode) to the sampler's
    first sigma and sample from there (use Img2ImgDiscretizationWrapper for the strength)."""
    with torch.no_grad(), torch.autocast(device), model.ema_scope():
        _, c, uc = _conditioning(model, value_dict, num_samples, force_uc_zero_embeddings, device, skip=())
        for k, v in (additional_kwargs or {}).items():
            c[k] = uc[k] = v
        z = img if skip_encode else model.encode_first_stage(img)
        noise = torch.randn_like(z)
        sigmas = sampler.discretization(sampler.num_steps)
        sigma = sigmas[0].to(z.device)
        if offset_noise_level > 0.0:
            noise = noise + offset_noise_level * append_dims(torch.randn(z.shape[0], device=z.device), z.ndim)
        # NOTE: the sampler multiplies its input by sqrt(1 + sigma_0^2), so the noised latents are divided by it here.
        noised_z = (z + noise * append_dims(sigma, z.ndim)) / torch.sqrt(1.0 + sigmas[0] ** 2.0)

        def denoiser(x, sigma, cond):
            return model.denoiser(model.model, x, sigma, cond)

        return _finish(model, sampler(denoiser, noised_z, cond=c, uc=uc), filter, return_latents)
