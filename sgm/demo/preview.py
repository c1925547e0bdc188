"""The crop preview: which part of the uploaded image becomes the video's first frame."""
from typing import Tuple

from PIL import Image, ImageDraw

Box = Tuple[float, float, float, float]


def crop_box(image_size: Tuple[int, int], width: int, height: int, crop_offset: Tuple[float, float]) -> Box:
    """(left, top, right, bottom) in the uploaded image's pixels of the region that ends up in the
    width x height frame.

    The geometry of `sgm.inference.images.cover_and_crop` (resize to the smallest size covering
    width x height, aspect kept, then cut width x height at `crop_offset`), in source pixels.
    """
    from ..inference.images import cover_geometry

    (new_w, new_h), (left, top) = cover_geometry(image_size, width, height, crop_offset)
    sx, sy = new_w / image_size[0], new_h / image_size[1]  # resized pixels per source pixel
    return (left / sx, top / sy, (left + width) / sx, (top + height) / sy)


def draw_crop_preview(image: Image.Image, width: int, height: int, crop_offset: Tuple[float, float],
                      max_side: int = 640) -> Image.Image:
    """`image` (RGB) shrunk to at most `max_side` pixels, with the part outside the crop darkened and
    the crop outlined."""
    shown = image.copy()
    shown.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    k = shown.width / image.width
    left, top, right, bottom = (v * k for v in crop_box(image.size, width, height, crop_offset))
    shade = Image.new("L", shown.size, 110)  # outside: 110/255 of the original brightness
    ImageDraw.Draw(shade).rectangle((left, top, right - 1, bottom - 1), fill=255)
    dark = Image.new("RGB", shown.size, (0, 0, 0))
    out = Image.composite(shown, dark, shade)
    line = max(1, round(min(shown.size) / 160))
    ImageDraw.Draw(out).rectangle((left, top, right - 1, bottom - 1), outline=(255, 214, 0), width=line)
    return out
