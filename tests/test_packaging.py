"""The configs ship inside the package: a non-editable install works from any folder."""
import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.helpers import REPO

SCRIPT = """
import sys
sys.path[:0] = [{target!r}]
sys.path.append({site!r})  # the dependencies, without the .pth hooks (so not the editable sgm)
import sgm
assert sgm.__file__.startswith({target!r}), sgm.__file__
from sgm.inference.pipeline import VideoPipeline
pipe = VideoPipeline.load(version="svd_xt", random_weights=True, device="meta")
assert pipe.info["config"].startswith({target!r}), pipe.info["config"]
print("frames", pipe.defaults.num_frames)
"""


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_loads_a_version_by_name(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build writes nothing into the checkout
    for part in ("sgm", "configs"):
        shutil.copytree(REPO / part, source / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    wheels = tmp_path / "wheels"
    # Build with this environment's setuptools when it has one (no download), else in pip's isolated build env.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(wheels), str(source)],
                   check=True, cwd=tmp_path, capture_output=True)
    wheel = next(wheels.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("sgm/configs/inference/svd_xt.yaml", "sgm/configs/tiny/svd_tiny.yaml", "sgm/configs/tiny/tiny_clip.json"):
        assert shipped in names
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = SCRIPT.format(target=str(target), site=sysconfig.get_paths()["purelib"])
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "frames 25" in out.stdout
