"""Frames enter the project upright (display matrix) and as far as a cut-short file decodes: curation (analysis,
encoded clips, shard json) and the training loader's decoder."""
import io
import json

import av
import numpy as np
import pytest

from sgm.data.curation.synthetic import render_scene
from sgm.media import VideoWriter
from tests.curation_helpers import quick_config, shard_members

T, H, W = 30, 320, 180  # a portrait phone video: 180 wide, 320 tall as displayed


def portrait_frames() -> np.ndarray:
    """(T, 320, 180, 3) upright frames of a moving texture with a red block in the top-left corner."""
    frames = render_scene("moving", T, H, W, seed=4)
    frames[:, :40, :40] = (255, 0, 0)
    return frames


def write_phone_video(path, frames: np.ndarray) -> None:
    """Store the frames as a phone does: turned a quarter clockwise (320x180 landscape), plus a display matrix
    saying to turn them 90 degrees counter-clockwise to show them."""
    stored = np.rot90(frames, -1, axes=(1, 2))  # (T, 180, 320, 3)
    with VideoWriter(path, 12, stored.shape[2], stored.shape[1], options={"crf": "10", "preset": "ultrafast"},
                     rotation=90) as writer:
        for frame in stored:
            writer.write_rgb(frame)


def assert_upright(frames: np.ndarray, size) -> None:
    """(T, h, w, 3) frames of `portrait_frames` at `size` = (h, w): the red block is top-left."""
    assert frames.shape[1:3] == size
    h, w = size
    corner = frames[:, : h // 10, : w // 10].reshape(-1, 3).mean(0)
    assert corner[0] > 200 and corner[1] < 60 and corner[2] < 60, corner


@pytest.fixture(scope="module")
def phone_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("phone") / "in" / "portrait.mp4"
    path.parent.mkdir()
    write_phone_video(path, portrait_frames())
    with av.open(str(path)) as container:  # stored sideways, as the camera wrote it
        assert (container.streams.video[0].codec_context.width, container.streams.video[0].codec_context.height) == (320, 180)
    return path


def test_phone_video_is_curated_upright(phone_video, tmp_path):
    from sgm.data.curation.pipeline import analyze_all, build_shards
    from sgm.data.curation.records import iter_records

    cfg = quick_config("filters.min_duration=null", "filters.min_motion=null", "filters.max_text_area=null",
                       "filters.min_frame_diff=null")
    analyze_all([phone_video], tmp_path / "work", cfg, progress=False)
    (record,) = iter_records(tmp_path / "work")
    assert record["info"]["width"] == W and record["info"]["height"] == H and record["info"]["rotation"] == 90
    build_shards(tmp_path / "work", tmp_path / "out", cfg, progress=False)
    members = dict(m for ms in shard_members(tmp_path / "out" / "shards").values() for m in ms)
    (key,) = [n[: -len(".json")] for n in members if n.endswith(".json")]
    meta = json.loads(members[f"{key}.json"])
    assert (meta["width"], meta["height"]) == (W, H)
    with av.open(io.BytesIO(members[f"{key}.mp4"])) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert_upright(frames, (H, W))  # 180x320 as stored in the clip: no display matrix needed any more


def test_training_loader_decodes_phone_video_upright(phone_video):
    from sgm.data.video_decode import decode_video_frames

    data = phone_video.read_bytes()
    frames, fps = decode_video_frames(data, lambda fps, count: [0, 5, 10])
    assert fps == 12 and frames.shape[0] == 3
    assert_upright(frames, (H, W))
    # `cover` works on the upright aspect: 64x32 (H, W) is covered by 64x36 of a 9:16 video
    covered, _ = decode_video_frames(data, lambda fps, count: [0], cover=(64, 32))
    assert_upright(covered, (64, 36))


@pytest.mark.parametrize("rotation", [-90, 180])
def test_other_rotations_match_the_display_matrix(tmp_path, rotation):
    """np.rot90 by the matrix's counter-clockwise quarter turns, as FFmpeg's player turns it."""
    from sgm.media_read import upright

    upright_frame = portrait_frames()[0]
    stored = np.rot90(upright_frame, -rotation // 90)
    with VideoWriter(tmp_path / "r.mp4", 12, stored.shape[1], stored.shape[0], options={"crf": "0", "preset": "ultrafast"},
                     rotation=rotation) as writer:
        writer.write_rgb(stored)
    with av.open(str(tmp_path / "r.mp4")) as container:
        frame = next(container.decode(video=0))
        assert_upright(upright(frame, W, H)[None], (H, W))


@pytest.mark.parametrize("threads", [1, 4])
def test_cut_short_video_keeps_its_decodable_frames(tmp_path, threads):
    """An mp4 cut off part-way (an interrupted download) decodes to its first frames, then fails; curation
    keeps those frames instead of dropping the video."""
    from sgm.data.curation.pipeline import analyze_all, build_shards
    from sgm.data.curation.records import iter_records

    frames = render_scene("moving", 96, 112, 192, seed=7)
    full = tmp_path / "full.mp4"
    with VideoWriter(full, 12, 192, 112, options={"crf": "18", "preset": "ultrafast"}) as writer:
        for frame in frames:
            writer.write_rgb(frame)
    data = full.read_bytes()
    (tmp_path / "in").mkdir()
    cut = tmp_path / "in" / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with av.open(str(full)) as container:
        reference = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]

    cfg = quick_config("filters.min_duration=null", "filters.min_motion=null", "filters.max_text_area=null",
                       "filters.min_frame_diff=null", f"decode.threads={threads}")
    counts = analyze_all([cut], tmp_path / "work", cfg, progress=False)
    assert counts["unreadable"] == 0
    (record,) = iter_records(tmp_path / "work")
    decoded = record["info"]["num_frames"]
    assert 40 <= decoded < 96 and record["truncated"].startswith(f"decoding stopped after {decoded} ")
    assert sum(c["num_frames"] for c in record["clips"]) == decoded
    summary = build_shards(tmp_path / "work", tmp_path / "out", cfg, progress=False)
    assert summary["videos"]["truncated"][0]["path"].endswith("cut.mp4")
    members = dict(m for ms in shard_members(tmp_path / "out" / "shards").values() for m in ms)
    clips = []
    for name in sorted(n for n in members if n.endswith(".mp4")):
        with av.open(io.BytesIO(members[name])) as container:
            clips += [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(clips) == decoded
    # the salvaged frames are the source's first frames (re-encoded at crf 20: close, not equal)
    assert np.abs(np.stack(clips).astype(int) - np.stack(reference[:decoded])).mean() < 6
