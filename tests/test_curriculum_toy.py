"""The toy curriculum (scripts/toy_curriculum.py): its loss bookkeeping, and the whole run end to end."""
import json
from pathlib import Path

import pytest

from tests.helpers import load_script

REPO = Path(__file__).resolve().parents[1]


toy = load_script("scripts/toy_curriculum.py")


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
def test_toy_curriculum_end_to_end(tiny_toy_run):
    """Data, stage 0 (autoencoder) and three stages through main.py's run (each from the last one's weights),
    loss check, videos sampled from held-out first frames, contact sheets, the report with its figures
    (the run: tests/conftest.py tiny_toy_run)."""
    workdir, report = tiny_toy_run
    assert report["stage0"]["scale_factor"] > 0 and report["stage0"]["heldout_video_frame_psnr_db"] > 0
    stages = report["stages"]
    assert list(stages) == ["stage1", "stage2", "stage3"]
    for name, stage in stages.items():
        assert stage["loss_fell"] and stage["eval_loss_end"] < stage["eval_loss_start"], (name, stage)
        assert Path(stage["checkpoint"]).is_file()
    # each stage started from the previous one's weights, with the stage-0 scale factor
    for name in ("stage2", "stage3"):
        config = (workdir / name / "configs" / "config.yaml").read_text()
        assert f"{name}_init.safetensors" in config
        assert f"scale_factor: {report['stage0']['scale_factor']}" in config
    import av

    for k, sample in enumerate(report["samples"]):
        video = Path(sample["video"])
        assert video == workdir / "samples" / f"clip{k}.mp4"
        assert (workdir / "samples" / f"clip{k}_input.png").is_file()
        assert Path(sample["contact_sheet"]).is_file()
        with av.open(str(video)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    saved = json.loads((workdir / "report.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(report["summary"]))
    assert set(saved["seconds"]) == {"data", "stage0", "stage1", "stage2", "stage3", "sample", "total"}
    # every stage trained with the curriculum's thread count (not main.py's load-average default, which would
    # count the curriculum itself as busy)
    for name in ("stage0", "stage1", "stage2", "stage3"):
        assert "1 CPU thread(s) per training process (--threads)" in (workdir / f"{name}.log").read_text(), name
    # the training VideoLogger wrote its grid of samples at the last stage-3 step
    assert any((workdir / "stage3" / "videos").glob("*_grid.png"))


def test_cli_rejects_bad_steps(capsys):
    for flag in ("--steps", "--ae-steps", "--i2v-steps", "--threads", "--clips"):
        with pytest.raises(SystemExit):
            toy.parse_args([flag, "0"])
    with pytest.raises(SystemExit):
        toy.parse_args(["--clips", str(toy.EVAL_CLIPS + 1)])
    assert "at most 16" in capsys.readouterr().err
    assert toy.default_threads() >= 1
