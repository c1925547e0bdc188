"""scripts/sampling/simple_video_sample.py end to end on the tiny config and a checkpoint made here."""
import json
import logging
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.sampling.simple_video_sample import main, output_stems
from tests.helpers import REPO, TINY_CONFIG
from tests.inference_helpers import make_acceptance_folder, read_video, tiny_checkpoint

T, H, W, FPS_ID = 3, 64, 128, 4  # tiny-model run: 3 frames of 128x64, played at 5 fps


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def run(inputs, out, *extra):
    argv = ["--input_path", str(inputs), "--config", str(TINY_CONFIG), "--ckpt", str(tiny_checkpoint()),
            "--output_folder", str(out), "--num_frames", str(T), "--num_steps", "2", "--fps_id", str(FPS_ID),
            "--device", "cpu", "--seed", "11", *map(str, extra)]
    return main(argv)


def png_frames(folder):
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())])


def test_acceptance_folder(tmp_path, caplog):
    make_acceptance_folder(tmp_path / "in")
    with caplog.at_level(logging.ERROR):
        status = run(tmp_path / "in", tmp_path / "out", "--format", "mp4,png")
    assert status == 1  # something failed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "broken.png" in errors[0] and "cannot be read as an image" in errors[0]
    videos = sorted(p.name for p in (tmp_path / "out").glob("*.mp4"))
    assert videos == ["gray.mp4", "photo.mp4", "rgba.mp4", "upper.mp4"]
    for name in videos:
        frames, fps, codec, pix_fmt = read_video(tmp_path / "out" / name)
        assert frames.shape == (T, H, W, 3) and fps == FPS_ID + 1
        assert (codec, pix_fmt) == ("h264", "yuv420p")
        stem = name[:-4]
        settings = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        assert settings["num_frames"] == T and settings["fps"] == FPS_ID + 1 and "seed" in settings
        assert Image.open(tmp_path / "out" / f"{stem}_input.png").size == (W, H)
    # the transparent parts of the RGBA input were composited on white: the input frame is bright
    assert np.asarray(Image.open(tmp_path / "out" / "rgba_input.png")).mean() > 150

    # Same seed -> identical video; the other images in a different order (other names, so another
    # sort order, and without the RGBA and the broken file) -> the same per-image results.
    shutil.rmtree(tmp_path / "in")
    paths = make_acceptance_folder(tmp_path / "in")
    (tmp_path / "in2").mkdir()
    for name, new in (("upper.JPG", "a_first.JPG"), ("photo.webp", "m_second.webp"), ("gray.jpg", "z_last.jpg")):
        shutil.copy(paths[name], tmp_path / "in2" / new)
    assert run(tmp_path / "in2", tmp_path / "out2", "--format", "png") == 0
    for old, new in (("upper", "a_first"), ("photo", "m_second"), ("gray", "z_last")):
        np.testing.assert_array_equal(png_frames(tmp_path / "out" / f"{old}_frames"), png_frames(tmp_path / "out2" / f"{new}_frames"))


def test_num_videos_formats_and_glob(tmp_path):
    Image.fromarray(np.full((50, 70, 3), 90, np.uint8)).save(tmp_path / "one.PNG")
    status = run(tmp_path / "*.PNG", tmp_path / "out", "--num_videos", "2", "--format", "gif", "--format", "webp",
                 "--crop_offset", "0,1", "--sampler", "euler_a")
    assert status == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["one_00.gif", "one_00.json", "one_00.webp", "one_00_input.png",
                     "one_01.gif", "one_01.json", "one_01.webp", "one_01_input.png"]
    s0, s1 = (json.loads((tmp_path / "out" / f"one_0{k}.json").read_text()) for k in (0, 1))
    assert s0["seed"] != s1["seed"] and s0["base_seed"] == s1["base_seed"] == 11
    assert s0["crop_offset"] == [0.0, 1.0] and s0["sampler"] == "euler_a"


@pytest.mark.parametrize("extra,message", [
    (["--format", "avi"], "unknown output format"),
    (["--ckpt", "/nowhere/svd.safetensors"], "checkpoint not found: /nowhere/svd.safetensors"),
    (["--motion_bucket_id", "999"], "--motion_bucket_id must be in 0..255"),
    (["--height", "100"], "--height must be a positive multiple of 32, got 100"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--ff_chunk", "0"], "--ff_chunk must be >= 1"),
    (["--config", "/nowhere/model.yaml"], "config file not found: /nowhere/model.yaml"),
    (["--watermark"], "watermark needs frames of at least 256x256"),  # refused before any sampling
])
def test_usage_errors_exit_2(tmp_path, caplog, extra, message):
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / "x.png")
    with caplog.at_level(logging.ERROR):
        assert run(tmp_path / "x.png", tmp_path / "out", *extra) == 2
    assert message in caplog.text
    assert not (tmp_path / "out").exists()  # nothing was sampled or written


def test_missing_input_exits_2(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert run(tmp_path / "nothing_here", tmp_path / "out") == 2
    assert "not a file, a folder or a glob" in caplog.text


def test_bad_flag_exits_2(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["--crop_offset", "3,3"])
    assert info.value.code == 2


def test_malformed_config_exits_2_naming_the_file(tmp_path, caplog):
    bad = tmp_path / "broken.yaml"
    bad.write_text("model: [1, 2\n")
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / "x.png")
    with caplog.at_level(logging.ERROR):
        assert main(["--input_path", str(tmp_path / "x.png"), "--config", str(bad), "--device", "cpu"]) == 2
    assert f"{bad} is not a valid YAML config" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_a_gpu_exits_2(tmp_path, caplog):
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / "x.png")
    with caplog.at_level(logging.ERROR):
        assert run(tmp_path / "x.png", tmp_path / "out", "--device", "cuda") == 2
    assert "no CUDA GPU" in caplog.text and "--device cpu" in caplog.text


