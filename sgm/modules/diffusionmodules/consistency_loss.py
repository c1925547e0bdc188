"""Consistency distillation (Song et al. 2023, Alg. 2; for latent video as in AnimateLCM, Wang et al. 2024):

    n ~ U{0, k, 2k, ...} below N-1, eps ~ N(0, I)  (one n per video, shared by its frames)
    m     = min(n + k, N-1)
    x_hi  = x0 + sigma_n eps                       (sigma_0 > ... > sigma_{N-1} = sigma_min: the teacher's grid)
    x_lo  = k ODE steps of the guided teacher along its grid from sigma_n to sigma_m (Euler or Heun, no gradient)
    loss  = d( f_student(x_hi, sigma_n), f_target(x_lo, sigma_m) )  (target: EMA of the student, no gradient)

k = 1 is Song et al.'s chain of neighbouring grid points; k > 1 is LCM's skipping step (Luo et al. 2023,
Sec. 4.3), here taken as k small teacher steps on the teacher's own grid, so x_lo stays on the trajectory
the N-step teacher samples.

f is the consistency function of sgm.modules.diffusionmodules.consistency (identity at sigma_min), so the
target at the last grid point is x_lo itself: the boundary anchors the chain. The teacher is guided as SVD
samples (per-frame scale from min_scale on frame 0 to max_scale on the last), so the student needs none.
"""
import logging
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn

from ...models.video_sampling import guidance_conditioning, guider_config_for_call
from ...util import append_dims, default, instantiate_from_config
from .consistency import TEACHER_DISCRETIZATION, ConsistencyBoundary
from .video_frames import expand_cond_per_frame, frames_per_video, video_model_inputs
from .sampling_utils import to_d

logger = logging.getLogger(__name__)

DISTANCES = ("l2", "huber")
SVD_GUIDER = {"target": "sgm.modules.diffusionmodules.guiders.LinearPredictionGuider",
              "params": {"max_scale": 2.5, "min_scale": 1.0}}
SVD_UNCOND_ZERO_KEYS = ("cond_frames", "cond_frames_without_noise")


