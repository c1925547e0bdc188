"""The autoencoder's training loss: reconstruction (L1 or L2, plus LPIPS when its weights are local) + weighted
regularisation (the KL of the DiagonalGaussianRegularizer) + an adversarial term from a patch discriminator
that switches on at `disc_start` (Esser et al. 2021, "Taming Transformers", Sec. 3.1; sgm's
GeneralLPIPSWithDiscriminator)."""
import logging
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from einops import rearrange

from ....util import default, instantiate_from_config
from ..discriminator import D_LOSSES, weights_init
from ..lpips import load_lpips

logger = logging.getLogger(__name__)


class GeneralLPIPSWithDiscriminator(nn.Module):
    """Loss of the generator (optimizer_idx 0: the autoencoder) and of the discriminator (optimizer_idx 1).

    disc_start: global step from which the adversarial terms are on (before it the discriminator is not
    even run). logvar_init: initial log-variance of the reconstruction likelihood (rec / exp(logvar) + logvar).
    disc_num_layers, disc_in_channels: of the default NLayerDiscriminator. disc_factor: weight of both
    adversarial losses. disc_weight: multiplies the adaptive weight that balances the adversarial gradient
    against the reconstruction gradient at the decoder's last layer. perceptual_weight: weight of LPIPS in
    the reconstruction loss; used only when `perceptual_weights` is a local file (otherwise a warning says
    the term is off). perceptual_weights: that file (see sgm.modules.autoencoding.lpips). disc_loss:
    "hinge" or "vanilla". dims: 2 (discriminate frames) or 3 (clips: the temporal discriminator; needs
    `timesteps` in forward). learn_logvar: train the log-variance. regularization_weights: weight per key of
    the regulariser's log, e.g. {kl_loss: 1.0e-6}. discriminator_config: replaces the default discriminator.
    scale_input_to_tgt_size, additional_log_keys: sgm options, accepted; only False / keys of the
    regulariser's log are supported.

    The reconstruction and regularisation losses are sums over an item's pixels / latents, averaged over items
    (sgm's convention, so regularization_weights carry over from its configs).
    """

    def __init__(self, disc_start: int, logvar_init: float = 0.0, disc_num_layers: int = 3, disc_in_channels: int = 3,
                 disc_factor: float = 1.0, disc_weight: float = 1.0, perceptual_weight: float = 1.0,
                 perceptual_weights: Optional[str] = None, disc_loss: str = "hinge", dims: int = 2,
                 learn_logvar: bool = False, regularization_weights: Optional[Dict[str, float]] = None,
                 discriminator_config: Optional[Dict] = None, scale_input_to_tgt_size: bool = False,
                 additional_log_keys: Optional[list] = None, pixel_loss: str = "l1"):
        super().__init__()
        if pixel_loss not in ("l1", "l2"):
            raise ValueError(f"loss_config.params.pixel_loss must be 'l1' or 'l2', got {pixel_loss!r}")
        self.pixel_loss = pixel_loss
        if disc_loss not in D_LOSSES:
            raise ValueError(f"loss_config.params.disc_loss must be one of {sorted(D_LOSSES)}, got {disc_loss!r}")
        if scale_input_to_tgt_size:
            raise ValueError("loss_config.params.scale_input_to_tgt_size=true is not supported")
        self.dims = dims
        self.disc_start = int(disc_start)
        self.disc_factor = disc_factor
        self.disc_weight = disc_weight
        self.disc_loss = D_LOSSES[disc_loss]
        self.regularization_weights = dict(default(regularization_weights, {}))
        self.additional_log_keys = set(default(additional_log_keys, [])) | set(self.regularization_weights)
        self.logvar = nn.Parameter(torch.full((), float(logvar_init)), requires_grad=learn_logvar)
        self.perceptual_weight = perceptual_weight
        # Not a submodule: the frozen LPIPS weights stay out of the autoencoder's checkpoints.
        self._lpips = [load_lpips(perceptual_weights)] if perceptual_weight > 0 else [None]
        discriminator_config = default(discriminator_config, {
            "target": "sgm.modules.autoencoding.discriminator.NLayerDiscriminator",
            "params": {"input_nc": disc_in_channels, "n_layers": disc_num_layers, "use_actnorm": False, "dims": dims}})
        self.discriminator = instantiate_from_config(discriminator_config)
        self.discriminator.apply(weights_init)

    @property
    def perceptual_on(self) -> bool:
        return self._lpips[0] is not None

    def get_trainable_parameters(self):
        """The discriminator's parameters (the second optimizer's)."""
        return self.discriminator.parameters()

    def get_trainable_autoencoder_parameters(self):
        """Loss parameters trained with the autoencoder: the log-variance when learn_logvar."""
        return [self.logvar] if self.logvar.requires_grad else []

    def discriminate(self, x: torch.Tensor, timesteps: Optional[int]) -> torch.Tensor:
        """Logits of frames (N, C, H, W); for dims=3 the N = B*T frames are regrouped into clips."""
        if self.dims == 3:
            if timesteps is None:
                raise ValueError("a 3-d (temporal) discriminator needs video batches: set data to a video data module")
            x = rearrange(x, "(b t) c h w -> b c t h w", t=timesteps)
        return self.discriminator(x)

    def reconstruction_loss(self, inputs: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        """|x - x_rec| or (x - x_rec)^2 (+ perceptual_weight * LPIPS), per pixel (N, C, H, W)."""
        diff = inputs - reconstructions
        rec = diff.abs() if self.pixel_loss == "l1" else diff.square()
        if self.perceptual_on:
            lpips = self._lpips[0].to(inputs.device)
            rec = rec + self.perceptual_weight * lpips(inputs, reconstructions)
        return rec

    def adaptive_weight(self, nll_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
        """||grad nll|| / ||grad g|| at the decoder's last layer, times disc_weight (Taming Transformers, eq. 7)."""
        nll_grad = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
        g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        return (nll_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach() * self.disc_weight

    def forward(self, inputs: torch.Tensor, reconstructions: torch.Tensor, *, regularization_log: Dict[str, torch.Tensor],
                optimizer_idx: int, global_step: int, last_layer: Optional[torch.Tensor] = None, split: str = "train",
                timesteps: Optional[int] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(loss, log) for the autoencoder (optimizer_idx 0) or the discriminator (1). inputs, reconstructions:
        (N, C, H, W) in [-1, 1]; timesteps: frames per clip when N = B*T frames of clips."""
        disc_on = global_step >= self.disc_start
        if optimizer_idx == 1:
            if not disc_on:
                raise ValueError(f"the discriminator is off until step {self.disc_start} (now {global_step})")
            real = self.discriminate(inputs.detach(), timesteps)
            fake = self.discriminate(reconstructions.detach(), timesteps)
            d_loss = self.disc_factor * self.disc_loss(real, fake)
            return d_loss, {f"{split}/loss/disc": d_loss.detach(), f"{split}/logits/real": real.detach().mean(),
                            f"{split}/logits/fake": fake.detach().mean()}
        rec = self.reconstruction_loss(inputs, reconstructions)
        nll = rec / torch.exp(self.logvar) + self.logvar
        nll_loss = nll.sum() / nll.shape[0]
        loss = nll_loss
        g_loss = d_weight = torch.zeros((), device=inputs.device)
        if disc_on:
            g_loss = -self.discriminate(reconstructions, timesteps).mean()
            if self.training and last_layer is not None and torch.is_grad_enabled():
                d_weight = self.adaptive_weight(nll_loss, g_loss, last_layer)
            else:
                d_weight = torch.ones((), device=inputs.device) * self.disc_weight
            loss = loss + d_weight * self.disc_factor * g_loss
        log = {}
        for key, value in regularization_log.items():
            if key in self.regularization_weights:
                loss = loss + self.regularization_weights[key] * value
            if key in self.additional_log_keys:
                log[f"{split}/{key}"] = value.detach().float().mean()
        log.update({f"{split}/loss/total": loss.detach(), f"{split}/loss/nll": nll_loss.detach(),
                    f"{split}/loss/rec": rec.detach().mean(), f"{split}/loss/g": g_loss.detach(),
                    f"{split}/scalars/d_weight": d_weight.detach()})
        return loss, log
