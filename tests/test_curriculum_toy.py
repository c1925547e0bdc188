"""The toy curriculum (scripts/toy_curriculum.py): its loss bookkeeping, and the whole run end to end."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("toy_curriculum", REPO / "scripts" / "toy_curriculum.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toy = load_script()


def test_training_losses_read_lightning_csv(tmp_path):
    csv = tmp_path / "metrics.csv"
    # Lightning's CSVLogger: lr rows without a loss, loss rows in step order (maybe repeated columns empty)
    csv.write_text("epoch,global_step,loss,lr-AdamW,step\n,,,0.1,0\n0,0.0,0.9,,0\n,,,0.2,1\n0,1.0,0.7,,1\n"
                   "0,3.0,0.4,,3\n0,2.0,0.5,,2\n")
    assert toy.training_losses(csv) == [0.9, 0.7, 0.5, 0.4]
    assert toy.first_last([0.9, 0.7, 0.5, 0.4]) == (0.9, 0.4)
    assert toy.first_last([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) == (1.5, 7.5)
    with pytest.raises(toy.CurriculumError, match="no training log"):
        toy.training_losses(tmp_path / "missing.csv")
    with pytest.raises(toy.CurriculumError, match="no loss"):
        toy.first_last([])


@pytest.mark.slow
def test_toy_curriculum_end_to_end(tmp_path):
    """Data, three stages through main.py (each from the last one's weights), loss check, sampled mp4."""
    report = toy.run(tmp_path / "toy", steps=12, seed=23, threads=1, log=lambda *a: None)
    stages = report["stages"]
    assert list(stages) == ["stage1", "stage2", "stage3"]
    for name, stage in stages.items():
        assert stage["loss_fell"] and stage["eval_loss_end"] < stage["eval_loss_start"], (name, stage)
        assert Path(stage["checkpoint"]).is_file()
    # each stage started from the previous one's weights: the init files exist and the stage-2/3 runs loaded them
    for name in ("stage2", "stage3"):
        config = (tmp_path / "toy" / name / "configs" / "config.yaml").read_text()
        assert f"{name}_init.safetensors" in config
    video = Path(report["video"])
    assert video.suffix == ".mp4" and video.stat().st_size > 0
    assert json.loads((tmp_path / "toy" / "report.json").read_text())["video"] == report["video"]


def test_cli_rejects_bad_steps(capsys):
    with pytest.raises(SystemExit):
        toy.parse_args(["--steps", "0"])