class ConsistencyDistillationLoss(nn.Module):
    """The consistency-distillation loss of one batch, per example: (N,) for N = B*T video frames.

    num_teacher_steps: N, the teacher's grid (25: SVD's sampling steps). discretization_config: the grid's
    schedule (default EDM, sigma_max 700, as SVD samples). guider_config: the teacher's guidance; video
    guiders get `num_frames` from the batch (default LinearPredictionGuider 1.0 -> 2.5, SVD-XT's).
    uncond_zero_keys: conditioning inputs zeroed in the unconditional branch (SVD: both image inputs).
    solver: the teacher's ODE step, "euler" (1 teacher call) or "heun" (2). boundary_config: params of
    ConsistencyBoundary (must equal the student sampler's). distance: "l2" (mean squared error) or "huber"
    (pseudo-Huber, sqrt(d^2 + c^2) - c, Song & Dhariwal 2023, with c = huber_c). huber_c: its c.
    skip_steps: k, the teacher grid steps between the two noise levels the loss compares (see above).
    level_weights: relative probabilities of the levels n = 0, k, 2k, ... (one weight per level, ceil((N-1)/k)
    of them; default uniform), e.g. to train the levels a few-step sampler visits last more often.
    """

    def __init__(self, num_teacher_steps: int = 25, discretization_config: Optional[Dict] = None,
                 guider_config: Optional[Dict] = None, uncond_zero_keys: Sequence[str] = SVD_UNCOND_ZERO_KEYS,
                 solver: str = "euler", boundary_config: Optional[Dict] = None, distance: str = "l2",
                 huber_c: float = 0.001, skip_steps: int = 1, level_weights: Optional[Sequence[float]] = None):
        super().__init__()
        if solver not in ("euler", "heun"):
            raise ValueError(f"solver must be 'euler' or 'heun', got {solver!r}")
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        if num_teacher_steps < 2:
            raise ValueError(f"num_teacher_steps must be at least 2, got {num_teacher_steps}")
        if not 1 <= skip_steps < num_teacher_steps:
            raise ValueError(f"skip_steps must be in [1, num_teacher_steps - 1 = {num_teacher_steps - 1}], got {skip_steps}")
        self.num_teacher_steps = num_teacher_steps
        self.skip_steps = skip_steps
        levels = -(-(num_teacher_steps - 1) // skip_steps)  # n = 0, k, ..., below N-1
        weights = [1.0] * levels if level_weights is None else [float(w) for w in level_weights]
        if len(weights) != levels or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"level_weights must be {levels} non-negative numbers, not all 0 (one per level 0, "
                             f"{skip_steps}, ..., {(levels - 1) * skip_steps}), got {level_weights}")
        self.level_probs = [w / sum(weights) for w in weights]  # a list: models may be built on the meta device
        self.discretization = instantiate_from_config(default(discretization_config, TEACHER_DISCRETIZATION))
        self.guider_config = dict(default(guider_config, SVD_GUIDER))
        self.uncond_zero_keys = list(uncond_zero_keys)
        self.solver = solver
        self.boundary = ConsistencyBoundary(**(boundary_config or {}))
        self.distance = distance
        self.huber_c = huber_c

    # ------------------------------------------------------------------------------------ pieces
    @staticmethod
    def _model_inputs(batch: Dict, n: int, device, dtype):
        """(network keyword inputs, B, T): num_video_frames and image_only_indicator for videos."""
        t = frames_per_video(batch, n)
        if t is None:
            return {}, n, 1
        return video_model_inputs(n // t, t, device, dtype, batch.get("image_only_indicator")), n // t, t

    def teacher_step(self, teacher: nn.Module, denoiser: nn.Module, x: torch.Tensor, sigma: torch.Tensor,
                     sigma_next: torch.Tensor, c: Dict, uc: Dict, inputs: Dict, t: int) -> torch.Tensor:
        """x (N, C, h, w) at per-item sigma (N,) -> x at sigma_next (N,) by one guided ODE step."""
        guider = instantiate_from_config(guider_config_for_call(self.guider_config, t))  # this batch's frame count
        guided_inputs = dict(inputs)
        if "image_only_indicator" in inputs:
            guided_inputs["image_only_indicator"] = torch.cat([inputs["image_only_indicator"]] * 2)  # (2B, T)

        def guided(x_: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            x_in, s_in, c_in = guider.prepare_inputs(x_, s, c, uc)
            return guider(denoiser(teacher, x_in, s_in, c_in, **guided_inputs), s)

        d = to_d(x, sigma, guided(x, sigma))
        dt = append_dims(sigma_next - sigma, x.ndim)
        x_next = x + dt * d
        if self.solver == "heun":
            d_next = to_d(x_next, sigma_next, guided(x_next, sigma_next))
            x_next = x + dt * (d + d_next) / 2
        return x_next

    def teacher_steps(self, teacher: nn.Module, denoiser: nn.Module, x: torch.Tensor, grid: torch.Tensor,
                      n: torch.Tensor, m: torch.Tensor, c: Dict, uc: Dict, inputs: Dict, t: int) -> torch.Tensor:
        """x (N, C, h, w) at grid[n] -> x at grid[m] (n, m: (N,) grid indices, m - n <= k) by one teacher step
        per grid interval; items that reached m wait (their step is from grid[m] to grid[m], a no-op)."""
        for j in range(self.skip_steps):
            at, to = torch.minimum(n + j, m), torch.minimum(n + j + 1, m)
            x = self.teacher_step(teacher, denoiser, x, grid[at], grid[to], c, uc, inputs, t)
        return x

    def consistency(self, network: nn.Module, denoiser: nn.Module, x: torch.Tensor, sigma: torch.Tensor,
                    c: Dict, inputs: Dict) -> torch.Tensor:
        """f(x, sigma) of `network`: (N, C, h, w)."""
        return self.boundary.apply(x, denoiser(network, x, sigma, c, **inputs), sigma)

    def get_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Distance per example -> (N,)."""
        sq = ((pred - target) ** 2).reshape(pred.shape[0], -1).mean(1)
        if self.distance == "l2":
            return sq
        return (sq + self.huber_c**2).sqrt() - self.huber_c

    # ----------------------------------------------------------------------------------- forward
    def forward(self, network: nn.Module, target: nn.Module, teacher: nn.Module, denoiser: nn.Module,
                conditioner: nn.Module, input: torch.Tensor, batch: Dict) -> torch.Tensor:
        """input: clean latents (N, C, h, w) (N = B*T for videos). Returns the loss of each example (N,)."""
        c, uc = guidance_conditioning(conditioner, batch, self.uncond_zero_keys)  # dropout off, as SVD samples
        inputs, b, t = self._model_inputs(batch, input.shape[0], input.device, input.dtype)
        if t > 1:
            c, uc = expand_cond_per_frame(c, b, t), expand_cond_per_frame(uc, b, t)
        grid = self.discretization(self.num_teacher_steps, do_append_zero=False, device=input.device).to(input.dtype)
        last, k = self.num_teacher_steps - 1, self.skip_steps
        if len(set(self.level_probs)) == 1:
            level = torch.randint(0, len(self.level_probs), (b,), device=input.device)  # uniform, as Song et al.
        else:
            level = torch.multinomial(torch.tensor(self.level_probs), b, replacement=True).to(input.device)
        n = k * level.repeat_interleave(t)  # (B*T,) in 0, k, 2k, ...
        m = torch.clamp(n + k, max=last)
        sigma, sigma_next = grid[n], grid[m]
        x_hi = input + torch.randn_like(input) * append_dims(sigma, input.ndim)
        with torch.no_grad():
            x_lo = self.teacher_steps(teacher, denoiser, x_hi, grid, n, m, c, uc, inputs, t)
            goal = self.consistency(target, denoiser, x_lo, sigma_next, c, inputs)
        pred = self.consistency(network, denoiser, x_hi, sigma, c, inputs)
        return self.get_loss(pred, goal)
