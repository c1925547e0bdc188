"""Per-video seeds that depend on the base seed, the image's pixels and the video index, never on the
order of the inputs or how many are processed together."""
import hashlib

import numpy as np
import torch
from PIL import Image


def image_fingerprint(image: Image.Image) -> str:
    """SHA-256 of the image's size, mode and pixels (hex). Two files with the same pixels share it."""
    digest = hashlib.sha256(f"{image.size}{image.mode}".encode())
    digest.update(np.asarray(image).tobytes())
    return digest.hexdigest()


def derive_seed(base_seed: int, fingerprint: str, video_index: int = 0) -> int:
    """A 63-bit seed from the base seed, the image fingerprint and the index of the video made from it."""
    digest = hashlib.sha256(f"{int(base_seed)}:{fingerprint}:{int(video_index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator; noise is drawn on the CPU and moved, so results match across devices."""
    return torch.Generator(device="cpu").manual_seed(int(seed))
