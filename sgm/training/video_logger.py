"""Sampling short videos during training and logging them (mp4 files + a frame grid in TensorBoard)."""
import contextlib
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch

from ..models.video_sampling import guidance_conditioning

__all__ = ["VideoLogger", "frame_grid", "guidance_conditioning", "sample_like_batch", "to_uint8"]

logger = logging.getLogger(__name__)


def _take(batch: Dict, n: int) -> Dict:
    """The first n items of every per-example entry of a collated batch."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            out[key] = value[:n]
        elif isinstance(value, (list, tuple)):
            out[key] = value[:n]
        else:
            out[key] = value
    return out


@torch.no_grad()
def sample_like_batch(engine, batch: Dict, num_videos: int = 1, num_steps: Optional[int] = None,
                      uc_keys: Optional[Sequence[str]] = None, seed: int = 0) -> torch.Tensor:
    """Samples conditioned like the first `num_videos` items of a training batch.

    Returns (B, T, 3, H, W) in [-1, 1] for video batches, (B, 1, 3, H, W) for image batches.
    uc_keys: input keys whose embeddings are zeroed in the unconditional branch of guidance
    (default: see `sgm.models.video_sampling.guidance_conditioning`).
    """
    batch = _take(batch, num_videos)
    x = batch[engine.input_key]
    b, t = x.shape[0], (x.shape[1] if x.ndim == 5 else 1)
    generator = torch.Generator(device=engine.device).manual_seed(seed)
    noise = torch.randn(b * t, *engine.latent_shape(*x.shape[-2:]), generator=generator, device=engine.device)
    z = engine.sample_video(batch, t, noise, num_steps=num_steps, uc_keys=uc_keys, generator=generator)
    frames = torch.cat([engine.decode_first_stage(z[i * t:(i + 1) * t], n_samples_a_time=t) for i in range(b)])  # (B*T, 3, H, W)
    return frames.float().clamp(-1, 1).reshape(b, t, *frames.shape[1:])


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8."""
    x = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def frame_grid(videos: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) in [-1, 1] -> one image (3, B*H, T*W) in [0, 1]: a row per video."""
    b, t, c, h, w = videos.shape
    grid = videos.permute(2, 0, 3, 1, 4).reshape(c, b * h, t * w)
    return (grid.float().clamp(-1, 1) + 1) / 2


class VideoLogger(pl.Callback):
    """Every `every_n_steps` optimizer steps, samples videos conditioned like the current batch (with
    the EMA weights when the model keeps them) and writes them to `<run dir>/videos/` as mp4 plus a
    PNG grid of frames, and the grid (samples above, training clips below) to TensorBoard.

    NOTE: TensorBoard's add_video needs moviepy, which we do not depend on; the mp4 files are the videos.

    every_n_steps: logging interval in optimizer steps (0 = never). max_videos: videos per log.
    num_steps: sampler steps (default: the sampler's own). fps: frame rate of the mp4 files (default:
    the rate each video was conditioned on, its `fps_id` + 1, else 7).
    log_first_step: also log at step 0, before any training (a baseline). uc_keys: see
    sample_like_batch. seed: seed of the initial noise (fixed, so logs are comparable over steps).
    use_ema: sample with the EMA weights when the model has them. Sampling runs on every rank (so
    sharded strategies stay in step); only rank zero writes.
    """

    def __init__(self, every_n_steps: int = 1000, max_videos: int = 2, num_steps: Optional[int] = None, fps: Optional[int] = None,
                 log_first_step: bool = False, uc_keys: Optional[List[str]] = None, seed: int = 0, use_ema: bool = True):
        if every_n_steps < 0 or max_videos < 1:
            raise ValueError("every_n_steps must be >= 0 and max_videos >= 1")
        self.every_n_steps = every_n_steps
        self.max_videos = max_videos
        self.num_steps = num_steps
        self.fps = fps
        self.log_first_step = log_first_step
        self.uc_keys = uc_keys
        self.seed = seed
        self.use_ema = use_ema
        self._last_logged = -1

    def _due(self, step: int) -> bool:
        if self.every_n_steps == 0 or step == self._last_logged:
            return False
        return (step > 0 and step % self.every_n_steps == 0) or (step == 0 and self.log_first_step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 0 and self._due(0):
            self.log_videos(trainer, pl_module, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._due(trainer.global_step):
            self.log_videos(trainer, pl_module, batch)

    def video_fps(self, batch: Dict, i: int) -> int:
        """The mp4 frame rate of the i-th logged video."""
        if self.fps is not None:
            return int(self.fps)
        fps_id = batch.get("fps_id")
        if isinstance(fps_id, torch.Tensor) and fps_id.ndim == 1 and len(fps_id) > i:
            return int(fps_id[i]) + 1  # NOTE: SVD conditions on fps - 1
        return 7

    def log_videos(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Dict) -> Optional[Path]:
        step = trainer.global_step
        self._last_logged = step
        was_training = pl_module.training
        pl_module.eval()
        try:
            scope = pl_module.ema_scope() if self.use_ema else contextlib.nullcontext()
            with scope, torch.autocast(pl_module.device.type, enabled=False):
                samples = sample_like_batch(pl_module, batch, self.max_videos, self.num_steps, self.uc_keys, self.seed)
        finally:
            pl_module.train(was_training)
        if not trainer.is_global_zero:
            return None
        out_dir = Path(trainer.default_root_dir) / "videos"
        out_dir.mkdir(parents=True, exist_ok=True)
        from ..inference.writers import write_mp4
        from PIL import Image

        for i, video in enumerate(to_uint8(samples)):
            write_mp4(video, out_dir / f"step{step:08d}_{i}.mp4", self.video_fps(batch, i))
        real = batch[pl_module.input_key][: samples.shape[0]]
        real = real if real.ndim == 5 else real[:, None]
        grid = frame_grid(torch.cat([samples, real.to(samples)], dim=0))
        png = out_dir / f"step{step:08d}_grid.png"
        Image.fromarray(to_uint8(grid * 2 - 1)).save(png)
        for lg in trainer.loggers:
            if isinstance(lg, pl.loggers.TensorBoardLogger):
                lg.experiment.add_image("samples/top_generated_bottom_data", grid, global_step=step)
        logger.info("step %d: logged %d sampled videos to %s", step, samples.shape[0], out_dir)
        return png
