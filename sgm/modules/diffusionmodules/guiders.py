"""Classifier-free guidance (Ho & Salimans 2022) around the denoiser.

A guider batches the conditional and unconditional inputs (`prepare_inputs`, unconditional half
first) and combines the two denoised halves (`__call__`). The video guiders use one scale per frame.
"""
import logging
from abc import ABC, abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from einops import rearrange

from ...util import append_dims

logger = logging.getLogger(__name__)

GUIDED_KEYS = ("vector", "crossattn", "concat")


def _batch_cond(c: Dict, uc: Dict, keys: Sequence[str]) -> Dict:
    """Concatenate uc and c (uc first) for the guided keys; pass other entries through from c."""
    return {k: torch.cat((uc[k], c[k]), 0) if k in keys else c[k] for k in c}


class Guider(ABC):
    @abstractmethod
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Combine the batched denoiser output into the guided prediction."""

    @abstractmethod
    def prepare_inputs(self, x: torch.Tensor, s: torch.Tensor, c: Dict, uc: Dict) -> Tuple[torch.Tensor, torch.Tensor, Dict]:
        """The denoiser inputs (x, sigma, cond) for one guided evaluation."""


class IdentityGuider(Guider):
    """No guidance: the conditional prediction."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x

    def prepare_inputs(self, x, s, c, uc):
        return x, s, dict(c)


class VanillaCFG(Guider):
    """x_u + scale * (x_c - x_u). scale: guidance scale (1 = conditional only)."""

    def __init__(self, scale: float):
        self.scale = scale

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x_u, x_c = x.chunk(2)
        return x_u + self.scale * (x_c - x_u)

    def prepare_inputs(self, x, s, c, uc):
        return torch.cat([x] * 2), torch.cat([s] * 2), _batch_cond(c, uc, GUIDED_KEYS)


class LinearPredictionGuider(Guider):
    """Per-frame CFG for video batches (B*T, ...): the scale goes linearly from `min_scale` on the
    first frame to `max_scale` on the last (SVD: later frames need more guidance).

    max_scale, min_scale: scale on the last and first frame. num_frames: T. additional_cond_keys:
    further conditioning keys to batch as (uc, c).

    `scale` is the (1, T) per-frame scale, as in the original; assigning it (a number, or T numbers)
    replaces the curve for this guider object.
    """

    def __init__(self, max_scale: float, num_frames: int, min_scale: float = 1.0,
                 additional_cond_keys: Optional[Union[List[str], str]] = None):
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.num_frames = num_frames
        keys = additional_cond_keys or []
        self.additional_cond_keys = [keys] if isinstance(keys, str) else list(keys)
        self._scale: Optional[torch.Tensor] = None

    def frame_scales(self) -> torch.Tensor:
        """(T,) guidance scale of each frame."""
        if self._scale is not None:
            return self._scale
        return torch.linspace(self.min_scale, self.max_scale, self.num_frames)

    @property
    def scale(self) -> torch.Tensor:
        """(1, T), as the original exposes it."""
        return self.frame_scales()[None]

    @scale.setter
    def scale(self, value: Union[float, Sequence[float], torch.Tensor]) -> None:
        scale = torch.as_tensor(value, dtype=torch.float32).flatten()
        if scale.numel() == 1:
            scale = scale.expand(self.num_frames)
        if scale.numel() != self.num_frames:
            raise ValueError(f"guider scale needs 1 or num_frames={self.num_frames} values, got {scale.numel()}")
        self._scale = scale.clone()

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x_u, x_c = x.chunk(2)
        if x_u.shape[0] % self.num_frames:
            raise ValueError(f"guider expects whole videos of num_frames={self.num_frames}, got a batch of {x_u.shape[0]} frames; "
                             f"set the guider's num_frames to the video length")
        x_u = rearrange(x_u, "(b t) ... -> b t ...", t=self.num_frames)
        x_c = rearrange(x_c, "(b t) ... -> b t ...", t=self.num_frames)
        scale = append_dims(self.frame_scales()[None].to(x_u.device, x_u.dtype), x_u.ndim)
        return rearrange(x_u + scale * (x_c - x_u), "b t ... -> (b t) ...")

    def prepare_inputs(self, x, s, c, uc):
        return torch.cat([x] * 2), torch.cat([s] * 2), _batch_cond(c, uc, list(GUIDED_KEYS) + self.additional_cond_keys)


