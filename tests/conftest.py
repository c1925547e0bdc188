import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("SGM_REFERENCE_DIR", REPO.parent / "shared" / "reference"))

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pytest_collection_modifyitems(config, items):
    has_gpu = torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "golden").is_dir():
        pytest.skip(f"reference fixtures not found at {REFERENCE} (set SGM_REFERENCE_DIR)")
    return REFERENCE


@pytest.fixture(scope="session")
def golden(reference_dir):
    """The reference helper module (fill_, rel_err, compare)."""
    sys.path.insert(0, str(reference_dir))
    import golden as golden_module

    return golden_module


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_toy_run(tmp_path_factory):
    """(workdir, report) of scripts/toy_curriculum.py at the smallest size that still makes every stage's
    loss fall: the end-to-end test checks it, and scripts that build on a toy run (the motion-LoRA proof) use it."""
    workdir = tmp_path_factory.mktemp("toy_run") / "toy"
    from tests.helpers import load_script

    toy = load_script("scripts/toy_curriculum.py")
    report = toy.run(workdir, ae_steps=30, steps=40, i2v_steps=16, seed=23, threads=1, clips=2, log=lambda *a: None)
    return workdir, report