def test_output_names_never_collide():
    from pathlib import Path

    files = [Path("a/img.png"), Path("b/img.png"), Path("b/img.JPG"), Path("c/other.png")]
    stems = output_stems(files, Path("out"), num_videos=2)
    names = [s.name for per_file in stems for s in per_file]
    assert len(set(names)) == len(names) == 8
    assert [s[0].name for s in stems] == ["img-png-1_00", "img-png-2_00", "img-jpg_00", "other_00"]
    assert [s[0].name for s in output_stems(files[2:], Path("out"), 1)] == ["img", "other"]


def test_output_folder_that_is_a_file_exits_2(tmp_path, caplog):
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "taken").write_text("a file")
    with caplog.at_level(logging.ERROR):
        assert run(tmp_path / "x.png", tmp_path / "taken") == 2
    assert "exists and is not a folder" in caplog.text


def test_progress_bars_and_times_as_a_user_sees_them(tmp_path):
    """Run as a user does: bars for the sampling steps and the decoding on stderr, the load time on
    its own line, and a closing total that includes loading."""
    Image.fromarray(np.full((64, 128, 3), 120, np.uint8)).save(tmp_path / "x.png")
    cmd = [sys.executable, str(REPO / "scripts" / "sampling" / "simple_video_sample.py"), "--input_path",
           str(tmp_path / "x.png"), "--config", str(TINY_CONFIG), "--ckpt", str(tiny_checkpoint()), "--output_folder",
           str(tmp_path / "out"), "--num_frames", "3", "--num_steps", "2", "--decoding_t", "2", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert re.search(r"x: sampling: 100%.*2/2", done.stderr), done.stderr
    assert re.search(r"x: decoding: 100%.*2/2", done.stderr), done.stderr  # 3 frames, 2 per chunk: 2 chunks
    assert re.search(r"model loaded in \d+\.\ds", done.stderr), done.stderr
    m = re.search(r"wrote 1 video\(s\) to .* in (\d+\.\d)s \(loading the model (\d+\.\d)s, generating (\d+\.\d)s\)",
                  done.stdout)
    assert m, done.stdout
    total, load, generate = map(float, m.groups())
    assert load > 0 and generate > 0 and total >= load + generate - 0.1


def test_quiet_shows_no_progress(tmp_path, capsys):
    Image.fromarray(np.full((64, 128, 3), 120, np.uint8)).save(tmp_path / "x.png")
    assert run(tmp_path / "x.png", tmp_path / "out", "-q") == 0
    captured = capsys.readouterr()
    assert "sampling" not in captured.err and "decoding" not in captured.err and "%|" not in captured.err
    assert "wrote 1 video(s)" in captured.out


def test_input_path_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--config", str(TINY_CONFIG), "--random_weights", "--device", "cpu"])
    assert info.value.code == 2
    assert "the following arguments are required: --input_path" in capsys.readouterr().err


@pytest.mark.parametrize("dtype,slowdown,warned", [("fp16", 40.0, True), ("bf16", 30.0, True), ("bf16", 0.5, False),
                                                    ("fp32", 1.0, False)])
def test_half_precision_on_cpu_warns_when_slow(tmp_path, caplog, monkeypatch, dtype, slowdown, warned):
    """The warning follows what was measured on this CPU (faked here: bf16 is fast on some CPUs)."""
    from sgm.inference import precision

    monkeypatch.setattr(precision, "cpu_slowdown", lambda dt: slowdown)
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / "x.png")
    with caplog.at_level(logging.WARNING):
        assert run(tmp_path / "x.png", tmp_path / "out", "--dtype", dtype, "--ckpt", "/nowhere/x.safetensors") == 2
    assert (f"{dtype} on this CPU runs matrix products {slowdown:.0f}x slower than fp32" in caplog.text) == warned
    if warned:
        assert "leave --dtype out" in caplog.text


def test_fp16_is_measured_slow_on_this_cpu():
    """fp16 has no fast CPU matmul kernels on common CPUs (measured 40-70x on an AMD EPYC)."""
    from sgm.inference.precision import cpu_slowdown

    if cpu_slowdown(torch.float16) <= 2.0:
        pytest.skip("this CPU multiplies fp16 matrices natively")
    assert cpu_slowdown(torch.float16) > 2.0


def test_errors_speak_in_flags(tmp_path, caplog):
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / "x.png")
    with caplog.at_level(logging.ERROR):
        assert main(["--input_path", str(tmp_path / "x.png"), "--version", "svd_xt", "--device", "cpu",
                     "--ckpt", str(tmp_path / "svd_xt.safetensors")]) == 2
    assert "put the official file svd_xt.safetensors" in caplog.text and "pass --ckpt with its location" in caplog.text
    assert "add --download to fetch it" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert run(tmp_path / "x.png", tmp_path / "out", "--ckpt", "/nowhere/mine.safetensors") == 2
    assert "pass --ckpt with the weights that belong to this --config" in caplog.text
    for bad in (["--ff_chunk", "0"], ["--num_frames", "0"], ["--decoding_overlap", "-1"],
                ["--chain_overlap", "3", "--total_frames", "9"]):  # the tiny test runs make 3 frames a clip
        with caplog.at_level(logging.ERROR):
            assert run(tmp_path / "x.png", tmp_path / "out", *bad) == 2
        assert f"{bad[0]} must be" in caplog.text
    assert "--chain_overlap must be below num_frames=3" in caplog.text
    assert "ckpt=" not in caplog.text and "ff_chunk_size" not in caplog.text and "download=" not in caplog.text
