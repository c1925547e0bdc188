"""Writing videos: mp4 H.264 yuv420p at fps_id + 1, webm, gif, webp, png frames, sidecar, input frame;
the watermark."""
import json

import numpy as np
import pytest
from PIL import Image

from sgm.inference import VideoResult, write_video
from sgm.inference.writers import parse_formats
from tests.inference_helpers import random_rgb, read_video


@pytest.fixture
def result():
    # smooth colour gradients that brighten over time (noise would not survive 4:2:0 chroma subsampling)
    y, x = np.mgrid[0:64, 0:96]
    base = np.stack([x * 2.0, y * 3.0, 100 + 0 * x], axis=-1)
    frames = np.stack([np.clip(base + 15 * t, 0, 255) for t in range(6)]).astype(np.uint8)  # (6, 64, 96, 3)
    return VideoResult(frames=frames, fps=7, settings={"seed": 123, "fps_id": 6}, input_image=Image.fromarray(frames[0]))


def test_all_formats_sidecar_and_input(tmp_path, result):
    paths = write_video(result, tmp_path / "out" / "clip", formats=("mp4", "webm", "gif", "webp", "png"))
    frames, fps, codec, pix_fmt = read_video(paths["mp4"])
    assert (codec, pix_fmt, fps) == ("h264", "yuv420p", 7.0)
    assert frames.shape == (6, 64, 96, 3)
    assert np.abs(frames.astype(int) - result.frames).mean() < 3  # lossy, but the same video
    frames, fps, codec, _ = read_video(paths["webm"])
    assert codec == "vp9" and frames.shape[0] == 6 and fps == 7.0
    for fmt in ("gif", "webp"):
        with Image.open(paths[fmt]) as im:
            assert im.n_frames == 6 and im.size == (96, 64)
            im.load()
            assert abs(im.info["duration"] - 1000 / 7) <= 5  # gif stores 1/100 s
    assert sorted(p.name for p in paths["png"].iterdir()) == [f"{i:04d}.png" for i in range(6)]
    np.testing.assert_array_equal(np.asarray(Image.open(paths["png"] / "0003.png")), result.frames[3])
    sidecar = json.loads(paths["json"].read_text())
    assert sidecar["seed"] == 123 and sidecar["fps"] == 7 and sidecar["files"]["mp4"] == "clip.mp4"
    assert paths["input"].name == "clip_input.png"


def test_odd_sizes_are_padded_for_yuv420p(tmp_path):
    frames = np.stack([random_rgb(33, 45, i) for i in range(3)])
    paths = write_video(VideoResult(frames=frames, fps=10), tmp_path / "odd", formats=["mp4"])
    out, fps, _, _ = read_video(paths["mp4"])
    assert out.shape == (3, 34, 46, 3) and fps == 10.0


def test_parse_formats():
    assert parse_formats(["mp4,gif", "WEBP", "mp4"]) == ("mp4", "gif", "webp")
    with pytest.raises(ValueError, match="unknown output format 'avi'"):
        parse_formats("avi")


def test_watermark_round_trip_and_small_frames():
    pytest.importorskip("imwatermark")
    from sgm.inference.watermark import WATERMARK_BITS, add_watermark, read_watermark

    frames = np.stack([random_rgb(256, 320, i) for i in range(2)])
    marked = add_watermark(VideoResult(frames=frames, fps=7, settings={}))
    assert marked.settings["watermark"] == "dwtDct" and marked.frames.shape == frames.shape
    assert read_watermark(marked.frames[1]) == WATERMARK_BITS
    assert read_watermark(frames[1]) != WATERMARK_BITS
    with pytest.raises(ValueError, match="256x256"):
        add_watermark(VideoResult(frames=frames[:, :64, :64], fps=7))
