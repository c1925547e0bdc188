"""Measurements on videos of the synthetic shapes (sgm.data.synthetic): how close two frames are (PSNR), where
the shape went (its displacement between two frames, on the torus the shapes wrap around), and a contact sheet
to look at. Frames are uint8 (H, W, 3) arrays; videos (T, H, W, 3)."""
from typing import Dict, Sequence, Tuple

import numpy as np

__all__ = ["psnr", "shape_mask", "displacement", "motion_report", "contact_sheet"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (peak 255); 99 dB for identical images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def shape_mask(frame: np.ndarray, threshold: float = 60.0) -> np.ndarray:
    """Boolean (H, W) mask of the pixels far (summed |RGB difference| > threshold) from the frame's background,
    taken as its median colour (the background covers most of a toy frame)."""
    background = np.median(frame.reshape(-1, 3).astype(np.float64), axis=0)
    return np.abs(frame.astype(np.float64) - background).sum(-1) > threshold


def displacement(first: np.ndarray, last: np.ndarray) -> Tuple[float, float]:
    """(dx, dy) in pixels that best moves the shape of `first` onto the shape of `last`: the peak of the
    circular cross-correlation of their masks (shapes wrap around the frame edges), in [-W/2, W/2) x [-H/2, H/2)."""
    a, b = shape_mask(first).astype(np.float64), shape_mask(last).astype(np.float64)
    if a.sum() == 0 or b.sum() == 0:
        return float("nan"), float("nan")
    corr = np.real(np.fft.ifft2(np.conj(np.fft.fft2(a)) * np.fft.fft2(b)))
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    return float((dx + w // 2) % w - w // 2), float((dy + h // 2) % h - h // 2)


def motion_report(sample: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    """How a sampled video (T, H, W, 3) moves compared with the true clip (T, H, W, 3) it was conditioned on:

    - frame0_psnr_db: sampled frame 0 vs the conditioning frame (true frame 0);
    - true/sample displacement (dx, dy) between frames 0 and T-1, their cosine and size ratio; direction_agrees
      when the cosine is above cos(45 deg), size_within_0.5_2x when the ratio is in [0.5, 2];
    - later_mse_sample / later_mse_repeat: mean squared error of frames 1..T-1 of the sample, and of the
      conditioning frame repeated, against the true frames 1..T-1; closer_than_repeat when the sample's is lower.
    """
    if sample.shape != truth.shape:
        raise ValueError(f"sample {sample.shape} and true clip {truth.shape} differ in shape")
    sd, td = np.array(displacement(sample[0], sample[-1])), np.array(displacement(truth[0], truth[-1]))
    s_norm, t_norm = float(np.linalg.norm(sd)), float(np.linalg.norm(td))
    cosine = float(sd @ td / (s_norm * t_norm)) if s_norm > 0 and t_norm > 0 else float("nan")
    ratio = s_norm / t_norm if t_norm > 0 else float("nan")
    true_later = truth[1:].astype(np.float64)
    mse_sample = float(np.mean((sample[1:].astype(np.float64) - true_later) ** 2))
    mse_repeat = float(np.mean((truth[:1].astype(np.float64) - true_later) ** 2))
    return {
        "frame0_psnr_db": psnr(sample[0], truth[0]),
        "true_displacement": [float(td[0]), float(td[1])],
        "sample_displacement": [float(sd[0]), float(sd[1])],
        "direction_cosine": cosine,
        "direction_agrees": bool(cosine > np.cos(np.pi / 4)),
        "size_ratio": ratio,
        "size_within_0.5_2x": bool(0.5 <= ratio <= 2.0),
        "later_mse_sample": mse_sample,
        "later_mse_repeat": mse_repeat,
        "closer_than_repeat": bool(mse_sample < mse_repeat),
    }


def contact_sheet(rows: Sequence[np.ndarray], scale: int = 4, gap: int = 2) -> np.ndarray:
    """One uint8 image of videos (T, H, W, 3) as rows of frames (e.g. sampled above true), each pixel
    enlarged `scale` times, with `gap`-pixel white lines between frames."""
    t, h, w, _ = rows[0].shape
    H, W = h * scale, w * scale
    sheet = np.full((len(rows) * (H + gap) - gap, t * (W + gap) - gap, 3), 255, np.uint8)
    for r, video in enumerate(rows):
        for i, frame in enumerate(video):
            big = frame.repeat(scale, axis=0).repeat(scale, axis=1)
            sheet[r * (H + gap):r * (H + gap) + H, i * (W + gap):i * (W + gap) + W] = big
    return sheet
