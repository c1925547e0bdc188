"""Video dataset: frame stride from the source fps, clip placement, shapes/ranges/keys, crops, cond_aug."""
import math

import numpy as np
import pytest
import torch

from sgm.data.clips import clip_frame_indices, frame_stride
from sgm.data.cond_aug import sample_cond_aug
from sgm.data.transforms import resize_cover_crop, to_signed_unit
from sgm.data.video import VideoDataModule, VideoDataset
from tests.data_helpers import ramp_video, video_sample, write_shard

CONTRACT_KEYS = {"frames", "cond_frames_without_noise", "cond_aug", "cond_frames", "fps_id", "motion_bucket_id", "txt",
                 "num_video_frames"}


def _frame_levels(frames: torch.Tensor) -> list:
    """The gray level (0..255) of each frame of a decoded ramp clip (T, 3, H, W) in [-1, 1]."""
    return [round(v) for v in ((frames.mean(dim=(1, 2, 3)) + 1) * 127.5).tolist()]


@pytest.mark.parametrize("source,target,stride", [(30, 6, 5), (24, 6, 4), (12, 6, 2), (25, 6, 4), (4, 6, 1), (29.97, 6, 5)])
def test_frame_stride(source, target, stride):
    assert frame_stride(source, target) == stride


def test_clip_indices_policies_and_too_short():
    assert clip_frame_indices(30, 6, 5, "start") == [0, 5, 10, 15, 20, 25]
    assert clip_frame_indices(30, 3, 5, "center") == [9, 14, 19]  # 19 spare frames, start at 9
    assert clip_frame_indices(25, 6, 5, "start") is None  # needs 26 frames
    starts = {clip_frame_indices(30, 3, 5, "random", torch.Generator().manual_seed(s))[0] for s in range(200)}
    assert starts == set(range(20))  # every valid start, no other
    with pytest.raises(ValueError, match="frame start policy"):
        clip_frame_indices(30, 3, 5, "middle")


@pytest.mark.parametrize("source_fps,levels", [(30, [0, 40, 80, 120, 160, 200]), (12, [0, 16, 32, 48, 64, 80])])
def test_clip_takes_every_stride_th_source_frame(tmp_path, source_fps, levels):
    """A ramp video (frame i has gray level 8 i) read at 6 fps gives frames 0, s, 2s, ... with s = source / 6."""
    shard = write_shard(tmp_path / "a.tar", [video_sample("ramp", ramp_video(30), source_fps)])
    ds = VideoDataset(str(shard), num_frames=6, fps=6, size=(16, 16), frame_start="start", crop="center")
    (sample,) = list(ds)
    assert all(abs(a - b) <= 2 for a, b in zip(_frame_levels(sample["frames"]), levels)), _frame_levels(sample["frames"])
    assert sample["fps_id"].item() == 5  # NOTE: sgm's fps_id is fps - 1


def test_random_start_stays_on_the_stride_grid(tmp_path):
    shard = write_shard(tmp_path / "a.tar", [video_sample("ramp", ramp_video(30), 30)])
    ds = VideoDataset(str(shard), num_frames=3, fps=6, size=(16, 16), frame_start="random", seed=0)
    firsts = set()
    for _ in range(12):
        levels = _frame_levels(next(iter(ds))["frames"])
        assert abs(levels[1] - levels[0] - 40) <= 2 and abs(levels[2] - levels[1] - 40) <= 2
        firsts.add(round(levels[0] / 8))
    assert len(firsts) > 3 and max(firsts) <= 19


def test_sample_keys_shapes_ranges_and_conditioning(tmp_path):
    samples = [video_sample(f"v{i}", ramp_video(20, 24, 40, step=12), 12, motion_bucket_id=200 + i) for i in range(2)]
    shard = write_shard(tmp_path / "a.tar", samples)
    ds = VideoDataset(str(shard), num_frames=5, fps=6, size=(16, 32), shuffle_buffer=0)
    out = list(ds)
    assert len(out) == 2
    for i, s in enumerate(out):
        assert set(s) == CONTRACT_KEYS
        assert s["frames"].shape == (5, 3, 16, 32) and s["frames"].dtype == torch.float32
        assert s["frames"].min() >= -1 and s["frames"].max() <= 1
        assert torch.equal(s["cond_frames_without_noise"], s["frames"][0])
        assert s["cond_aug"].shape == () and s["cond_aug"].dtype == torch.float32 and s["cond_aug"] > 0
        noise = (s["cond_frames"] - s["cond_frames_without_noise"]) / s["cond_aug"]
        assert abs(noise.std().item() - 1.0) < 0.1 and abs(noise.mean().item()) < 0.1
        assert s["fps_id"].dtype == torch.long and s["fps_id"].item() == 5
        assert s["motion_bucket_id"].dtype == torch.long and s["motion_bucket_id"].item() == 200 + i
        assert s["num_video_frames"].item() == 5
        assert s["txt"] == f"clip v{i}"


def test_motion_bucket_from_score_or_default(tmp_path):
    frames = ramp_video(4)
    shard = write_shard(tmp_path / "a.tar", [
        video_sample("given", frames, 6, motion_bucket_id=9, motion_score=1.0),
        video_sample("score", frames, 6, motion_bucket_id=None, motion_score=0.5),
        video_sample("none", frames, 6, motion_bucket_id=None, motion_score=None),
    ])
    ds = VideoDataset(str(shard), num_frames=2, fps=6, size=(16, 16), shuffle_buffer=0, keep_key=True,
                      motion_bucket_scale=100, default_motion_bucket_id=42)
    buckets = {s["__key__"]: s["motion_bucket_id"].item() for s in ds}
    assert buckets == {"given": 9, "score": 50, "none": 42}


