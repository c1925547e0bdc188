"""scripts/benchmark/gpu_suite.sh end to end on the CPU (--dry-run), and the wheel list it relies on."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytest.importorskip("diffusers")
pytest.importorskip("transformers")


@pytest.mark.slow
def test_dry_run_runs_every_variant_and_prints_the_table(tmp_path):
    out = tmp_path / "suite.json"
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "benchmark" / "gpu_suite.sh"), "--dry-run", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "every imported distribution is carried" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    cells = {(r["dtype"], r["variant"], r["engine"]) for r in rows}
    # both dtype passes ran (as fp32 on the CPU), every variant, both engines
    assert len(rows) == 2 * 3 * 2 and {v for _, v, _ in cells} == {"eager", "offload+ff_chunk", "compiled"}
    assert all(r["end_to_end_s"] > 0 and r["unet_s_per_step"] > 0 and r["decode_s"] > 0 for r in rows)
    assert all("compile_s" in r for r in rows if r["variant"] == "compiled")
    table = [line for line in proc.stdout.splitlines() if line.startswith("| fp32 |")]
    assert len(table) == len(rows)
    assert "DRY RUN" in proc.stdout


def test_wheel_list_pins_what_the_suite_needs_and_leaves_torch_alone():
    sys.path.insert(0, str(REPO))
    from scripts.benchmark.gpu_wheels import requirements_closure

    pins = requirements_closure()
    for needed in ("diffusers", "transformers", "omegaconf", "open-clip-torch", "kornia", "pytorch-lightning", "einops"):
        assert needed in pins
    assert not {"torch", "torchvision", "numpy", "pillow"} & set(pins)
    assert not any(name.startswith("nvidia-") for name in pins)
