"""Measurements on toy videos (sgm.data.synthetic_metrics) and the toy world's law of motion."""
import numpy as np
import pytest

from sgm.data.synthetic import COLOUR_DIRECTIONS, DIRECTIONS, render_toy_video
from sgm.data.synthetic_metrics import contact_sheet, displacement, motion_report, psnr


def clip(seed: int, speed: float = 0.5, fps: float = 6.0, frames: int = 4, size: int = 32):
    rng = np.random.default_rng(seed)
    return render_toy_video(rng, size, size, fps, frames, speeds=(speed,), direction_by_colour=True)


def test_psnr():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert psnr(a, b) == 99.0
    b[0, 0, 0] = 255  # one value off by the peak: mse = 255^2 / 48
    assert psnr(a, b) == pytest.approx(10 * np.log10(48))


@pytest.mark.parametrize("seed", range(6))
def test_direction_follows_colour_and_displacement_is_measured(seed):
    video, meta = clip(seed)
    assert meta["direction"] == COLOUR_DIRECTIONS[meta["colour"]]
    dx, dy = displacement(video[0], video[-1])
    ux, uy = DIRECTIONS[meta["direction"]]
    expected = meta["speed_px_per_s"] * (len(video) - 1) / meta["fps"]  # 0.5 widths/s x 32 px x 0.5 s = 8 px
    assert (dx, dy) == pytest.approx((ux * expected, uy * expected), abs=1.0)


def test_colours_can_be_chosen_and_the_default_draws_are_unchanged():
    """`colours` restricts the drawn colour (the motion-LoRA data: the toy world's four colours, all moving one
    way); without it every draw, hence every shard of the curriculum, is what it was."""
    from sgm.data.synthetic import COLOURS

    four = list(COLOUR_DIRECTIONS)
    seen = {render_toy_video(np.random.default_rng(i), 32, 32, 6.0, 2, direction="right", colours=four)[1]["colour"]
            for i in range(40)}
    assert seen == set(four)
    for i in range(10):
        default = render_toy_video(np.random.default_rng(i), 32, 32, 6.0, 4, direction_by_colour=True)
        explicit = render_toy_video(np.random.default_rng(i), 32, 32, 6.0, 4, direction_by_colour=True, colours=four)
        assert np.array_equal(default[0], explicit[0]) and default[1] == explicit[1]
        drawn = render_toy_video(np.random.default_rng(i), 32, 32, 6.0, 4, direction="up")
        assert drawn[1]["colour"] in COLOURS
    with pytest.raises(ValueError, match="colours must be a non-empty list from red, green, blue, yellow"):
        render_toy_video(np.random.default_rng(0), 32, 32, 6.0, 2, direction_by_colour=True, colours=["cyan"])
    with pytest.raises(ValueError, match="non-empty"):
        render_toy_video(np.random.default_rng(0), 32, 32, 6.0, 2, colours=[])


def test_displacement_wraps_around_the_frame():
    video, _ = clip(2)
    rolled = np.roll(video[0], shift=(3, -13), axis=(0, 1))  # down 3, left 13 (= right 19 on a 32 torus)
    assert displacement(video[0], rolled) == (-13.0, 3.0)


def test_motion_report_of_the_truth_and_of_a_still_copy():
    video, _ = clip(4)
    perfect = motion_report(video, video)
    assert perfect["direction_agrees"] and perfect["size_ratio"] == 1.0 and perfect["frame0_psnr_db"] == 99.0
    assert perfect["later_mse_sample"] == 0.0 < perfect["later_mse_repeat"]
    still = motion_report(np.repeat(video[:1], len(video), 0), video)
    assert still["sample_displacement"] == [0.0, 0.0] and not still["direction_agrees"]
    assert not still["closer_than_repeat"]  # repeating frame 0 is exactly the baseline
    with pytest.raises(ValueError, match="differ in shape"):
        motion_report(video[:2], video)


def test_contact_sheet_layout():
    a = np.zeros((3, 2, 2, 3), np.uint8)
    b = np.full((3, 2, 2, 3), 7, np.uint8)
    sheet = contact_sheet([a, b], scale=2, gap=1)
    assert sheet.shape == (2 * 4 + 1, 3 * 4 + 2, 3)
    assert (sheet[:4, :4] == 0).all() and (sheet[5:, :4] == 7).all() and (sheet[4] == 255).all()
