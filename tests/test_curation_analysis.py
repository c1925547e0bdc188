"""Curation analysis on synthetic videos: cuts, motion, static and text scores, filters, buckets, fades."""
import json

import numpy as np
import pytest

from sgm.data.curation.analyze import analyze_video
from sgm.data.curation.buckets import (
    MotionBucketMapping,
    fit_motion_mapping,
    load_motion_mapping,
)
from sgm.data.curation.config import BucketConfig, TextConfig
from sgm.data.curation.cuts import split_at_cuts
from sgm.data.curation.filters import failed_filters
from sgm.data.curation.synthetic import render_scene, write_scene_video, write_video
from sgm.data.curation.text import text_area_fraction
from tests.curation_helpers import quick_config


@pytest.fixture(scope="module")
def three_scene_record(tmp_path_factory):
    path = tmp_path_factory.mktemp("cuts") / "three.mp4"
    cuts = write_scene_video(path, [("moving", 30), ("static", 30), ("moving", 30)], seed=5)
    return cuts, analyze_video(path, quick_config())


def test_two_hard_cuts_give_three_clips_at_the_right_frames(three_scene_record):
    cuts, record = three_scene_record
    assert cuts == [30, 60]
    assert record["status"] == "ok" and record["info"]["num_frames"] == 90
    assert record["cuts"] == [30, 60]
    spans = [(c["start_frame"], c["end_frame"]) for c in record["clips"]]
    assert spans == [(0, 30), (30, 60), (60, 90)]
    assert [c["clip_id"] for c in record["clips"]] == [f"{record['video_id']}_{i:04d}" for i in range(3)]
    assert all("." not in c["clip_id"] for c in record["clips"])
    assert record["clips"][1]["duration"] == pytest.approx(30 / 12.0)


def test_static_clip_scores_less_motion_and_is_dropped(three_scene_record):
    _, record = three_scene_record
    moving, static = record["clips"][0], record["clips"][1]
    # the texture pans 1.5 px per frame at 12 fps over a 192-px-wide frame: 0.094 frame widths per second
    assert moving["scores"]["motion_score"] == pytest.approx(1.5 * 12 / 192, rel=0.15)
    assert static["scores"]["motion_score"] < 0.1 * moving["scores"]["motion_score"]
    assert static["scores"]["frame_diff"] < moving["scores"]["frame_diff"]
    cfg = quick_config()
    assert failed_filters(moving, cfg.filters)[0] == []
    failed, _ = failed_filters(static, cfg.filters)
    assert "low_motion" in failed and "static" in failed
    # thresholds act on stored scores: with the motion and static bounds off, the static clip is kept
    relaxed = quick_config("filters.min_motion=null", "filters.min_frame_diff=null")
    assert failed_filters(static, relaxed.filters)[0] == []


def test_frame_full_of_text_is_flagged():
    cfg = TextConfig()
    text = render_scene("text", 1, 112, 192)[0]
    assert text_area_fraction(text, cfg) > 0.5
    for seed in range(5):  # textures and flat frames are not text
        assert text_area_fraction(render_scene("moving", 1, 112, 192, seed=seed)[0], cfg) < 0.02
    assert text_area_fraction(np.full((112, 192, 3), 128, np.uint8), cfg) == 0.0


@pytest.mark.parametrize("speed", [0.1, 0.4, 0.8])
def test_fast_pans_score_their_speed(tmp_path, speed):
    """Samples are half a second apart; flow between them alone read 0.4-0.8 widths/s pans as under 0.1."""
    fps, width = 12.0, 192
    path = write_video(tmp_path / "pan.mp4", render_scene("moving", 24, 112, width, seed=1, speed=speed * width / fps), fps)
    record = analyze_video(path, quick_config("cuts.content=null", "cuts.threshold=null"))
    (clip,) = record["clips"]
    assert clip["scores"]["motion_score"] == pytest.approx(speed, rel=0.1)


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(values.astype(np.uint8)[..., None], 3, axis=-1)


@pytest.mark.parametrize("period", [5, 8, 16])
def test_horizontal_lines_and_fences_are_not_text(period):
    """Thin horizontal lines (blinds, stairs, stripes) once scored 24-78 % text; a band of fence posts 10-19 %."""
    cfg = TextConfig()
    rows = np.arange(216)[:, None]
    stripes = _grey(np.broadcast_to(np.where(rows % period < 2, 230, 30), (216, 384)))
    assert text_area_fraction(stripes, cfg) == 0.0
    fence = np.full((216, 384), 120)
    fence[100 : 100 + 5 * period, np.arange(384) % 8 < 3] = 230  # posts 3 px wide, 8 px apart
    assert text_area_fraction(_grey(fence), cfg) == 0.0
    text = render_scene("text", 1, 216, 384)[0]
    assert text_area_fraction(text, cfg) > 0.5  # while text is still found at this size


def test_text_clip_is_dropped_by_the_text_filter(tmp_path):
    path = tmp_path / "slides.mp4"
    write_scene_video(path, [("moving", 30), ("text", 30)], seed=3)
    record = analyze_video(path, quick_config())
    moving, text = record["clips"]
    assert text["scores"]["text_area"] > 0.3 > moving["scores"]["text_area"]
    assert failed_filters(text, quick_config().filters)[0] == ["text"]


