#!/usr/bin/env python
"""The SVD training curriculum in miniature, on CPU, in a few minutes, with no downloads.

    python scripts/toy_curriculum.py [--workdir runs/toy] [--steps 40]

1. Data: synthetic webdataset shards (moving shapes; sgm.data.synthetic) for training and for a fixed
   evaluation batch: images for stage 1, 4-frame clips for stages 2 and 3.
2. Stage 1, text-to-image (configs/curriculum/toy/stage1_image.yaml) from a seeded random init.
3. Stage 2, text-to-video (configs/curriculum/toy/stage2_video_pretrain.yaml) from stage 1's weights,
   inflated with sgm.models.inflation.inflate_image_unet (temporal layers start as identities).
4. Stage 3, image-to-video (configs/toy/svd_toy.yaml, the tiny SVD) from stage 2's weights, adapted with
   sgm.models.inflation.adapt_t2v_to_i2v (new input channels and vector conditioning start at zero).
   Each stage is a `main.py --base <config> key=value ...` subprocess in <workdir>/stageN.
5. Loss check per stage: the loss on a fixed evaluation batch (fixed noise and noise levels, drawn as in
   training) must be lower with the stage's final weights than with its starting weights. The training
   loss from the CSV log (mean of the first vs the last quarter of the logged steps) is reported too; with
   batches of 2-8 and one noise level per video it is too noisy to decide on its own.
6. A video sampled from the final checkpoint with scripts/sampling/simple_video_sample.py.

Exit status 0 when every stage's loss fell and the video was written, 1 otherwise. See docs/curriculum.md.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = [
    # name, config, adapter from the previous stage (None: seeded random init), batch kind
    ("stage1", "configs/curriculum/toy/stage1_image.yaml", None, "images"),
    ("stage2", "configs/curriculum/toy/stage2_video_pretrain.yaml", "inflate", "videos"),
    ("stage3", "configs/toy/svd_toy.yaml", "i2v", "videos"),
]
VIDEO_SIZE = (64, 128)   # (H, W) of the synthetic clips
IMAGE_SIZE = (64, 64)
EVAL_REPEATS = 4         # noise draws per evaluation item (the same draws before and after a stage)


class CurriculumError(RuntimeError):
    """A stage failed; the message says which and why."""


# ------------------------------------------------------------------------------------------ data
def make_data(data_dir: Path, seed: int) -> Dict[str, Path]:
    """Training and evaluation shards (kept if already there: the writers are deterministic)."""
    from sgm.data.synthetic import write_toy_image_shards, write_toy_video_shards

    dirs = {name: data_dir / name for name in ("images", "videos", "eval_images", "eval_videos")}
    jobs = {
        "images": lambda d: write_toy_image_shards(d, num_shards=2, samples_per_shard=32, size=IMAGE_SIZE, seed=seed),
        "videos": lambda d: write_toy_video_shards(d, num_shards=2, samples_per_shard=8, size=VIDEO_SIZE, seed=seed),
        "eval_images": lambda d: write_toy_image_shards(d, num_shards=1, samples_per_shard=8, size=IMAGE_SIZE,
                                                         seed=seed + 1000, prefix="toy-image-eval"),
        "eval_videos": lambda d: write_toy_video_shards(d, num_shards=1, samples_per_shard=4, size=VIDEO_SIZE,
                                                         seed=seed + 1000, prefix="toy-video-eval"),
    }
    for name, path in dirs.items():
        if not any(path.glob("*.tar")):
            jobs[name](path)
    return dirs


def eval_batch(kind: str, shards: Path, data_cfg) -> dict:
    """One fixed batch of the evaluation shards, decoded with the stage's data settings."""
    from omegaconf import OmegaConf

    from sgm.util import instantiate_from_config

    cfg = OmegaConf.create(OmegaConf.to_container(data_cfg, resolve=True))
    train = cfg.params.train
    train.shards = str(shards)
    for key in ("resampled", "epoch_length"):
        train.pop(key, None)
    train.shuffle_buffer = 0
    train.seed = 0
    train.crop = "center"
    if kind == "videos":
        train.frame_start = "start"
    cfg.params.batch_size = 8 if kind == "images" else 4
    cfg.params.num_workers = 0
    datamodule = instantiate_from_config(cfg)
    return next(iter(datamodule.train_dataloader()))


