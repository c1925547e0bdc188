"""`simple_video_sample.py --total_frames`: one mp4 of exactly that many frames at the right fps, and the
chain in the settings sidecar."""
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.sampling.simple_video_sample import main
from tests.helpers import TINY_CONFIG
from tests.inference_helpers import random_rgb, read_video, tiny_checkpoint

T, FPS_ID = 3, 5  # clips of 3 frames, played at 6 fps


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def run(image, out, *extra):
    argv = ["--input_path", str(image), "--config", str(TINY_CONFIG), "--ckpt", str(tiny_checkpoint()),
            "--output_folder", str(out), "--num_frames", str(T), "--num_steps", "2", "--fps_id", str(FPS_ID),
            "--device", "cpu", "--seed", "17", *map(str, extra)]
    return main(argv)


def test_total_frames_three_clips_long(tmp_path):
    Image.fromarray(random_rgb(64, 128, 8)).save(tmp_path / "cat.png")
    assert run(tmp_path / "cat.png", tmp_path / "out", "--total_frames", 3 * T, "--chain_overlap", 1,
               "--format", "mp4,png") == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == ["cat.mp4"]  # one video
    frames, fps, _, _ = read_video(tmp_path / "out" / "cat.mp4")
    assert frames.shape == (3 * T, 64, 128, 3) and fps == FPS_ID + 1
    assert len(list((tmp_path / "out" / "cat_frames").iterdir())) == 3 * T
    settings = json.loads((tmp_path / "out" / "cat.json").read_text())
    assert settings["total_frames"] == 3 * T and settings["num_frames"] == T and settings["chain_overlap"] == 1
    chain = settings["chain"]
    # clips of 3 frames sharing 1: [0, 3), [2, 5), [4, 7), [6, 9)
    assert [(c["start"], c["end"]) for c in chain["clips"]] == [(0, 3), (2, 5), (4, 7), (6, 9)]
    assert chain["clips"][0]["seed"] == settings["seed"] and len({c["seed"] for c in chain["clips"]}) == 4
    assert chain["overlap"] == 1 and chain["total_frames"] == 3 * T and "max_colour_drift" in chain
    # The tie holds to the last step by default (docs/sampling.md, "Why the tie holds to the last step").
    assert chain["tie"] is True and chain["release_sigma"] == 0.0


def test_same_seed_same_chained_video_and_color_match_recorded(tmp_path):
    Image.fromarray(random_rgb(64, 128, 9)).save(tmp_path / "dog.png")
    for out in ("a", "b"):
        assert run(tmp_path / "dog.png", tmp_path / out, "--total_frames", 5, "--format", "png", "--color_match") == 0
    a = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "a" / "dog_frames").iterdir())])
    b = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "b" / "dog_frames").iterdir())])
    assert a.shape[0] == 5
    np.testing.assert_array_equal(a, b)
    chain = json.loads((tmp_path / "a" / "dog.json").read_text())["chain"]
    assert chain["color_match"] is True and chain["overlap"] == 1  # default: num_frames // 4, at least 1


def test_overlap_as_long_as_the_clip_exits_2(tmp_path, caplog):
    Image.fromarray(random_rgb(64, 128, 1)).save(tmp_path / "x.png")
    with caplog.at_level(logging.ERROR):
        assert run(tmp_path / "x.png", tmp_path / "out", "--total_frames", 9, "--chain_overlap", T) == 2
    assert "chain_overlap must be below num_frames=3" in caplog.text
    assert not (tmp_path / "out").exists()
