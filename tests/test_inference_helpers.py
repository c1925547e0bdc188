"""sgm.inference.helpers: the names the original's scripts import from it."""
import numpy as np
import pytest
import torch

from sgm.inference.helpers import (Img2ImgDiscretizationWrapper, embed_watermark, get_batch,
                                   get_unique_embedder_keys_from_conditioner, perform_save_locally)
from sgm.inference.watermark import WATERMARK_BITS, read_watermark
from sgm.modules.diffusionmodules.discretizer import EDMDiscretization

pytest.importorskip("imwatermark")


def test_embed_watermark_marks_float_frames_readably():
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 256, 320) * 0.6 + 0.2  # (T, 3, H, W) in [0, 1], as the video script passes them
    marked = embed_watermark(frames)
    assert marked.shape == frames.shape and marked.min() >= 0 and marked.max() <= 1
    assert 0 < (marked - frames).abs().mean() < 0.1  # changed, mildly (random frames are its worst case)
    pixels = (marked[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.mean(np.array(read_watermark(pixels)) == np.array(WATERMARK_BITS)) > 0.9
    assert torch.equal(embed_watermark(frames[None])[0], marked)  # (N, B, 3, H, W) too


def test_perform_save_locally_numbers_the_files(tmp_path):
    perform_save_locally(str(tmp_path), torch.rand(2, 3, 256, 256))
    perform_save_locally(str(tmp_path), torch.rand(1, 3, 256, 256))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i:09}.png" for i in range(3)]


def test_img2img_wrapper_keeps_the_lowest_sigmas():
    d = EDMDiscretization()
    full = d(10)
    assert torch.equal(Img2ImgDiscretizationWrapper(d, 1.0)(10), full)
    assert torch.equal(Img2ImgDiscretizationWrapper(d, 0.5)(10), full[-5:])
    assert torch.equal(Img2ImgDiscretizationWrapper(d, 0.0)(10), full[-1:])
    with pytest.raises(ValueError, match="strength"):
        Img2ImgDiscretizationWrapper(d, 1.5)


def test_get_batch_and_embedder_keys():
    batch, batch_uc = get_batch(["txt", "aesthetic_score", "other"],
                                {"prompt": "a", "negative_prompt": "", "aesthetic_score": 6.0,
                                 "negative_aesthetic_score": 2.5, "other": torch.ones(2)}, [2], device="cpu")
    assert batch["txt"] == ["a", "a"] and batch_uc["txt"] == ["", ""]
    assert batch["aesthetic_score"].shape == (2, 1) and float(batch_uc["aesthetic_score"][0]) == 2.5
    assert torch.equal(batch_uc["other"], batch["other"]) and batch_uc["other"] is not batch["other"]

    class E:
        def __init__(self, key):
            self.input_key = key

    class Cond:
        embedders = [E("a"), E("b"), E("a")]

    assert sorted(get_unique_embedder_keys_from_conditioner(Cond())) == ["a", "b"]