# ------------------------------------------------------------------------------------ evaluation
def eval_loss(engine, batch: dict, repeats: int = EVAL_REPEATS, seed: int = 0) -> float:
    """The training loss of `engine` on `batch` with conditioning dropout off and fixed random draws
    (noise levels, noise): the same value for the same weights, comparable across weights."""
    import torch

    engine.eval()  # conditioning dropout is off in eval mode
    with torch.no_grad():
        x = engine.encode_first_stage(engine.get_input(batch))
        losses = []
        for r in range(repeats):
            torch.manual_seed(seed + r)
            losses.append(engine.loss_fn(engine.model, engine.denoiser, engine.conditioner, x, dict(batch)).mean().item())
    return sum(losses) / len(losses)


def training_losses(metrics_csv: Path) -> List[float]:
    """The logged per-step training losses of a run, in step order (Lightning's CSVLogger file)."""
    if not metrics_csv.is_file():
        raise CurriculumError(f"no training log at {metrics_csv}")
    rows = []
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("loss"):
                rows.append((int(float(row.get("step") or row.get("global_step") or len(rows))), float(row["loss"])))
    rows.sort(key=lambda r: r[0])
    return [loss for _, loss in rows]


def first_last(losses: Sequence[float]) -> tuple:
    """Mean of the first and of the last quarter (at least one value each) of the logged losses."""
    if not losses:
        raise CurriculumError("the training log has no loss values")
    k = max(1, len(losses) // 4)
    return sum(losses[:k]) / k, sum(losses[-k:]) / k


# ---------------------------------------------------------------------------------------- stages
def build_engine(config_path: str, ckpt: Optional[str] = None):
    """The DiffusionEngine of a config, with `ckpt` loaded (or its own init if None)."""
    from omegaconf import OmegaConf

    from sgm.models.inflation import without_ckpt_path
    from sgm.util import instantiate_from_config

    engine = instantiate_from_config(without_ckpt_path(OmegaConf.load(REPO / config_path)))
    if ckpt is not None:
        from sgm.checkpoint import load_checkpoint

        load_checkpoint(engine, ckpt)
    return engine.eval()


def initial_checkpoint(stage: tuple, previous_ckpt: Optional[Path], out: Path, seed: int):
    """Write the stage's starting weights; return (path, engine holding them)."""
    import torch
    from safetensors.torch import save_file

    from sgm.checkpoint import read_state_dict
    from sgm.models.inflation import convert_state

    name, config, adapter, _ = stage
    torch.manual_seed(seed)
    engine = build_engine(config)
    if adapter is not None:
        convert_state(read_state_dict(str(previous_ckpt)), engine, adapter)
    save_file({k: v.detach().clone().contiguous() for k, v in engine.state_dict().items()}, str(out))
    return out, engine


def train_stage(stage: tuple, run_dir: Path, init_ckpt: Path, train_shards: Path, steps: int, seed: int,
                threads: int, log) -> Path:
    """Run main.py for one stage; return its final checkpoint."""
    name, config, _, _ = stage
    if run_dir.exists():
        shutil.rmtree(run_dir)
    overrides = [
        f"model.params.ckpt_path={init_ckpt}",
        f"data.params.train.shards={train_shards}",
        f"lightning.trainer.max_steps={steps}",
        "lightning.trainer.log_every_n_steps=1",
        "lightning.trainer.enable_progress_bar=false",
        f"lightning.modelcheckpoint.params.every_n_train_steps={max(steps, 1)}",
        "lightning.callbacks.video_logger=null",   # sampling happens once, at the end
    ]
    if name == "stage3":
        overrides.append("model.base_learning_rate=1.0e-3")  # tiny model, few steps (configs/toy/svd_toy.yaml: 1e-4)
    cmd = [sys.executable, str(REPO / "main.py"), "--base", str(REPO / config), *overrides, "--seed", str(seed)]
    env = {**os.environ, "SGM_RUN_DIR": str(run_dir), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log_path = run_dir.parent / f"{name}.log"
    start = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "".join(open(log_path).readlines()[-15:])
        raise CurriculumError(f"{name}: main.py exited with {proc.returncode}; log {log_path}:\n{tail}")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise CurriculumError(f"{name}: training finished without {ckpt}")
    log(f"  trained {steps} steps in {time.perf_counter() - start:.0f}s (log {log_path})")
    return ckpt


def sample_video(ckpt: Path, out_dir: Path, image: Path, threads: int) -> Path:
    """Sample a 4-frame video from the stage-3 checkpoint with the sampling script; return the mp4."""
    cmd = [sys.executable, str(REPO / "scripts" / "sampling" / "simple_video_sample.py"),
           "--config", str(REPO / STAGES[-1][1]), "--ckpt", str(ckpt), "--input_path", str(image),
           "--output_folder", str(out_dir), "--device", "cpu", "--num_frames", "4", "--num_steps", "4",
           "--height", "64", "--width", "64", "--fps_id", "5", "--motion_bucket_id", "127", "--cond_aug", "0.02",
           "--decoding_t", "4", "--format", "mp4"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if out_dir.exists():
        shutil.rmtree(out_dir)  # no stale video from an earlier run
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CurriculumError(f"sampling failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    videos = sorted(out_dir.rglob("*.mp4"))
    if not videos:
        raise CurriculumError(f"sampling wrote no mp4 under {out_dir}:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return videos[-1]


def first_frame(video_shards: Path, out: Path) -> Path:
    """The first frame of the first evaluation clip, as the image to animate."""
    from PIL import Image

    batch = eval_batch("videos", video_shards, _video_data_cfg())
    frame = ((batch["frames"][0, 0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(frame).save(out)
    return out


def _video_data_cfg():
    from omegaconf import OmegaConf

    return OmegaConf.load(REPO / STAGES[1][1]).data


# ------------------------------------------------------------------------------------------- main
def run(workdir: Path, steps: int, seed: int, threads: int, log=print) -> dict:
    import torch

    torch.set_num_threads(threads)
    from omegaconf import OmegaConf

    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log(f"[data] synthetic shards in {workdir / 'data'}")
    data = make_data(workdir / "data", seed)
    report = {"workdir": str(workdir), "steps": steps, "stages": {}}
    previous = None
    for stage in STAGES:
        name, config, adapter, kind = stage
        log(f"[{name}] {config}" + (f" (from {previous.name}, adapter {adapter})" if previous else " (random init)"))
        init, engine = initial_checkpoint(stage, previous, workdir / f"{name}_init.safetensors", seed)
        batch = eval_batch(kind, data[f"eval_{kind}"], OmegaConf.load(REPO / config).data)
        before = eval_loss(engine, batch)
        del engine
        ckpt = train_stage(stage, workdir / name, init, data[kind], steps, seed, threads, log)
        after = eval_loss(build_engine(config, str(ckpt)), batch)
        first, last = first_last(training_losses(workdir / name / "csv" / "metrics.csv"))
        fell = after < before
        report["stages"][name] = {"config": config, "checkpoint": str(ckpt), "eval_loss_start": before,
                                  "eval_loss_end": after, "train_loss_first_quarter": first,
                                  "train_loss_last_quarter": last, "loss_fell": fell}
        log(f"  eval loss {before:.4f} -> {after:.4f} ({'fell' if fell else 'DID NOT FALL'}); "
            f"training loss, first vs last quarter of the log: {first:.4f} -> {last:.4f}")
        if not fell:
            raise CurriculumError(f"{name}: the loss did not fall (evaluation loss {before:.4f} -> {after:.4f}); "
                                  f"train longer (--steps) or see {workdir / (name + '.log')}")
        previous = ckpt
    log("[sample] image-to-video from the stage-3 checkpoint")
    image = first_frame(data["eval_videos"], workdir / "cond_frame.png")
    video = sample_video(previous, workdir / "samples", image, threads)
    report["video"] = str(video)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (workdir / "report.json").write_text(json.dumps(report, indent=2))
    log(f"[done] in {report['seconds']:.0f}s; every stage's loss fell. Video: {video}")
    log(f"       report: {workdir / 'report.json'}")
    return report


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/toy", help="where data, runs, checkpoints and the video go (default runs/toy)")
    p.add_argument("--steps", type=int, default=40, help="training steps per stage (default 40)")
    p.add_argument("--seed", type=int, default=23, help="seed of data, initialisation and training (default 23)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (default 1: the toy models are too small to gain from more)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir).resolve()
    try:
        run(workdir, args.steps, args.seed, args.threads)
    except CurriculumError as e:
        print(f"toy curriculum FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
