"""The conditioning of one video, built exactly as the original SVD sampling script builds it."""
from typing import Dict, Tuple

import torch
from einops import repeat

# Embeddings of the conditioning frame are zeroed in the unconditional branch of guidance.
UC_ZERO_KEYS = ["cond_frames", "cond_frames_without_noise"]


def video_batch(image: torch.Tensor, cond_noise: torch.Tensor, num_frames: int, fps_id: int, motion_bucket_id: int,
                cond_aug: float) -> Dict:
    """The conditioner's input for one video.

    image: (1, 3, H, W) in [-1, 1]; cond_noise: (1, 3, H, W) unit noise. The scalar conditions are
    repeated T times (one vector row per frame); the frames stay one per video.
    NOTE: fps_id is the frame rate minus one, as SVD was trained.
    """
    device = image.device
    t = num_frames
    return {
        "cond_frames_without_noise": image,
        "cond_frames": image + cond_aug * cond_noise,
        "fps_id": torch.tensor([fps_id], device=device).repeat(t),
        "motion_bucket_id": torch.tensor([motion_bucket_id], device=device).repeat(t),
        "cond_aug": torch.tensor([cond_aug], device=device).repeat(t),
        "num_video_frames": t,
    }


def video_conditioning(conditioner, batch: Dict, num_frames: int) -> Tuple[Dict, Dict]:
    """(c, uc) for guided sampling of one video: `vector` (T, D); `crossattn` (1, n, D) and `concat`
    (1, C, h, w) repeated to one entry per frame, (T, ...)."""
    c, uc = conditioner.get_unconditional_conditioning(batch, force_uc_zero_embeddings=UC_ZERO_KEYS)
    for cond in (c, uc):
        for key in ("crossattn", "concat"):
            if key in cond:
                cond[key] = repeat(cond[key], "b ... -> (b t) ...", t=num_frames)
    return c, uc
