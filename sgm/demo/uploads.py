"""Reading an uploaded file as an RGB image, refusing what the demo cannot use."""
import warnings
from pathlib import Path
from typing import Optional

from PIL import Image, UnidentifiedImageError

# A 20 MB PNG can hold a decompression bomb of billions of pixels; 64 MP is a 9000x7000 photo.
MAX_PIXELS = 64_000_000


class UploadError(ValueError):
    """The uploaded file cannot be used; the message says why and what to upload instead."""


def read_upload(path: Optional[str], max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The upload at `path` as an RGB image (EXIF orientation applied, transparency on white)."""
    if not path:
        raise UploadError("no image uploaded: drop a jpg, png or webp file on the upload box")
    name = Path(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                size = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as e:
        raise UploadError(f"{name} is not an image this demo can read ({type(e).__name__}); "
                          f"upload a jpg, png or webp file") from e
    if size[0] * size[1] > max_pixels:
        raise UploadError(f"{name} is {size[0]}x{size[1]} pixels, more than the {max_pixels / 1e6:.0f} MP this demo "
                          f"accepts; downscale it first")
    from ..inference import InferenceError
    from ..inference.images import load_image

    try:
        return load_image(path)
    except InferenceError as e:
        raise UploadError(f"{name} cannot be decoded as an image; upload a jpg, png or webp file ({e})") from e
