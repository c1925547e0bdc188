"""Curated shards load through the training video dataset (contract 2 batches) and train the toy model."""
import json

import pytest
import torch
from torch.utils.data import DataLoader

from sgm.data.curation.inputs import list_inputs
from sgm.data.curation.pipeline import analyze_all, build_shards
from sgm.data.curation.synthetic import write_scene_video
from tests.curation_helpers import quick_config, shard_members


@pytest.fixture(scope="module")
def curated_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    write_scene_video(root / "in" / "pan.mp4", [("moving", 40), ("moving", 30)], seed=7)
    (root / "in" / "pan.txt").write_text("a panning texture")
    cfg = quick_config("output.max_short_side=64")
    analyze_all(list_inputs([root / "in"]), root / "work", cfg, progress=False)
    build_shards(root / "work", root / "out", cfg, progress=False)
    return root / "out" / "shards"


def test_curated_shards_give_contract_2_batches(curated_shards):
    from sgm.data.video import VideoDataset

    metas = {n[: -len(".json")]: json.loads(b) for m in shard_members(curated_shards).values() for n, b in m
             if n.endswith(".json")}
    assert len(metas) == 2
    ds = VideoDataset(str(curated_shards), num_frames=4, fps=6, size=(64, 64), crop="center", frame_start="start",
                      shuffle_buffer=0, keep_key=True, seed=0)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["frames"].shape == (2, 4, 3, 64, 64) and batch["frames"].dtype == torch.float32
    assert batch["frames"].min() >= -1 and batch["frames"].max() <= 1
    assert batch["cond_frames_without_noise"].shape == (2, 3, 64, 64)
    assert torch.equal(batch["cond_frames_without_noise"], batch["frames"][:, 0])
    assert batch["cond_frames"].shape == (2, 3, 64, 64) and batch["cond_aug"].shape == (2,)
    assert batch["fps_id"].tolist() == [5, 5]  # 12 fps source, every 2nd frame: 6 fps -> fps_id 5
    assert batch["num_video_frames"].tolist() == [4, 4]
    assert batch["txt"] == ["a panning texture"] * 2
    assert sorted(batch["__key__"]) == sorted(metas)
    assert batch["motion_bucket_id"].tolist() == [metas[k]["motion_bucket_id"] for k in batch["__key__"]]


def test_curated_shards_train_the_toy_model(curated_shards):
    from sgm.data.video import VideoDataset
    from sgm.util import instantiate_from_config
    from tests.training_helpers import toy_config

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = instantiate_from_config(toy_config(**{"model.params.scheduler_config": None,
                                                  "model.params.use_ema": False}).model).train()
    model.learning_rate = 1e-3
    ds = VideoDataset(str(curated_shards), num_frames=4, fps=6, size=(64, 64), crop="center", frame_start="start",
                      shuffle_buffer=0, seed=0)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    opt = model.configure_optimizers()
    before = [p.detach().clone() for p in model.model.parameters() if p.requires_grad]
    loss, _ = model.shared_step(batch)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = [p.detach() for p in model.model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
