"""main.py end to end on the toy model: dry run, checkpoints with the config inside, resume, NaN, DDP."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sgm.training import run
from sgm.training.cli import parse_args
from sgm.training.config import check_config, merge_configs
from tests.training_helpers import (
    REPO,
    SimulatedCrash,
    one_thread_fixture,
    run_main,
    toy_overrides,
    toy_video_shards,
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


_one_thread = pytest.fixture(autouse=True)(one_thread_fixture)


def _run_dir(tmp_path, name="t") -> Path:
    (run_dir,) = [p for p in (tmp_path / "logs").iterdir() if p.name.endswith("_" + name)]
    return run_dir


def _ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_parse_args_overrides_among_bases():
    args = parse_args(["--base", "a.yaml", "b.yaml", "x.y=1", "--seed", "3", "z=2"])
    assert args.base == ["a.yaml", "b.yaml"] and args.overrides == ["x.y=1", "z=2"] and args.seed == 3
    with pytest.raises(SystemExit):
        parse_args([])


def test_merge_order_and_missing_sections(tmp_path):
    (tmp_path / "a.yaml").write_text("model: {base_learning_rate: 1.0, target: m}\nk: a\n")
    (tmp_path / "b.yaml").write_text("k: b\n")
    cfg = merge_configs([str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")], ["k=c", "model.base_learning_rate=2.0"])
    assert cfg.k == "c" and cfg.model.base_learning_rate == 2.0
    assert merge_configs([str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]).k == "b"
    with pytest.raises(ValueError, match=r"no `data:`"):
        check_config(cfg)
    with pytest.raises(FileNotFoundError, match="nothere.yaml"):
        merge_configs([str(tmp_path / "nothere.yaml")])


def test_user_errors_in_configs_and_overrides_are_value_errors_naming_the_culprit(tmp_path):
    (tmp_path / "a.yaml").write_text("model: {base_learning_rate: 1.0, target: m, params: {loss_fn_config: {}}}\n"
                                     "data: {target: d}\n")
    base = [str(tmp_path / "a.yaml")]
    with pytest.raises(ValueError, match=r"override 'model.params.x=\[1,2'"):
        merge_configs(base, ["model.params.x=[1,2"])
    (tmp_path / "broken.yaml").write_text("model: [\n")
    with pytest.raises(ValueError, match="broken.yaml is not valid YAML"):
        merge_configs([str(tmp_path / "broken.yaml")])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        merge_configs([str(tmp_path / "list.yaml")])
    check_config(merge_configs(base))  # the valid config passes
    for override, message in [("data=5", "`data:` must be a mapping"), ("lightning=5", "`lightning:` must be a mapping"),
                              ("lightning.trainer=gpu", "`lightning.trainer:` must be a mapping"),
                              ("model.base_learning_rate=abc", "must be a number")]:
        with pytest.raises(ValueError, match=message):
            check_config(merge_configs(base, [override]))


def test_unknown_trainer_setting_is_named(tmp_path):
    from omegaconf import OmegaConf

    from sgm.training.rundir import RunDir
    from sgm.training.trainer import build_trainer

    cfg = OmegaConf.create({"lightning": {"trainer": {"accelerator": "cpu", "max_step": 3}}})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['max_step'\].*max_steps"):
        build_trainer(cfg, RunDir(tmp_path), seed=0)


def test_bad_override_exits_with_a_message_not_a_traceback(tmp_path, caplog):
    assert _main(["--base", str(REPO / "configs" / "toy" / "svd_toy.yaml"), "model.params.x=[1,2", "--dry-run"]) == 2
    assert "cannot apply the override 'model.params.x=[1,2'" in caplog.text


_main = run_main


def test_dry_run_prints_the_resolved_config(tmp_path, capsys):
    args = toy_overrides(tmp_path, extra=["model.base_learning_rate=0.00042", "lightning.trainer.max_steps=7"])
    assert _main([*args, "--dry-run"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["base_learning_rate"] == 0.00042
    assert cfg["lightning"]["trainer"]["max_steps"] == 7  # the later override wins
    assert cfg["model"]["params"]["loss_fn_config"]["params"]["sigma_sampler_config"]["params"]["p_mean"] == 1.0
    assert not (tmp_path / "logs").exists()  # a dry run makes no run directory


def test_missing_section_exits_with_a_message(tmp_path, caplog):
    (tmp_path / "m.yaml").write_text("model: {target: sgm.models.diffusion.DiffusionEngine, base_learning_rate: 1.0e-4}\n")
    assert _main(["--base", str(tmp_path / "m.yaml"), "--dry-run"]) == 2
    assert "no `data:`" in caplog.text


def test_short_run_writes_checkpoints_config_logs_and_videos(tmp_path):
    args = toy_overrides(tmp_path, max_steps=2, extra=[
        "lightning.modelcheckpoint.params.every_n_train_steps=1",
        "lightning.trainer.log_every_n_steps=1",
        "lightning.callbacks.video_logger={target: sgm.training.video_logger.VideoLogger, "
        "params: {every_n_steps: 2, max_videos: 1, num_steps: 2}}",
    ])
    assert run(args) == 0
    run_dir = _run_dir(tmp_path)
    saved = yaml.safe_load((run_dir / "configs" / "config.yaml").read_text())
    assert saved["lightning"]["trainer"]["max_steps"] == 2
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step00000001.ckpt", "step00000002.ckpt"]
    ckpt = _ckpt(run_dir / "checkpoints" / "step00000001.ckpt")
    assert ckpt["global_step"] == 1
    assert ckpt["config"]["model"]["params"]["loss_fn_config"] == saved["model"]["params"]["loss_fn_config"]
    assert any(k.startswith("model_ema.") for k in ckpt["state_dict"])
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    losses = [float(r["loss"]) for r in rows if r.get("loss")]
    assert len(losses) == 2 and all(v > 0 for v in losses)
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tensorboard").iterdir())
    videos = sorted(p.name for p in (run_dir / "videos").iterdir())
    assert videos == ["step00000002_0.mp4", "step00000002_grid.png"]
    import av

    with av.open(str(run_dir / "videos" / "step00000002_0.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path):
    """5 batches per epoch, checkpoints every 2 steps; one run crashes in step 3 (mid-epoch) and is resumed
    from its step-2 checkpoint; after 7 steps (past the epoch end) its weights equal an uninterrupted run's."""
    common = ["lightning.modelcheckpoint.params.every_n_train_steps=2"]
    assert run(toy_overrides(tmp_path, max_steps=7, length=5, name="full", extra=common)) == 0
    crash = common + ["lightning.callbacks.crash={target: tests.training_helpers.CrashAtStep, params: {step: 3}}"]
    with pytest.raises(SimulatedCrash):
        run(toy_overrides(tmp_path, max_steps=7, length=5, name="crashed", extra=crash))
    crashed = _run_dir(tmp_path, "crashed")
    assert _ckpt(crashed / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert run(["--resume", str(crashed), "lightning.callbacks.crash=null"]) == 0
    full = _ckpt(_run_dir(tmp_path, "full") / "checkpoints" / "last.ckpt")
    resumed = _ckpt(crashed / "checkpoints" / "last.ckpt")
    assert full["global_step"] == resumed["global_step"] == 7
    assert full["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    # the resumed run continued from step 2 in the same run directory
    assert sorted(p.name for p in (crashed / "checkpoints").iterdir()) == [
        "last.ckpt", "step00000002.ckpt", "step00000004.ckpt", "step00000006.ckpt"]


def test_nan_loss_stops_training_with_a_clear_message(tmp_path, caplog):
    args = toy_overrides(tmp_path, max_steps=3, extra=[
        "model.params.loss_fn_config.params.loss_weighting_config.target=tests.training_helpers.NaNWeighting"])
    assert _main(args) == 1
    assert "training stopped: training loss is nan at global step 0" in caplog.text
    assert "lower the learning rate" in caplog.text
    run_dir = _run_dir(tmp_path)
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()


def test_ddp_two_cpu_processes(tmp_path):
    args = toy_overrides(tmp_path, max_steps=2, extra=[
        "lightning.trainer.devices=2", "lightning.trainer.strategy=ddp", "lightning.trainer.accelerator=cpu"])
    out = subprocess.run([sys.executable, "main.py", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "distributed_backend=gloo" in out.stderr + out.stdout
    assert "All distributed processes registered" in out.stderr + out.stdout
    run_dirs = list((tmp_path / "logs").iterdir())
    assert len(run_dirs) == 1  # the second process reused the first one's run directory
    ckpt = _ckpt(run_dirs[0] / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 2


@pytest.fixture(scope="module")
def five_second_videos(tmp_path_factory):
    """Shards of videos long enough for 25 frames at 6 fps (a dry run decodes one sample)."""
    return toy_video_shards(tmp_path_factory.mktemp("videos"), duration=5.0, samples=1)


@pytest.mark.parametrize("config", ["configs/svd_xt.yaml", "configs/svd.yaml"])
def test_full_size_configs_build_in_a_dry_run(config, capsys, five_second_videos):
    """The stage-3 configs build (on the meta device) and carry the paper's settings."""
    assert _main(["--base", str(REPO / config), f"data.params.train.shards={five_second_videos}", "--dry-run"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    params = cfg["model"]["params"]
    frames = 25 if "xt" in config else 14
    assert cfg["data"]["params"]["train"]["num_frames"] == frames and cfg["data"]["params"]["train"]["size"] == [576, 1024]
    assert params["sampler_config"]["params"]["guider_config"]["params"]["num_frames"] == frames
    sigma = params["loss_fn_config"]["params"]["sigma_sampler_config"]["params"]
    assert (sigma["p_mean"], sigma["p_std"]) == (1.0, 1.6)
    assert params["network_config"]["params"]["use_checkpoint"] is True
    assert cfg["lightning"]["trainer"]["precision"] == "bf16-mixed" and params["use_ema"] is True
    # the model keys are the inference config's, so the official checkpoints load
    inference = yaml.safe_load((REPO / "configs" / "inference" / Path(config).name).read_text())["model"]["params"]
    for key in ("network_config", "denoiser_config", "first_stage_config"):
        assert params[key] == inference[key], key


def test_strategy_config_and_learning_rate_scaling(tmp_path):
    from omegaconf import OmegaConf

    from sgm.training.rundir import RunDir
    from sgm.training.trainer import build_trainer, learning_rate, trainer_kwargs

    cfg = OmegaConf.create({
        "model": {"base_learning_rate": 1.0e-5},
        "data": {"params": {"batch_size": 3}},
        "lightning": {"trainer": {"accelerator": "cpu", "devices": 1, "accumulate_grad_batches": 2,
                                  "strategy": {"target": "pytorch_lightning.strategies.DDPStrategy",
                                               "params": {"process_group_backend": "gloo"}}}},
    })
    kwargs = trainer_kwargs(cfg)
    assert type(kwargs["strategy"]).__name__ == "DDPStrategy"
    trainer = build_trainer(cfg, RunDir(tmp_path), seed=0)
    assert learning_rate(cfg, trainer) == 1.0e-5  # scale_lr off by default
    cfg.lightning.scale_lr = True
    assert learning_rate(cfg, trainer) == pytest.approx(1.0e-5 * 3 * 2)  # batch x accumulate x 1 device x 1 node
    cfg.lightning.trainer.callbacks = []
    with pytest.raises(ValueError, match="lightning.callbacks"):
        build_trainer(cfg, RunDir(tmp_path), seed=0)


def test_ddp_nan_on_one_rank_stops_every_rank(tmp_path):
    args = toy_overrides(tmp_path, max_steps=3, extra=[
        "lightning.trainer.devices=2", "lightning.trainer.strategy=ddp", "lightning.trainer.accelerator=cpu",
        "model.params.loss_fn_config.params.loss_weighting_config.target=tests.training_helpers.NaNWeightingOnRank1"])
    out = subprocess.run([sys.executable, "main.py", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stderr[-4000:]
    assert "training stopped: training loss is not finite on another rank at global step 0" in out.stderr


def test_resume_merges_base_files_over_the_saved_config(tmp_path):
    """--resume RUN --base more.yaml: the run's saved config, then more.yaml, then overrides (docs/training.md)."""
    from sgm.training.run import resolve_run

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "configs").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run_dir / "configs" / "config.yaml").write_text(
        "model: {target: m, base_learning_rate: 1.0, params: {ckpt_path: init.safetensors}}\ndata: {target: d}\n"
        "lightning: {trainer: {max_steps: 10}}\n")
    (tmp_path / "more.yaml").write_text("lightning: {trainer: {max_steps: 20, log_every_n_steps: 1}}\n")
    args = parse_args(["--resume", str(run_dir), "--base", str(tmp_path / "more.yaml"), "lightning.trainer.max_steps=30"])
    cfg, resolved_dir, ckpt = resolve_run(args)
    assert cfg.model.target == "m" and cfg.data.target == "d"  # from the saved config
    assert cfg.lightning.trainer.log_every_n_steps == 1 and cfg.lightning.trainer.max_steps == 30
    assert cfg.model.params.ckpt_path is None  # the checkpoint has the weights
    assert resolved_dir.root == run_dir and ckpt == str(run_dir / "checkpoints" / "last.ckpt")
