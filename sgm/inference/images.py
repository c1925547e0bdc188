"""Reading input images of any common kind and fitting them to the model's frame size."""
import os
import warnings
from pathlib import Path
from typing import Tuple, Union

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ImageLike = Union[str, os.PathLike, Image.Image]


def is_image_path(path: Union[str, os.PathLike]) -> bool:
    """True for jpg/jpeg/png/webp in any letter case."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def to_rgb(image: Image.Image, background: Tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB copy of `image`: EXIF orientation applied, transparency composited on `background`,
    L/LA/P/CMYK/I/F converted."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        image = ImageOps.autocontrast(image.convert("F").convert("L")) if image.mode == "F" else image.point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


def load_image(image: ImageLike) -> Image.Image:
    """An RGB PIL image from a path or a PIL image; ImageReadError names the file and the reason."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    path = Path(image)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: {e}; downscale it first (the model sees at most a few megapixels)") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: cannot be read as an image ({type(e).__name__}: {e}); "
                             f"use a jpg, png or webp file") from e


def cover_geometry(size: Tuple[int, int], width: int, height: int,
                   crop_offset: Tuple[float, float] = (0.5, 0.5)) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """((resized_w, resized_h), (left, top)) for `cover_and_crop` of an image of `size` (w, h): the
    smallest size covering width x height with the aspect kept, and where the crop starts in it."""
    w, h = size
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    left = round((new_w - width) * float(crop_offset[0]))
    top = round((new_h - height) * float(crop_offset[1]))
    return (new_w, new_h), (left, top)


def cover_and_crop(image: Image.Image, width: int, height: int, crop_offset: Tuple[float, float] = (0.5, 0.5)) -> Image.Image:
    """Resize `image` to the smallest size that covers width x height (aspect kept), then crop
    width x height out of it; crop_offset (x, y) in [0, 1] places the crop (0.5, 0.5 = centre)."""
    (new_w, new_h), (left, top) = cover_geometry(image.size, width, height, crop_offset)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
    return image.crop((left, top, left + width, top + height))


def warn_if_off_trained_size(width: int, height: int, trained: Tuple[int, int] = (1024, 576)) -> None:
    """Warn when the frame size differs from the size the model was trained at (width, height)."""
    if (width, height) != tuple(trained):
        warnings.warn(f"sampling at {width}x{height}, but the model was trained at {trained[0]}x{trained[1]}; "
                      f"expect lower quality off the trained size", stacklevel=3)
