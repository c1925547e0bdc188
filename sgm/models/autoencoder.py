"""Autoencoders of the first stage and of the conditioning frame (frozen in SVD)."""
import logging
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn

from ..util import default, instantiate_from_config

logger = logging.getLogger(__name__)
# sgm's autoencoder training options: accepted so the original configs load, without effect here.
SGM_TRAINING_OPTIONS = ("optimizer_config", "lr_g_factor", "trainable_ae_params", "ae_optimizer_args",
                        "trainable_disc_params", "disc_optimizer_args", "disc_start_iter", "diff_boost_factor",
                        "ckpt_engine", "additional_decode_keys")


class AutoencodingEngine(nn.Module):
    """Encoder -> regularizer -> decoder, each built from its config.

    encoder_config, decoder_config: the networks (e.g. model.Encoder and temporal_ae.VideoDecoder).
    loss_config: the training loss (SVD ships torch.nn.Identity; autoencoder training is not part of
    this package). regularizer_config: e.g. DiagonalGaussianRegularizer. ckpt_path: weights to load
    (a file holding this module's state dict, optionally under 'state_dict'). max_batch_size: encode
    and decode at most this many items at a time. The remaining sgm training options (optimizer_config,
    lr_g_factor, trainable_ae_params, ae_optimizer_args, trainable_disc_params, disc_optimizer_args,
    disc_start_iter, diff_boost_factor, ckpt_engine, additional_decode_keys, ema_decay, monitor,
    input_key) are accepted so original configs load, and are stored without effect.
    """

    def __init__(self, *args, encoder_config: Dict, decoder_config: Dict, loss_config: Optional[Dict] = None,
                 regularizer_config: Dict, ckpt_path: Optional[str] = None, max_batch_size: Optional[int] = None,
                 monitor: Optional[str] = None, input_key: str = "jpg", ema_decay: Optional[float] = None,
                 **training_options):
        super().__init__()
        unknown = sorted(set(training_options) - set(SGM_TRAINING_OPTIONS))
        if unknown:
            raise ValueError(f"{type(self).__name__} got unknown parameter(s) {unknown}; it accepts encoder_config, "
                             f"decoder_config, loss_config, regularizer_config, ckpt_path, max_batch_size, monitor, "
                             f"input_key, ema_decay and, ignored, {', '.join(SGM_TRAINING_OPTIONS)}")
        self.encoder: nn.Module = instantiate_from_config(encoder_config)
        self.decoder: nn.Module = instantiate_from_config(decoder_config)
        self.loss: nn.Module = instantiate_from_config(default(loss_config, {"target": "torch.nn.Identity"}))
        self.regularization: nn.Module = instantiate_from_config(regularizer_config)
        self.max_batch_size = max_batch_size
        self.input_key = input_key
        self.monitor = monitor
        self.training_options = training_options
        if ckpt_path is not None:
            from ..checkpoint import load_checkpoint

            load_checkpoint(self, ckpt_path)

    def _in_batches(self, fn, x: torch.Tensor) -> torch.Tensor:
        if self.max_batch_size is None or x.shape[0] <= self.max_batch_size:
            return fn(x)
        return torch.cat([fn(part) for part in x.split(self.max_batch_size)], dim=0)

    def _encode_moments(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def encode(self, x: torch.Tensor, return_reg_log: bool = False, unregularized: bool = False
               ) -> Union[torch.Tensor, Tuple[torch.Tensor, dict]]:
        """(B, 3, H, W) in [-1, 1] -> latents (B, z, H/8, W/8), unscaled."""
        z = self._in_batches(self._encode_moments, x)
        if unregularized:
            return z, {}
        z, reg_log = self.regularization(z)
        return (z, reg_log) if return_reg_log else z

    def _decode(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.decoder(z, **kwargs)

    def decode(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        """latents (B, z, h, w), unscaled -> images (B, 3, 8h, 8w) in about [-1, 1]."""
        if kwargs:  # a video decoder needs whole clips; do not split them
            return self._decode(z, **kwargs)
        return self._in_batches(self._decode, z)

    def forward(self, x: torch.Tensor, **decode_kwargs) -> Tuple[torch.Tensor, torch.Tensor, dict]:
        z, reg_log = self.encode(x, return_reg_log=True)
        return z, self.decode(z, **decode_kwargs), reg_log

    def get_last_layer(self):
        return self.decoder.get_last_layer()


class AutoencodingEngineLegacy(AutoencodingEngine):
    """The SD-style KL autoencoder, configured by one `ddconfig` shared by encoder and decoder, with
    1x1 quant convs around the latent.

    embed_dim: latent channels. ddconfig: Encoder/Decoder arguments. Other arguments as in
    AutoencodingEngine.
    """

    def __init__(self, embed_dim: int, ddconfig: Dict, ckpt_path: Optional[str] = None, **kwargs):
        kwargs.pop("ckpt_engine", None)
        super().__init__(
            encoder_config={"target": "sgm.modules.diffusionmodules.model.Encoder", "params": ddconfig},
            decoder_config={"target": "sgm.modules.diffusionmodules.model.Decoder", "params": ddconfig},
            **kwargs,
        )
        moments = (1 + int(ddconfig["double_z"])) * ddconfig["z_channels"]
        self.quant_conv = nn.Conv2d(moments, (1 + int(ddconfig["double_z"])) * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)
        self.embed_dim = embed_dim
        if ckpt_path is not None:
            from ..checkpoint import load_checkpoint

            load_checkpoint(self, ckpt_path)

    def _encode_moments(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def _decode(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z), **kwargs)


class AutoencoderKL(AutoencodingEngineLegacy):
    """KL autoencoder sampling its posterior. `lossconfig` is the sgm spelling of loss_config."""

    def __init__(self, **kwargs):
        if "lossconfig" in kwargs:
            kwargs["loss_config"] = kwargs.pop("lossconfig")
        super().__init__(regularizer_config={"target": "sgm.modules.autoencoding.regularizers.DiagonalGaussianRegularizer"}, **kwargs)


class AutoencoderKLModeOnly(AutoencodingEngineLegacy):
    """KL autoencoder returning its posterior's mean (SVD's conditioning-frame encoder)."""

    def __init__(self, **kwargs):
        if "lossconfig" in kwargs:
            kwargs["loss_config"] = kwargs.pop("lossconfig")
        super().__init__(
            regularizer_config={"target": "sgm.modules.autoencoding.regularizers.DiagonalGaussianRegularizer",
                                "params": {"sample": False}},
            **kwargs,
        )


class IdentityFirstStage(nn.Module):
    """No autoencoder: diffusion in pixel space."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def encode(self, x: Any, *args, **kwargs) -> Any:
        return x

    def decode(self, x: Any, *args, **kwargs) -> Any:
        return x
