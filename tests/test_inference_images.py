"""Reading and fitting input images; options; seeds."""
import numpy as np
import pytest
from PIL import Image

from sgm.inference import ImageReadError, SamplingOptions
from sgm.inference.images import cover_and_crop, is_image_path, load_image, warn_if_off_trained_size
from sgm.inference.inputs import expand_inputs
from sgm.inference.options import defaults_from_config
from sgm.inference.seeds import derive_seed, image_fingerprint
from tests.helpers import tiny_config


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 6:, 3] = 255  # right half opaque red, left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = np.asarray(load_image(tmp_path / "a.png"))
    assert rgb.shape == (10, 12, 3)
    assert (rgb[:, :6] == 255).all() and (rgb[:, 6:] == [255, 0, 0]).all()


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "LA", "I;16"])
def test_other_modes_become_rgb(mode):
    image = Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).convert(mode)
    out = load_image(image)
    assert out.mode == "RGB" and out.size == (8, 8)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    image.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "r.jpg").size == (10, 20)


def test_exif_orientation_reaches_the_model_input_in_sampler_and_demo(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 (turn 90 degrees clockwise to show) conditions
    the video upright, whether it comes from the sampler's --input_path or a demo upload."""
    from sgm.demo.uploads import read_upload

    upright = np.zeros((64, 32, 3), np.uint8)  # portrait, red block top-left
    upright[:16, :16] = (255, 0, 0)
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))  # 32x64 landscape, as the camera wrote it
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif.tobytes())
    for image in (load_image(tmp_path / "phone.jpg"), read_upload(str(tmp_path / "phone.jpg"))):
        crop = np.asarray(cover_and_crop(image, 16, 32)).astype(int)  # the pipeline's prepare_image step
        assert crop.shape == (32, 16, 3)
        assert crop[:6, :6, 0].mean() > 200 and crop[:6, :6, 1:].mean() < 60  # red block still top-left


def test_unreadable_files_raise_a_clear_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="bad.png: cannot be read as an image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ImageReadError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


def test_oversized_image_is_a_read_error_not_a_crash(tmp_path, monkeypatch):
    Image.new("RGB", (40, 30)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # Pillow refuses above twice this
    with pytest.raises(ImageReadError, match="huge.png: .*downscale it first"):
        load_image(tmp_path / "huge.png")


def test_cover_and_crop_with_offset():
    # 200x100 image, left half black, right half white, cropped to 100x100
    arr = np.zeros((100, 200, 3), np.uint8)
    arr[:, 100:] = 255
    image = Image.fromarray(arr)
    assert np.asarray(cover_and_crop(image, 100, 100, (0.0, 0.5))).mean() < 5
    assert np.asarray(cover_and_crop(image, 100, 100, (1.0, 0.5))).mean() > 250
    tall = cover_and_crop(Image.fromarray(np.zeros((333, 57, 3), np.uint8)), 128, 64)
    assert tall.size == (128, 64)


def test_off_trained_size_warning():
    with pytest.warns(UserWarning, match="trained at 1024x576"):
        warn_if_off_trained_size(512, 512)


def test_suffixes_in_any_case_and_folder_expansion(tmp_path):
    assert is_image_path("a.JPG") and is_image_path("b.WebP") and not is_image_path("c.txt")
    for name in ("b.PNG", "a.jpeg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in expand_inputs(str(tmp_path))] == ["a.jpeg", "b.PNG"]
    assert [p.name for p in expand_inputs(str(tmp_path / "*.PNG"))] == ["b.PNG"]
    assert [p.name for p in expand_inputs(str(tmp_path / "*"))] == ["a.jpeg", "b.PNG"]  # notes.txt skipped
    with pytest.raises(ValueError, match="no jpg/png/webp images match .*1 other file"):
        expand_inputs(str(tmp_path / "*.txt"))
    with pytest.raises(ValueError, match="not a file, a folder or a glob"):
        expand_inputs(str(tmp_path / "nothing.png"))


def test_defaults_from_config_and_validation():
    d = defaults_from_config(tiny_config())
    assert (d.num_frames, d.num_steps, d.height, d.width, d.sampler) == (4, 4, 64, 128, "euler")
    assert (d.min_cfg, d.max_cfg) == (1.0, 2.5)  # from the guider config
    filled = SamplingOptions(num_frames=2).filled(d)
    assert filled.num_frames == 2 and filled.num_steps == 4
    for bad in (dict(motion_bucket_id=300), dict(height=100), dict(crop_offset=(2, 0)), dict(sampler="x"), dict(num_frames=0)):
        with pytest.raises(ValueError):
            SamplingOptions(**bad).filled(d)


def test_default_sampler_is_the_one_the_model_config_names():
    heun = tiny_config(**{"model.params.sampler_config.target": "sgm.modules.diffusionmodules.sampling.HeunEDMSampler"})
    assert defaults_from_config(heun).sampler == "heun"
    heun.sampling.sampler = "euler_a"  # the sampling: section still wins
    assert defaults_from_config(heun).sampler == "euler_a"


def test_vanilla_cfg_scale_is_the_default_guidance():
    cfg = tiny_config()
    cfg.model.params.sampler_config.params.guider_config = {
        "target": "sgm.modules.diffusionmodules.guiders.VanillaCFG", "params": {"scale": 7.5}}
    assert defaults_from_config(cfg).max_cfg == 7.5  # not the 2.5 fallback


def test_derived_seeds_depend_on_pixels_and_index_only():
    a = Image.fromarray(np.zeros((4, 4, 3), np.uint8))
    b = Image.fromarray(np.ones((4, 4, 3), np.uint8))
    fa, fb = image_fingerprint(a), image_fingerprint(b)
    assert fa == image_fingerprint(a.copy())
    seeds = {derive_seed(23, fa, 0), derive_seed(23, fa, 1), derive_seed(23, fb, 0), derive_seed(24, fa, 0)}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)
