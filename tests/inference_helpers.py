"""Shared by the inference tests: a tiny SVD checkpoint written once per test session, the pipeline
loaded from it, and input images of every kind the CLI must accept."""
import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.helpers import TINY_CONFIG, build_tiny_model

_TMP = Path(tempfile.mkdtemp(prefix="sgm_inference_tests_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def tiny_checkpoint() -> Path:
    """A safetensors checkpoint of the tiny config with deterministic (non-zero) weights."""
    from safetensors.torch import save_file

    model = build_tiny_model(seed=0)
    path = _TMP / "svd_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@functools.lru_cache(maxsize=None)
def tiny_pipeline():
    """The tiny model loaded through VideoPipeline.load from that checkpoint, on the CPU in fp32."""
    from sgm.inference import VideoPipeline

    torch.set_num_threads(1)
    return VideoPipeline.load(config=str(TINY_CONFIG), ckpt=str(tiny_checkpoint()), device="cpu", dtype="fp32")


def random_rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def make_acceptance_folder(folder: Path) -> dict:
    """The issue's folder: an odd-sized RGBA png, a grayscale jpg, an uppercase .JPG, a .webp and a
    corrupt file. Returns {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgba = np.concatenate([random_rgb(77, 131, 1), (rng.random((77, 131, 1)) * 255).astype(np.uint8)], axis=2)
    files = {
        "rgba.png": lambda p: Image.fromarray(rgba, "RGBA").save(p),
        "gray.jpg": lambda p: Image.fromarray(random_rgb(90, 90, 2)[:, :, 0], "L").save(p),
        "upper.JPG": lambda p: Image.fromarray(random_rgb(70, 200, 3)).save(p, format="JPEG"),
        "photo.webp": lambda p: Image.fromarray(random_rgb(64, 128, 4)).save(p),
        "broken.png": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png"),
    }
    paths = {}
    for name, write in files.items():
        write(folder / name)
        paths[name] = folder / name
    return paths


def read_video(path: Path):
    """(frames (T, H, W, 3) uint8, fps, codec name, pixel format) read back with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, float(stream.average_rate), stream.codec_context.name, stream.codec_context.pix_fmt
