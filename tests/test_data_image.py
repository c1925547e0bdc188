"""Image dataset for stage 1: `jpg` in [-1, 1] at (H, W), captions from json or txt, bad images counted."""
import numpy as np
import torch

from sgm.data.image import ImageDataModule, ImageDataset
from sgm.data.synthetic import write_toy_image_shards
from tests.data_helpers import image_sample, write_shard


def _gradient(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 whose red channel rises left to right, so crops are recognisable."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, width, dtype=np.float32).round().astype(np.uint8)[None]
    return image


def test_image_samples_keys_range_captions_and_centre_crop(tmp_path):
    shard = write_shard(tmp_path / "a.tar", [
        image_sample("json", _gradient(20, 60), "from json"),
        image_sample("txt", _gradient(20, 60), "from txt", as_txt=True),
    ])
    ds = ImageDataset(str(shard), size=(10, 10), crop="center", shuffle_buffer=0)
    out = list(ds)
    assert [s["txt"] for s in out] == ["from json", "from txt"]
    for s in out:
        assert set(s) == {"jpg", "txt"}
        assert s["jpg"].shape == (3, 10, 10) and s["jpg"].dtype == torch.float32
        assert -1 <= s["jpg"].min() and s["jpg"].max() <= 1
        # Halved to 10 x 30, centre columns 10..19; resized column j averages input columns 2j and 2j+1.
        red = (s["jpg"][0, 0] + 1) * 127.5  # (10,)
        assert abs(red[0] - 20.5 * 255 / 59) < 3 and abs(red[-1] - 38.5 * 255 / 59) < 3
        assert torch.all(red[1:] >= red[:-1])


def test_random_crops_differ_and_stay_inside(tmp_path):
    shard = write_shard(tmp_path / "a.tar", [image_sample("g", _gradient(20, 60), "x")])
    lefts = set()
    ds = ImageDataset(str(shard), size=(10, 10), crop="random", seed=0)
    for _ in range(15):
        red = (next(iter(ds))["jpg"][0, 0] + 1) * 127.5
        lefts.add(round(red[0].item()))
    assert len(lefts) > 4 and max(lefts) <= 40.5 * 255 / 59 + 3  # left edge at resized column 0..20


def test_bad_images_and_missing_captions_are_skipped_and_counted(tmp_path):
    broken = image_sample("broken", _gradient(8, 8), "broken")
    broken["png"] = b"\x89PNG\r\n\x1a\n" + b"garbage" * 20
    nocap = image_sample("nocap", _gradient(8, 8), caption=None)
    badjson = image_sample("badjson", _gradient(8, 8), "x")
    badjson["json"] = b"{oops"
    shard = write_shard(tmp_path / "a.tar", [image_sample("ok", _gradient(8, 8), "fine"), broken, nocap, badjson])
    ds = ImageDataset(str(shard), size=(8, 8), shuffle_buffer=0, keep_key=True)
    assert [s["__key__"] for s in ds] == ["ok"]
    assert ds.skipped["corrupt_image"] == 1 and ds.skipped["missing_member"] == 1 and ds.skipped["bad_json"] == 1
    lenient = ImageDataset(str(shard), size=(8, 8), shuffle_buffer=0, keep_key=True, require_caption=False)
    assert [(s["__key__"], s["txt"]) for s in lenient] == [("ok", "fine"), ("nocap", "")]


def test_image_datamodule_on_toy_shards(tmp_path):
    write_toy_image_shards(tmp_path, 2, 3, size=(16, 16), seed=0)
    dm = ImageDataModule(train={"shards": f"{tmp_path}/toy-image-{{000000..000001}}.tar", "size": [8, 8]},
                         batch_size=4)
    batches = list(dm.train_dataloader())
    assert [b["jpg"].shape for b in batches] == [(4, 3, 8, 8), (2, 3, 8, 8)]
    assert all(isinstance(t, str) and t for b in batches for t in b["txt"])
    assert sum(dm.skipped.values()) == 0


def test_large_jpegs_decode_reduced_but_still_cover_the_size(tmp_path):
    import io

    from PIL import Image

    image = _gradient(400, 1200)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    shard = write_shard(tmp_path / "a.tar", [{"__key__": "big", "jpg": buf.getvalue(), "txt": b"big"}])
    s = next(iter(ImageDataset(str(shard), size=(40, 40), crop="center")))
    assert s["jpg"].shape == (3, 40, 40)
    red = (s["jpg"][0, 20] + 1) * 127.5  # centre 40 of 120 resized columns: 1/3 to 2/3 of the ramp
    assert abs(red[0] - 85) < 6 and abs(red[-1] - 170) < 6
