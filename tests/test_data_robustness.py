"""Bad data is skipped and counted, never a crash; shards split disjointly over ranks and workers."""
import logging

import pytest
import torch

from sgm.data.video import VideoDataModule, VideoDataset
from tests.data_helpers import ramp_video, video_sample, write_shard, write_video_shards


def _keys(dataset) -> list:
    return [s["__key__"] for s in dataset]


def test_corrupt_mp4_bad_json_and_short_video_are_skipped_and_counted(tmp_path, caplog):
    good = [video_sample(f"good{i}", ramp_video(6), 12) for i in range(3)]
    corrupt = video_sample("corrupt", ramp_video(6), 12)
    corrupt["mp4"] = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4
    truncated = video_sample("truncmp4", ramp_video(6), 12)
    truncated["mp4"] = truncated["mp4"][: len(truncated["mp4"]) // 3]
    bad_json = video_sample("badjson", ramp_video(6), 12)
    bad_json["json"] = b"{not json"
    bad_field = video_sample("badfield", ramp_video(6), 12, motion_bucket_id=999)
    no_json = video_sample("nojson", ramp_video(6), 12)
    del no_json["json"]
    short = video_sample("short", ramp_video(2), 12)  # 2 frames; a 3-frame clip at stride 2 needs 5
    shard = write_shard(tmp_path / "mixed.tar",
                        [good[0], corrupt, bad_json, good[1], truncated, bad_field, no_json, short, good[2]])
    ds = VideoDataset(str(shard), num_frames=3, fps=6, size=(16, 16), shuffle_buffer=0, keep_key=True)
    with caplog.at_level(logging.WARNING, logger="sgm.data"):
        assert _keys(ds) == ["good0", "good1", "good2"]
    assert ds.skipped == {"read_error": 0, "missing_member": 1, "bad_json": 2, "corrupt_video": 2,
                          "corrupt_image": 0, "too_short": 1}
    logged = caplog.text
    for key in ("corrupt", "badjson", "truncmp4", "badfield", "nojson", "short"):
        assert key in logged


def test_truncated_tar_does_not_stop_the_next_shard(tmp_path):
    first = write_shard(tmp_path / "s0.tar", [video_sample(f"a{i}", ramp_video(6), 12) for i in range(3)])
    data = first.read_bytes()
    first.write_bytes(data[: int(len(data) * 0.6)])  # cut inside the second or third sample
    write_shard(tmp_path / "s1.tar", [video_sample(f"b{i}", ramp_video(6), 12) for i in range(2)])
    ds = VideoDataset(str(tmp_path), num_frames=3, fps=6, size=(16, 16), shuffle_buffer=0, keep_key=True,
                      shard_shuffle_seed=None)
    keys = _keys(ds)
    assert keys[-2:] == ["b0", "b1"] and keys[0] == "a0" and len(keys) <= 4
    assert ds.skipped["read_error"] >= 1


def test_unreadable_shards_and_pipes_are_counted(tmp_path):
    good = write_shard(tmp_path / "good.tar", [video_sample("g", ramp_video(6), 12)])
    (tmp_path / "garbage.tar").write_bytes(b"this is not a tar file" * 50)
    shards = [f"pipe:cat {good}", str(tmp_path / "garbage.tar"), f"pipe:cat {tmp_path}/does-not-exist.tar"]
    ds = VideoDataset(shards, num_frames=3, fps=6, size=(16, 16), shuffle_buffer=0, keep_key=True,
                      shard_shuffle_seed=None)
    assert _keys(ds) == ["g"]
    assert ds.skipped["read_error"] >= 2


def test_ranks_and_workers_get_disjoint_shards_covering_everything(tmp_path, monkeypatch):
    write_video_shards(tmp_path, num_shards=8, per_shard=2)
    seen = {}
    for rank in range(2):
        for worker in range(2):
            monkeypatch.setenv("RANK", str(rank))
            monkeypatch.setenv("WORLD_SIZE", "2")
            monkeypatch.setenv("WORKER", str(worker))
            monkeypatch.setenv("NUM_WORKERS", "2")
            ds = VideoDataset(f"{tmp_path}/shard-{{0000..0007}}.tar", num_frames=3, fps=6, size=(16, 16),
                              keep_key=True, shuffle_buffer=10, seed=0)
            seen[rank, worker] = set(_keys(ds))
    everything = {f"k{s}_{i}" for s in range(8) for i in range(2)}
    assert set().union(*seen.values()) == everything
    assert sum(len(v) for v in seen.values()) == len(everything)  # disjoint
    assert all(len(v) == 4 for v in seen.values())  # two whole shards each
    for keys in seen.values():
        assert len({k.split("_")[0] for k in keys}) == 2


def test_epoch_length_is_exact_per_rank_and_split_over_workers(tmp_path, monkeypatch):
    write_video_shards(tmp_path, num_shards=3, per_shard=2)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    counts = []
    for worker in range(3):
        monkeypatch.setenv("WORKER", str(worker))
        monkeypatch.setenv("NUM_WORKERS", "3")
        for resampled in (False, True):
            ds = VideoDataset(str(tmp_path), num_frames=3, fps=6, size=(16, 16), epoch_length=11,
                              resampled=resampled, seed=3)
            counts.append((worker, resampled, len(list(ds))))
    # 11 samples per epoch over 3 workers: 4 + 4 + 3; each worker's shard (2 samples) repeats.
    assert counts == [(0, False, 4), (0, True, 4), (1, False, 4), (1, True, 4), (2, False, 3), (2, True, 3)]


def test_skips_in_dataloader_workers_are_counted_in_the_main_process(tmp_path, caplog):
    for s in range(2):
        bad = video_sample(f"bad{s}", ramp_video(6), 12)
        bad["json"] = b"[1, 2"
        write_shard(tmp_path / f"s{s}.tar", [video_sample(f"ok{s}", ramp_video(6), 12), bad])
    dm = VideoDataModule(train={"shards": str(tmp_path), "num_frames": 3, "fps": 6, "size": [16, 16]},
                         batch_size=1, num_workers=2)
    loader = dm.train_dataloader()
    with caplog.at_level(logging.WARNING, logger="sgm.data"):
        batches = [dm.on_before_batch_transfer(b, 0) for b in loader]
    assert len(batches) == 2
    assert dm.skipped["bad_json"] == 2 and sum(dm.skipped.values()) == 2
    assert "samples skipped so far" in caplog.text


def test_lightning_trainer_runs_on_the_datamodule_with_and_without_validation(tmp_path):
    import pytorch_lightning as pl

    write_video_shards(tmp_path, num_shards=1, per_shard=4)

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.shapes = []
            self.validated = 0

        def training_step(self, batch, batch_idx):
            self.shapes.append(tuple(batch["frames"].shape))
            return (batch["frames"].mean() - self.w) ** 2

        def validation_step(self, batch, batch_idx):
            self.validated += 1

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(validation):
        dm = VideoDataModule(train={"shards": str(tmp_path), "num_frames": 3, "fps": 6, "size": [16, 16],
                                    "epoch_length": 6}, validation=validation, batch_size=2)
        model = Tiny()
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                             num_sanity_val_steps=0)
        trainer.fit(model, datamodule=dm)
        assert model.shapes == [(2, 3, 3, 16, 16)] * 6 and trainer.global_step == 6
        return model

    assert fit(None).validated == 0
    validation = {"shards": str(tmp_path), "num_frames": 3, "fps": 6, "size": [16, 16], "shuffle_buffer": 0}
    assert fit(validation).validated == 2 * 2  # 4 clips in 2 batches, each of 2 epochs


