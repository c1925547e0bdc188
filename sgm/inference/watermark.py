"""The original's invisible watermark: a fixed 48-bit message embedded in every frame with the
DWT-DCT method of the `invisible-watermark` package (imported only when used)."""
import dataclasses

import numpy as np

from .result import VideoResult

# The message the original SVD sampling script embeds (as its list of bits).
WATERMARK_MESSAGE = 0b101100111110110010010000011110111011000110011110
WATERMARK_BITS = [int(bit) for bit in bin(WATERMARK_MESSAGE)[2:]]
MIN_PIXELS = 256 * 256  # the DWT-DCT embedder refuses smaller frames


def _imwatermark():
    try:
        import imwatermark
    except ImportError as e:
        raise ImportError("the invisible watermark needs the 'invisible-watermark' package: "
                          "pip install invisible-watermark (or the project's [watermark] extra)") from e
    return imwatermark


def check_watermark(width: int, height: int) -> None:
    """Raise before any sampling if frames of width x height cannot be watermarked: ValueError when
    they are too small, ImportError when the package is missing."""
    if width * height < MIN_PIXELS:
        raise ValueError(f"the DWT-DCT watermark needs frames of at least 256x256 pixels in area, got "
                         f"{width}x{height}; sample larger or leave the watermark off")
    _imwatermark()


def watermark_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB with the SVD watermark embedded in each frame (a new array)."""
    check_watermark(frames.shape[2], frames.shape[1])
    encoder = _imwatermark().WatermarkEncoder()
    encoder.set_watermark("bits", WATERMARK_BITS)
    # NOTE: the embedder expects OpenCV's BGR channel order, as the original passes it.
    return np.stack([encoder.encode(np.ascontiguousarray(f[:, :, ::-1]), "dwtDct")[:, :, ::-1] for f in frames])


def read_watermark(frame: np.ndarray) -> list:
    """The 48 bits read back from one (H, W, 3) uint8 RGB frame."""
    decoder = _imwatermark().WatermarkDecoder("bits", len(WATERMARK_BITS))
    return [int(b) for b in decoder.decode(np.ascontiguousarray(frame[:, :, ::-1]), "dwtDct")]


def add_watermark(result: VideoResult) -> VideoResult:
    """A copy of `result` with watermarked frames; settings record it."""
    settings = dict(result.settings, watermark="dwtDct")
    return dataclasses.replace(result, frames=watermark_frames(result.frames), settings=settings)
