"""VAE latent of the conditioning frame, concatenated to the UNet input channels (SVD)."""
import contextlib
import math
from typing import Optional

import torch
from einops import rearrange, repeat

from ...util import append_dims, instantiate_from_config
from .base import AbstractEmbModel


class VideoPredictionEmbedderWithEncoder(AbstractEmbModel):
    """Encodes the conditioning frame(s) and repeats the latent for every frame of the video.

    n_cond_frames: conditioning frames per video (stacked along channels). n_copies: repeats of
    each video's latent (the number of frames T). encoder_config: the encoder (an
    AutoencoderKLModeOnly in SVD). sigma_sampler_config: optional noise-level sampler; noise of that
    level is added to the frames before encoding (training-time augmentation). sigma_cond_config:
    optional embedder of that level, returned as a second output. is_ae: the encoder is an
    autoencoder (call `.encode`). scale_factor: latent scale. disable_encoder_autocast: encode in
    full precision under autocast. en_and_decode_n_samples_a_time: encode at most this many frames
    at a time.
    (B*n_cond_frames, 3, H, W) -> (B*n_copies, n_cond_frames*C, H/8, W/8).
    """

    output_key = "concat"

    def __init__(self, n_cond_frames: int, n_copies: int, encoder_config: dict, sigma_sampler_config: Optional[dict] = None,
                 sigma_cond_config: Optional[dict] = None, is_ae: bool = False, scale_factor: float = 1.0,
                 disable_encoder_autocast: bool = False, en_and_decode_n_samples_a_time: Optional[int] = None):
        super().__init__()
        self.n_cond_frames = n_cond_frames
        self.n_copies = n_copies
        self.encoder = instantiate_from_config(encoder_config)
        self.sigma_sampler = instantiate_from_config(sigma_sampler_config) if sigma_sampler_config is not None else None
        self.sigma_cond = instantiate_from_config(sigma_cond_config) if sigma_cond_config is not None else None
        self.is_ae = is_ae
        self.scale_factor = scale_factor
        self.disable_encoder_autocast = disable_encoder_autocast
        self.en_and_decode_n_samples_a_time = en_and_decode_n_samples_a_time
        # An autoencoder used only to encode never runs its decoder.
        self.inference_unused_keys = ["encoder.decoder.", "encoder.post_quant_conv."] if is_ae else []

    def _encode(self, vid: torch.Tensor) -> torch.Tensor:
        vid = vid.to(self.param_dtype())
        n = self.en_and_decode_n_samples_a_time or vid.shape[0]
        parts = []
        for i in range(math.ceil(vid.shape[0] / n)):
            chunk = vid[i * n:(i + 1) * n]
            parts.append(self.encoder.encode(chunk) if self.is_ae else self.encoder(chunk))
        return torch.cat(parts, dim=0)

    def forward(self, vid: torch.Tensor):
        in_dtype = vid.dtype
        sigma_cond = None
        if self.sigma_sampler is not None:
            b = vid.shape[0] // self.n_cond_frames
            sigmas = self.sigma_sampler(b).to(vid.device)
            if self.sigma_cond is not None:
                sigma_cond = repeat(self.sigma_cond(sigmas), "b d -> (b t) d", t=self.n_copies)
            sigmas = repeat(sigmas, "b -> (b t)", t=self.n_cond_frames)
            vid = vid + torch.randn_like(vid) * append_dims(sigmas, vid.ndim)
        # NOTE: the SVD configs encode in full precision even when the rest runs under autocast.
        no_autocast = torch.autocast(vid.device.type, enabled=False) if self.disable_encoder_autocast else contextlib.nullcontext()
        with no_autocast:
            z = self._encode(vid)
        z = (z * self.scale_factor).to(in_dtype)
        z = rearrange(z, "(b t) c h w -> b () (t c) h w", t=self.n_cond_frames)
        z = repeat(z, "b 1 c h w -> (b t) c h w", t=self.n_copies)
        return (z, sigma_cond) if self.sigma_cond is not None else z
