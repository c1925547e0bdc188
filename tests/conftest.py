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
