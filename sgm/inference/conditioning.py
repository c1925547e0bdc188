"""The conditioning of one video, built exactly as the original SVD sampling script builds it."""
from typing import Dict, Optional, Tuple

import torch

from ..models.video_sampling import guidance_conditioning
from ..modules.diffusionmodules.video_frames import expand_cond_per_frame

# Embeddings of the conditioning frame are zeroed in the unconditional branch of guidance.
UC_ZERO_KEYS = ["cond_frames", "cond_frames_without_noise"]


def video_batch(image: torch.Tensor, cond_noise: torch.Tensor, num_frames: int, fps_id: int, motion_bucket_id: int,
                cond_aug: float, clip_image: Optional[torch.Tensor] = None) -> Dict:
    """The conditioner's input for one video.

    image: (1, 3, H, W) in [-1, 1], the frame the video starts on (its noise-augmented latent is
    concatenated to every frame); cond_noise: (1, 3, H, W) unit noise. clip_image: (1, 3, H, W) in
    [-1, 1], the image whose CLIP embedding the network attends to (default: `image`, as SVD was
    trained; chained clips pass the video's first frame, docs/sampling.md "Longer videos"). The scalar
    conditions are repeated T times (one vector row per frame); the frames stay one per video.
    NOTE: fps_id is the frame rate minus one, as SVD was trained.
    """
    device = image.device
    t = num_frames
    return {
        "cond_frames_without_noise": image if clip_image is None else clip_image,
        "cond_frames": image + cond_aug * cond_noise,
        "fps_id": torch.tensor([fps_id], device=device).repeat(t),
        "motion_bucket_id": torch.tensor([motion_bucket_id], device=device).repeat(t),
        "cond_aug": torch.tensor([cond_aug], device=device).repeat(t),
        "num_video_frames": t,
    }


def video_conditioning(conditioner, batch: Dict, num_frames: int) -> Tuple[Dict, Dict]:
    """(c, uc) for guided sampling of one video, one row per frame: `vector` (T, D), `crossattn`
    (T, n, D), `concat` (T, C, h, w). (`DiffusionEngine.sample_video` does this itself.)"""
    c, uc = guidance_conditioning(conditioner, batch, UC_ZERO_KEYS)
    return expand_cond_per_frame(c, 1, num_frames), expand_cond_per_frame(uc, 1, num_frames)