def test_fade_through_black_is_a_cut(tmp_path):
    a = render_scene("moving", 30, 112, 192, seed=1).astype(np.float32)
    b = render_scene("moving", 30, 112, 192, seed=2).astype(np.float32)
    ramp = np.linspace(1, 0, 8)[:, None, None, None]
    frames = np.concatenate([a[:22], a[22:] * ramp, np.zeros_like(a[:6]), b[:8] * ramp[::-1], b[8:]])
    path = write_video(tmp_path / "fade.mp4", frames.round().astype(np.uint8), 12.0)
    cfg = quick_config("cuts.content=null")  # only the fade (threshold) detector
    record = analyze_video(path, cfg)
    assert len(record["clips"]) == 2
    assert 28 <= record["cuts"][0] <= 38  # inside the fade-out / black / fade-in stretch (frames 22..44)


def test_unreadable_video_gives_an_error_record(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"definitely not an mp4" * 20)
    record = analyze_video(path, quick_config())
    assert record["status"] == "error" and record["clips"] == []
    assert "Invalid data" in record["error"] or "decod" in record["error"]


def test_split_at_cuts_covers_every_frame_once():
    assert split_at_cuts(10, [3, 7]) == [(0, 3), (3, 7), (7, 10)]
    assert split_at_cuts(5, []) == [(0, 5)]
    assert split_at_cuts(5, [0, 5, 9]) == [(0, 5)]
    assert split_at_cuts(25, [5], max_frames=8) == [(0, 5), (5, 11), (11, 18), (18, 25)]
    assert split_at_cuts(16, [], max_frames=8) == [(0, 8), (8, 16)]


def test_motion_bucket_mappings_round_trip(tmp_path):
    scores = np.random.default_rng(0).lognormal(-3, 1, 2000)
    mapping = fit_motion_mapping(list(scores), BucketConfig(method="quantile"))
    buckets = np.array([mapping.bucket(s) for s in scores])
    assert buckets.min() == 0 and buckets.max() == 255
    assert np.all(np.diff(buckets[np.argsort(scores)]) >= 0)  # monotone
    counts = np.bincount(buckets, minlength=256)
    assert counts.max() <= 3 * counts.mean()  # spread evenly
    mapping.save(tmp_path / "m.json")
    again = load_motion_mapping(tmp_path / "m.json")
    assert [again.bucket(s) for s in scores[:50]] == list(buckets[:50])
    single = fit_motion_mapping([0.1], BucketConfig(method="quantile"))  # one clip (or equal scores): mid bucket
    assert (single.bucket(0.05), single.bucket(0.1), single.bucket(0.2)) == (0, 128, 255)
    linear = fit_motion_mapping([], BucketConfig(method="linear", scale=127.0))
    assert linear.bucket(0.0) == 0 and linear.bucket(1.0) == 127 and linear.bucket(10.0) == 255
    log = fit_motion_mapping([], BucketConfig(method="log", log_min=0.01, log_max=1.0))
    assert log.bucket(0.001) == 0 and log.bucket(0.1) == 128 and log.bucket(5.0) == 255
    (tmp_path / "bad.json").write_text(json.dumps({"method": "quantile", "edges": [0.1]}))
    with pytest.raises(ValueError, match="255 edges"):
        MotionBucketMapping.load(tmp_path / "bad.json")


def test_a_failing_captioner_skips_that_video_but_a_bad_setting_stops(tmp_path):
    path = tmp_path / "v.mp4"
    write_scene_video(path, [("moving", 30)], seed=4)
    (tmp_path / "cap.py").write_text("def caption(frames):\n    raise RuntimeError('model crashed')\n")
    record = analyze_video(path, quick_config("caption.sidecar=false", f"caption.captioner={tmp_path / 'cap.py'}:caption"))
    assert record["status"] == "error" and "model crashed" in record["error"]
    with pytest.raises(ValueError, match="no callable"):
        analyze_video(path, quick_config(f"caption.captioner={tmp_path / 'cap.py'}:missing"))


def _subtitles(height: int, width: int, scale: float, gap: int, bars: bool) -> np.ndarray:
    """Two lines of white, black-outlined subtitles near the bottom, over full-height colour bars or black."""
    import cv2

    colours = [(200, 200, 200), (20, 20, 20), (200, 200, 30), (30, 30, 120), (30, 200, 200), (120, 20, 20),
               (30, 200, 30), (20, 20, 20)] if bars else [(20, 20, 20)]
    frame = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate(colours):
        frame[:, i * width // len(colours) : (i + 1) * width // len(colours)] = colour
    for j, line in enumerate(("Where are you going tonight?", "I told you already, home.")):
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(frame, line, (20, height - int(2.2 * gap) + j * gap), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                        thickness, cv2.LINE_AA)
    return frame


@pytest.mark.parametrize("height,width,scale,gap", [(112, 192, 0.3, 10), (216, 384, 0.6, 22), (360, 640, 0.8, 32)])
def test_subtitles_over_colour_bars_are_text(height, width, scale, gap):
    """The bars' full-height edges once joined both subtitle lines into one blob too tall to be a line: 0.0."""
    cfg = TextConfig()
    on_bars = text_area_fraction(_subtitles(height, width, scale, gap, bars=True), cfg)
    on_black = text_area_fraction(_subtitles(height, width, scale, gap, bars=False), cfg)
    assert on_black > 0.03 and on_bars >= 0.8 * on_black
    bars_only = _subtitles(height, width, scale, gap, bars=True)[:1].repeat(height, axis=0)  # the top row: no text
    assert text_area_fraction(bars_only, cfg) == 0.0