def test_center_and_random_crop():
    # (1, 1, 8, 32) image whose value is its column index; covering (16, 16) doubles it to 16 x 64.
    x = torch.arange(32.0).repeat(8, 1)[None, None]
    centre = resize_cover_crop(x, (16, 16), "center")
    assert centre.shape == (1, 1, 16, 16)
    assert centre[0, 0, 0, 0].item() == pytest.approx(11.75)  # output column 24 of 64 <- input column 11.75
    lefts = set()
    for seed in range(40):
        crop = resize_cover_crop(x, (16, 16), "random", torch.Generator().manual_seed(seed))
        assert crop.shape == (1, 1, 16, 16)
        lefts.add(round((crop[0, 0, 0, 0].item() + 0.25) * 2))  # resized column j holds j / 2 - 0.25
    assert len(lefts) > 10 and lefts <= set(range(49))  # 49 possible offsets into the 64 resized columns
    with pytest.raises(ValueError, match="crop"):
        resize_cover_crop(x, (16, 16), "left")


def test_center_crop_in_the_dataset_keeps_the_middle(tmp_path):
    frames = ramp_video(4, 16, 48)
    frames[:, :, 16:32] = 255  # a white middle third
    shard = write_shard(tmp_path / "a.tar", [video_sample("mid", frames, 6)])
    s = next(iter(VideoDataset(str(shard), num_frames=2, fps=6, size=(16, 16), crop="center")))
    assert s["frames"][:, :, :, 2:-2].min() > 0.95  # all white, edges aside


def test_cond_aug_distribution():
    gen = torch.Generator().manual_seed(0)
    logs = torch.stack([sample_cond_aug(-3.0, 0.5, gen) for _ in range(4000)]).log()
    assert abs(logs.mean().item() + 3.0) < 0.05  # standard error 0.008
    assert abs(logs.std().item() - 0.5) < 0.05
    fixed = sample_cond_aug(-2.0, 0.0, gen)
    assert fixed.item() == pytest.approx(math.exp(-2.0))


def test_cond_aug_mean_is_configurable_in_the_dataset(tmp_path):
    shard = write_shard(tmp_path / "a.tar", [video_sample("a", ramp_video(4), 6)])
    ds = VideoDataset(str(shard), num_frames=2, fps=6, size=(16, 16), cond_aug_mean=-1.0, cond_aug_std=0.5, seed=1)
    logs = torch.stack([next(iter(ds))["cond_aug"] for _ in range(40)]).log()
    assert abs(logs.mean().item() + 1.0) < 0.3  # 3.8 standard errors


def test_datamodule_batches_the_contract(tmp_path):
    shard = write_shard(tmp_path / "a.tar", [video_sample(f"v{i}", ramp_video(8), 12) for i in range(3)])
    dm = VideoDataModule(train={"shards": str(shard), "num_frames": 3, "fps": 6, "size": [16, 16]}, batch_size=2)
    batches = list(dm.train_dataloader())
    assert [b["frames"].shape[0] for b in batches] == [2, 1]
    b = batches[0]
    assert set(b) == CONTRACT_KEYS
    assert b["frames"].shape == (2, 3, 3, 16, 16)
    assert b["cond_frames"].shape == b["cond_frames_without_noise"].shape == (2, 3, 16, 16)
    assert b["cond_aug"].shape == (2,) and b["cond_aug"].dtype == torch.float32
    for key in ("fps_id", "motion_bucket_id", "num_video_frames"):
        assert b[key].shape == (2,) and b[key].dtype == torch.long
    assert isinstance(b["txt"], list) and len(b["txt"]) == 2


def test_bad_arguments_raise_value_errors(tmp_path):
    shard = write_shard(tmp_path / "a.tar", [video_sample("a", ramp_video(4), 6)])
    with pytest.raises(ValueError, match="frame_start"):
        VideoDataset(str(shard), frame_start="end")
    with pytest.raises(ValueError, match="does not exist"):
        VideoDataset(str(tmp_path / "missing.tar"))
    with pytest.raises(ValueError, match="matches no files"):
        VideoDataset(str(tmp_path / "*.tgz"))
    with pytest.raises(ValueError, match="epoch_length"):
        VideoDataset(str(shard), epoch_length=0)
    with pytest.raises(ValueError, match="shards"):
        VideoDataModule(train={"num_frames": 3})


def test_decoder_side_resize_matches_the_torch_resize(tmp_path):
    """Frames are shrunk by FFmpeg's scaler while decoding; the result matches resizing full frames in torch."""
    gradient = np.linspace(0, 255, 96, dtype=np.float32).round().astype(np.uint8)
    frames = np.broadcast_to(gradient[None, None, :, None], (4, 32, 96, 3)).copy()  # gray ramp, left to right
    shard = write_shard(tmp_path / "a.tar", [video_sample("g", frames, 6)])
    s = next(iter(VideoDataset(str(shard), num_frames=2, fps=6, size=(16, 16), crop="center")))
    reference = resize_cover_crop(to_signed_unit(torch.from_numpy(frames[:2])), (16, 16), "center")
    assert s["frames"].shape == reference.shape == (2, 3, 16, 16)
    assert (s["frames"] - reference).abs().max() < 0.05