def test_resampled_without_epoch_length_streams_endlessly(tmp_path):
    write_video_shards(tmp_path, num_shards=1, per_shard=2)
    ds = VideoDataset(str(tmp_path), num_frames=3, fps=6, size=(16, 16), resampled=True, keep_key=True)
    stream = iter(ds)
    keys = [next(stream)["__key__"] for _ in range(7)]  # more than the 2 samples stored
    assert set(keys) <= {"k0_0", "k0_1"} and len(keys) == 7


def test_workers_without_torch_distributed_keep_the_rank_split(tmp_path, monkeypatch):
    """Spawned DataLoader workers do not inherit torch.distributed; the rank recorded in the parent is used."""
    import torch.utils.data

    write_video_shards(tmp_path, num_shards=4, per_shard=1)
    ds = VideoDataset(str(tmp_path), num_frames=3, fps=6, size=(16, 16), keep_key=True, shard_shuffle_seed=None)
    ds.node = (1, 2)  # as remember_rank() records it on rank 1 of 2
    for name in ("RANK", "WORLD_SIZE", "WORKER", "NUM_WORKERS"):  # restored (absent) after the test
        monkeypatch.setenv(name, "0")
        monkeypatch.delenv(name)

    class WorkerInfo:  # what a spawned worker sees: a worker, but no process group
        id, num_workers, seed, dataset = 0, 1, 0, ds

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: WorkerInfo)
    assert sorted(s["__key__"] for s in ds) == ["k1_0", "k3_0"]


