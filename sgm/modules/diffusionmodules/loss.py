"""The denoising loss: E_sigma,n [ lambda(sigma) || D(x + sigma n, sigma, c) - x ||^2 ]."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ...util import append_dims, instantiate_from_config
from .video_frames import expand_cond_per_frame, frames_per_video, video_model_inputs

__all__ = ["LOSS_TYPES", "StandardDiffusionLoss", "expand_cond_per_frame", "frames_per_video"]

LOSS_TYPES = ("l2", "l1")


class StandardDiffusionLoss(nn.Module):
    """The training loss of a DiffusionEngine, per example: (N,) for N images or N = B*T video frames.

    sigma_sampler_config: how training noise levels are drawn (EDMSampling, DiscreteSampling).
    loss_weighting_config: lambda(sigma) (EDMWeighting, VWeighting, EpsWeighting, UnitWeighting;
    default UnitWeighting). loss_type: "l2" or "l1". offset_noise_level: scale of an extra noise
    offset constant over the pixels of each channel (of each image, or of each video over all its
    frames); 0 = off. batch2model_keys: batch keys passed to the network as keyword inputs.
    sigma_per_video: draw one sigma per video and use it for all its T frames (the SVD paper noises
    whole videos); False draws one per frame.

    Video batches (the batch has `num_video_frames`): `input` holds the latents of B videos of T
    frames flattened to (B*T, C, h, w); the conditioner runs on the per-video batch (so conditioning
    dropout, `ucg_rate`, drops a whole video's conditioning) and its outputs are repeated per frame;
    the network gets `num_video_frames=T` and `image_only_indicator` (B, T) (zeros unless the batch
    has one).
    """

    def __init__(self, sigma_sampler_config: Dict, loss_weighting_config: Optional[Dict] = None, loss_type: str = "l2",
                 offset_noise_level: float = 0.0, batch2model_keys: Optional[Sequence[str]] = None,
                 sigma_per_video: bool = True):
        super().__init__()
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
        self.sigma_sampler = instantiate_from_config(sigma_sampler_config)
        self.loss_weighting = instantiate_from_config(
            loss_weighting_config or {"target": "sgm.modules.diffusionmodules.loss_weighting.UnitWeighting"})
        self.loss_type = loss_type
        self.offset_noise_level = offset_noise_level
        self.batch2model_keys = set(batch2model_keys or [])
        self.sigma_per_video = sigma_per_video

    def forward(self, network: nn.Module, denoiser: nn.Module, conditioner: nn.Module, input: torch.Tensor,
                batch: Dict) -> torch.Tensor:
        """input: clean latents (N, C, h, w). Returns the loss of each of the N examples."""
        cond = conditioner(batch)
        return self._forward(network, denoiser, cond, input, batch)

    def _model_inputs(self, batch: Dict, input: torch.Tensor) -> Tuple[Dict, int, int]:
        """(network keyword inputs, number of videos B, frames per video T); T = 1 for images."""
        inputs = {key: batch[key] for key in self.batch2model_keys.intersection(batch)}
        t = frames_per_video(batch, input.shape[0])
        if t is None:
            return inputs, input.shape[0], 1
        b = input.shape[0] // t
        inputs.update(video_model_inputs(b, t, input.device, input.dtype, batch.get("image_only_indicator")))
        return inputs, b, t

    def _sigmas(self, b: int, t: int, input: torch.Tensor) -> torch.Tensor:
        if self.sigma_per_video:
            return self.sigma_sampler(b).to(input).repeat_interleave(t)  # (B,) -> (B*T,)
        return self.sigma_sampler(b * t).to(input)

    def _noise(self, b: int, t: int, input: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(input)  # (B*T, C, h, w)
        if self.offset_noise_level > 0.0:
            offset = torch.randn(b, input.shape[1], device=input.device, dtype=input.dtype).repeat_interleave(t, dim=0)
            noise = noise + self.offset_noise_level * append_dims(offset, input.ndim)
        return noise

    def _forward(self, network: nn.Module, denoiser: nn.Module, cond: Dict, input: torch.Tensor, batch: Dict) -> torch.Tensor:
        model_inputs, b, t = self._model_inputs(batch, input)
        if t > 1:
            cond = expand_cond_per_frame(cond, b, t)
        sigmas = self._sigmas(b, t, input)  # (B*T,)
        noised_input = input + self._noise(b, t, input) * append_dims(sigmas, input.ndim)
        model_output = denoiser(network, noised_input, sigmas, cond, **model_inputs)
        w = append_dims(self.loss_weighting(sigmas), input.ndim)
        return self.get_loss(model_output, input, w)

    def get_loss(self, model_output: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Weighted l2/l1 error averaged over all but the first dimension -> (N,)."""
        diff = model_output - target
        err = diff**2 if self.loss_type == "l2" else diff.abs()
        return torch.mean((w * err).reshape(target.shape[0], -1), 1)
