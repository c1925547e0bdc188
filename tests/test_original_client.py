"""The original sgm's sampling client runs unchanged on this package and gives the original's
numbers, for every sampler x guider the original has (see tests/original_client.py for the client
and how tests/fixtures/original_client.safetensors was made)."""
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import REPO
from tests.original_client import GUIDERS, SAMPLERS, build_model, run_all

FIXTURE = REPO / "tests" / "fixtures" / "original_client.safetensors"


@pytest.fixture(scope="module")
def ours(reference_dir):
    torch.set_num_threads(1)
    model, image = build_model(reference_dir)
    before = model.en_and_decode_n_samples_a_time
    out = run_all(model, image)
    assert before is None  # (the client sets it, as the original's script does)
    return out


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_original_client_matches_the_original(ours, sampler):
    expected = load_file(str(FIXTURE))
    for guider in GUIDERS:
        name = f"{sampler}.{guider}"
        for part in ("frames", "means"):
            err = (ours[f"{name}.{part}"] - expected[f"{name}.{part}"]).abs().max().item()
            assert err < 1e-4, f"{name}.{part}: max abs difference {err:.2e}"
        # the global random stream the run leaves behind is the original's
        assert torch.allclose(ours[f"{name}.rng"], expected[f"{name}.rng"], atol=1e-6), name