@pytest.mark.parametrize("workers", [0, 1])
def test_seeded_epochs_are_reproducible_for_resumed_runs(tmp_path, workers):
    """With `seed`, epoch e's stream depends on e alone: a fresh data module set to epoch 1 (a resumed run)
    reads what one that already went through epoch 0 reads, whether workers persist or not."""
    write_video_shards(tmp_path, num_shards=2, per_shard=3, num_frames=12)
    train = {"shards": str(tmp_path), "num_frames": 3, "fps": 6, "size": [16, 16], "seed": 5, "shuffle_buffer": 4,
             "keep_key": True}

    def epochs(first_epoch, count, persistent):
        epoch = [first_epoch]
        dm = VideoDataModule(train=train, batch_size=2, num_workers=workers, persistent_workers=persistent)
        dm.current_epoch = lambda: epoch[0]  # what a Lightning trainer reports
        loader, out = dm.train_dataloader(), []
        for _ in range(count):
            out.append([(k, b["cond_aug"][i].item(), b["frames"][i, 0, 0, 0, 0].item())
                        for b in loader for i, k in enumerate(b["__key__"])])
            epoch[0] += 1
        return out

    uninterrupted = epochs(0, 2, persistent=workers > 0)
    resumed = epochs(1, 1, persistent=False)
    assert resumed[0] == uninterrupted[1]
    assert uninterrupted[0] != uninterrupted[1]  # a new order, crops and noise each epoch
    assert sorted(k for k, *_ in uninterrupted[0]) == sorted(k for k, *_ in uninterrupted[1])


def _audio_only_mp4() -> bytes:
    """An mp4 holding one AAC audio stream and no video stream."""
    import io

    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return buf.getvalue()


def test_empty_mp4_audio_only_mp4_and_json_of_wrong_types_are_skipped(tmp_path):
    """None of these may reach the model or raise out of the loader (a NaN score used to crash training)."""
    import json

    def with_json(key, **fields):
        sample = video_sample(key, ramp_video(6), 12)
        sample["json"] = json.dumps({**json.loads(sample["json"]), **fields}).encode()  # NaN/Infinity allowed
        return sample

    empty = video_sample("empty", ramp_video(6), 12)
    empty["mp4"] = b""
    audio = video_sample("audio", ramp_video(6), 12)
    audio["mp4"] = _audio_only_mp4()
    bad_json = [
        with_json("fps_string", fps="30"),
        with_json("fps_infinite", fps=float("inf")),
        with_json("frames_string", num_frames="x"),
        with_json("caption_number", caption=5),
        with_json("bucket_string", motion_bucket_id="high"),
        with_json("score_nan", motion_bucket_id=None, motion_score=float("nan")),
        with_json("score_infinite", motion_bucket_id=None, motion_score=float("inf")),
    ]
    shard = write_shard(tmp_path / "bad.tar", [empty, audio, *bad_json, video_sample("good", ramp_video(6), 12)])
    ds = VideoDataset(str(shard), num_frames=3, fps=6, size=(16, 16), shuffle_buffer=0, keep_key=True)
    assert _keys(ds) == ["good"]
    assert ds.skipped["corrupt_video"] == 2 and ds.skipped["bad_json"] == len(bad_json)


@pytest.mark.parametrize("spec", ["missing/*.tar", "missing-shard.tar"])
def test_missing_shards_say_how_to_make_them(tmp_path, spec):
    from sgm.data.webdataset_utils import expand_shards

    with pytest.raises(ValueError, match="make_toy_shards.py"):
        expand_shards(str(tmp_path / spec))