def triangle_wave(values: torch.Tensor, period: float = 1.0) -> torch.Tensor:
    """0 at multiples of `period`, 1 half-way between, linear in between."""
    return 2 * (values / period - torch.floor(values / period + 0.5)).abs()


class TrianglePredictionGuider(LinearPredictionGuider):
    """Per-frame scale following a triangle wave over the clip: min_scale at both ends, max_scale in
    the middle for period 1. period: one or more periods (in clip lengths), fused by `period_fusing`
    ("mean", "multiply" or "max")."""

    def __init__(self, max_scale: float, num_frames: int, min_scale: float = 1.0,
                 period: Union[float, List[float]] = 1.0, period_fusing: str = "max",
                 additional_cond_keys: Optional[Union[List[str], str]] = None):
        super().__init__(max_scale, num_frames, min_scale, additional_cond_keys)
        if period_fusing not in ("mean", "multiply", "max"):
            raise ValueError(f"period_fusing must be 'mean', 'multiply' or 'max', got {period_fusing!r}")
        self.periods = [float(period)] if isinstance(period, (int, float)) else [float(p) for p in period]
        self.period_fusing = period_fusing

    triangle_wave = staticmethod(triangle_wave)

    def frame_scales(self) -> torch.Tensor:
        if self._scale is not None:
            return self._scale
        values = torch.linspace(0, 1, self.num_frames)
        waves = torch.stack([triangle_wave(values, p) for p in self.periods])
        if self.period_fusing == "mean":
            wave = waves.mean(0)
        elif self.period_fusing == "multiply":
            wave = waves.prod(0)
        else:
            wave = waves.max(0).values
        return wave * (self.max_scale - self.min_scale) + self.min_scale


class TrapezoidPredictionGuider(LinearPredictionGuider):
    """Per-frame scale rising from min_scale to max_scale over the first `edge_perc` of the clip
    and falling back to min_scale over the last `edge_perc`.

    plateau_at_max: the scale of the frames in between. False (default, the original's behaviour):
    1.0, i.e. no guidance in the middle of the clip, which is what the original's SV4D helpers were
    run with. True: max_scale, a flat top between the two ramps.
    """

    def __init__(self, max_scale: float, num_frames: int, min_scale: float = 1.0, edge_perc: float = 0.1,
                 additional_cond_keys: Optional[Union[List[str], str]] = None, plateau_at_max: bool = False):
        super().__init__(max_scale, num_frames, min_scale, additional_cond_keys)
        if not 0.0 <= edge_perc <= 0.5:
            raise ValueError(f"edge_perc must be in [0, 0.5], got {edge_perc}")
        self.edge_perc = edge_perc
        self.plateau_at_max = plateau_at_max

    def frame_scales(self) -> torch.Tensor:
        if self._scale is not None:
            return self._scale
        n_edge = int(self.num_frames * self.edge_perc)
        rise = torch.linspace(self.min_scale, self.max_scale, n_edge)
        plateau = float(self.max_scale) if self.plateau_at_max else 1.0
        middle = torch.full((self.num_frames - 2 * n_edge,), plateau)
        return torch.cat([rise, middle, rise.flip(0)])


class SpatiotemporalPredictionGuider(LinearPredictionGuider):
    """Per-frame scale for multi-view videos (SV4D): num_frames = T times x V views, view-minor.
    The scale is the mean of a ramp over time (0 -> 1) and a triangle wave over the views (0 at the
    first and last view, 1 in the middle), mapped to [min_scale, max_scale].

    num_views: V (num_frames must be a multiple of it).
    """

    def __init__(self, max_scale: float, num_frames: int, num_views: int = 1, min_scale: float = 1.0,
                 additional_cond_keys: Optional[Union[List[str], str]] = None):
        super().__init__(max_scale, num_frames, min_scale, additional_cond_keys)
        if num_views < 1 or num_frames % num_views:
            raise ValueError(f"num_frames={num_frames} must be a multiple of num_views={num_views}")
        self.num_views = num_views

    triangle_wave = staticmethod(triangle_wave)

    def frame_scales(self) -> torch.Tensor:
        if self._scale is not None:
            return self._scale
        v = self.num_views
        t = self.num_frames // v
        time_ramp = torch.linspace(0, 1, t)[:, None]  # (T, 1)
        view_wave = triangle_wave(torch.linspace(0, 1, v))[None, :]  # (1, V)
        mix = (0.5 * time_ramp + 0.5 * view_wave).flatten()  # (T*V,)
        return mix * (self.max_scale - self.min_scale) + self.min_scale
