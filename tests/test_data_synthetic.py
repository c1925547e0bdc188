"""Toy shards: the script writes readable H.264 videos at the stated fps, captions and motion that match."""
import io
import json
import tarfile

import av
import numpy as np
import pytest

from sgm.data.motion import motion_bucket_from_score
from sgm.data.synthetic import (
    SPEED_LEVELS,
    write_toy_image_shards,
    write_toy_video_shards,
)


def _members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_make_toy_shards_script_writes_h264_at_stated_fps(tmp_path, capsys):
    from scripts.data.make_toy_shards import main

    main(["--out", str(tmp_path), "--num-shards", "2", "--samples-per-shard", "3", "--size", "32", "48",
          "--duration", "1", "--fps", "12", "30", "--seed", "3"])
    assert "wrote 2 shards" in capsys.readouterr().out
    shards = sorted(tmp_path.glob("toy-video-*.tar"))
    assert [p.name for p in shards] == ["toy-video-000000.tar", "toy-video-000001.tar"]
    seen_fps = set()
    for shard in shards:
        members = _members(shard)
        keys = sorted({name.split(".")[0] for name in members})
        assert len(keys) == 3
        for key in keys:
            meta = json.loads(members[f"{key}.json"])
            for field in ("fps", "num_frames", "width", "height", "duration", "caption", "motion_score",
                          "motion_bucket_id"):
                assert field in meta, field
            with av.open(io.BytesIO(members[f"{key}.mp4"])) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                assert stream.codec_context.pix_fmt == "yuv420p"
                assert float(stream.average_rate) == pytest.approx(meta["fps"])
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            assert len(frames) == meta["num_frames"] == round(meta["fps"] * 1.0)
            assert frames[0].shape == (32, 48, 3) and (meta["height"], meta["width"]) == (32, 48)
            seen_fps.add(meta["fps"])
    assert seen_fps <= {12.0, 30.0}


def test_toy_videos_move_as_captioned(tmp_path):
    """The object's centroid moves in the captioned direction at `motion_score` frame widths per second."""
    (shard,) = write_toy_video_shards(tmp_path, 1, 12, size=(32, 64), seed=1, duration=1.0, fps_choices=(12,))
    members = _members(shard)
    checked_moving = 0
    for key in sorted({n.split(".")[0] for n in members}):
        meta = json.loads(members[f"{key}.json"])
        assert meta["motion_bucket_id"] == motion_bucket_from_score(meta["motion_score"])
        assert meta["motion_score"] in SPEED_LEVELS
        with av.open(io.BytesIO(members[f"{key}.mp4"])) as container:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(float)
        background = np.median(frames[0].reshape(-1, 3), axis=0)
        moving = np.abs(frames - background).sum(-1) > 60  # (T, H, W) object mask
        if meta["motion_score"] == 0:
            assert "standing still" in meta["caption"]
            assert (moving[0] == moving[-1]).mean() > 0.97
            continue
        assert f"moving {meta['direction']}" in meta["caption"]
        axis = 1 if meta["direction"] in ("left", "right") else 0  # x or y
        # Displacement between frames 0 and 1, on the torus (the object wraps around the edges).
        size = frames.shape[2 if axis == 1 else 1]
        profile = [moving[i].sum(axis=1 - axis) for i in (0, 1)]
        shifts = [np.abs(np.roll(profile[0], s) - profile[1]).sum() for s in range(size)]
        shift = int(np.argmin(shifts))
        shift = shift - size if shift > size // 2 else shift
        expected = meta["speed_px_per_s"] / meta["fps"] * (1 if meta["direction"] in ("right", "down") else -1)
        assert abs(shift - expected) <= 1.0, (key, shift, expected)
        assert meta["speed_px_per_s"] == pytest.approx(meta["motion_score"] * 64)
        checked_moving += 1
    assert checked_moving >= 3


def test_toy_shards_are_deterministic_in_seed(tmp_path):
    a = write_toy_video_shards(tmp_path / "a", 1, 3, size=(16, 32), num_frames=5, seed=7)
    b = write_toy_video_shards(tmp_path / "b", 1, 3, size=(16, 32), num_frames=5, seed=7)
    c = write_toy_video_shards(tmp_path / "c", 1, 3, size=(16, 32), num_frames=5, seed=8)
    assert a[0].read_bytes() == b[0].read_bytes()
    assert a[0].read_bytes() != c[0].read_bytes()


def test_toy_image_shards(tmp_path):
    from PIL import Image

    (shard,) = write_toy_image_shards(tmp_path, 1, 4, size=(24, 40), seed=0)
    members = _members(shard)
    assert len(members) == 8
    for name, data in members.items():
        if name.endswith(".jpg"):
            assert Image.open(io.BytesIO(data)).size == (40, 24)
        else:
            assert json.loads(data)["caption"].startswith("a ")


def test_bad_sizes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_toy_video_shards(tmp_path, 1, 1, size=(31, 64))
