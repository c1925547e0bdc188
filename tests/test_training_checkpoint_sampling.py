"""A checkpoint written by main.py samples with the sampling CLI (and loads in the demo's pipeline) from
`--ckpt` alone: the run config stored inside it builds the model."""
import csv

import numpy as np
import pytest
import torch
from PIL import Image

from sgm.training import run
from tests.training_helpers import one_thread_fixture, toy_overrides

_one_thread = pytest.fixture(autouse=True)(one_thread_fixture)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    assert run(toy_overrides(tmp, max_steps=1)) == 0  # log_every_n_steps is 5 in the toy config
    (ckpt,) = (tmp / "logs").glob("*_t/checkpoints/last.ckpt")
    with open(ckpt.parent.parent / "csv" / "metrics.csv", newline="") as f:
        assert [r["step"] for r in csv.DictReader(f) if r.get("loss")] == ["0"]  # a run shorter than that logs too
    return ckpt


def test_sampling_cli_takes_a_training_checkpoint_alone(trained, tmp_path):
    from scripts.sampling.simple_video_sample import main

    image = tmp_path / "in.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(image)
    out = tmp_path / "out"
    assert main(["--input_path", str(image), "--ckpt", str(trained), "--output_folder", str(out),
                 "--num_steps", "2", "--device", "cpu", "--format", "png"]) == 0
    frames = sorted((out / "in_frames").iterdir())
    assert len(frames) == 4  # the toy run's sampling.num_frames, from the config inside the checkpoint
    assert Image.open(frames[0]).size == (64, 64)


def test_the_demo_pipeline_loads_a_training_checkpoint_whatever_the_version(trained):
    from sgm.inference import VideoPipeline

    pipe = VideoPipeline.load(version="svd_xt", ckpt=str(trained), device="cpu")  # as the demo calls it
    assert pipe.info["config"] == f"the config stored in {trained}" and pipe.info["version"] is None
    assert pipe.defaults.num_frames == 4
    weights = torch.load(trained, map_location="cpu", weights_only=True)["state_dict"]
    ema, raw = weights["model_ema.diffusion_modelout2bias"], weights["model.diffusion_model.out.2.bias"]
    assert not torch.equal(ema, raw)  # one step with EMA warm-up: the two differ
    assert torch.equal(pipe.model.state_dict()["model.diffusion_model.out.2.bias"], ema)  # sampled with the EMA
