#!/usr/bin/env python
"""Few-step SVD in miniature: distil the toy SVD into a 4-step consistency student, on CPU, then measure it.

    python scripts/toy_distill.py [--workdir runs/toy] [--steps 300]

1. The teacher is the toy curriculum's stage-3 checkpoint (<workdir>/stage3/checkpoints/last.ckpt); when it
   is missing, scripts/toy_curriculum.py runs first to make it.
2. `main.py` trains the student from the teacher's weights on the curriculum's training clips (<workdir>/distill),
   with <workdir>/distill_config.yaml: the teacher run's own config (stored in its checkpoint) with the
   distillation engine, loss and sampler of configs/distill/toy_consistency.yaml.
3. On the held-out clips (<workdir>/data/eval_videos, never trained on), each clip's first frame is animated
   with the same seed, hence the same initial noise, by: the teacher with 25 guided Euler steps (the
   reference), the teacher with 1, 2 and 4 guided steps, and the student with 1, 2 and 4 consistency steps, all
   through sgm.inference.VideoPipeline. It reports each one's latent MSE and frame PSNR against the
   25-step teacher in <workdir>/distill_report.json.

   It also applies the toy curriculum's checks (frame 0 against the conditioning frame, the shapes' motion
   against the true clip; sgm.data.synthetic_metrics) to the 25-step teacher's and the 4-step student's videos.

Exit status 0 when the 4-step student is at least 2x closer (latent MSE) to the 25-step teacher than the
4-step teacher is and its videos pass the toy checks, 1 otherwise. See docs/distillation.md.
"""
import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STUDENT_CONFIG = "configs/distill/toy_consistency.yaml"
# What the student's config takes from configs/distill/toy_consistency.yaml; the rest is the teacher run's.
DISTILL_PARAMS = ("sampler_config", "loss_fn_config", "target_decay", "teacher_dtype", "use_ema", "ema_decay_rate")
TEACHER_STEPS = 25
STUDENT_STEPS = (1, 2, 4)
TARGET_RATIO = 2.0
FRAME0_PSNR_TARGET = 22.0  # the toy curriculum's target for frame 0 against the conditioning frame


class DistillError(RuntimeError):
    """A step failed; the message says which and why."""


def ensure_teacher(workdir: Path, threads: int, log) -> Path:
    """The toy stage-3 checkpoint, made by the toy curriculum when it is not there yet."""
    ckpt = workdir / "stage3" / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        log(f"[teacher] {ckpt} not found: running scripts/toy_curriculum.py --workdir {workdir} first")
        cmd = [sys.executable, str(REPO / "scripts" / "toy_curriculum.py"), "--workdir", str(workdir),
               "--threads", str(threads)]
        if subprocess.run(cmd, cwd=REPO).returncode != 0 or not ckpt.is_file():
            raise DistillError(f"the toy curriculum did not produce {ckpt}")
    return ckpt


def teacher_run_config(teacher: Path):
    """The teacher run's own config, stored in its checkpoint by main.py (it holds what the curriculum set at
    run time, such as the toy autoencoder's scale factor)."""
    from omegaconf import OmegaConf

    from sgm.inference.checkpoints import training_config

    run = training_config(str(teacher))
    if run is None:
        raise DistillError(f"{teacher} holds no run config; give a checkpoint written by main.py")
    return OmegaConf.create(run)


def student_config(teacher: Path, out: Path) -> Path:
    """The teacher's run config with the distillation engine, loss and sampler of configs/distill/
    toy_consistency.yaml, the teacher's own sampling guidance as the guidance to distil, and 4 sampling steps."""
    from omegaconf import OmegaConf

    cfg = teacher_run_config(teacher)
    distill = OmegaConf.load(REPO / STUDENT_CONFIG).model
    cfg.model.target = distill.target
    for key in DISTILL_PARAMS:
        cfg.model.params[key] = distill.params[key]
    guider = OmegaConf.select(cfg, "model.params.loss_fn_config.params.guider_config.params")
    taught = OmegaConf.select(teacher_run_config(teacher), "model.params.sampler_config.params.guider_config.params")
    if taught is not None:
        for key in ("min_scale", "max_scale"):
            if key in taught:
                guider[key] = taught[key]
    if "sampling" in cfg:
        cfg.sampling.num_steps = 4
    OmegaConf.save(cfg, out)
    return out


def train_student(teacher: Path, workdir: Path, steps: int, lr: float, seed: int, threads: int, log,
                  extra: Tuple[str, ...] = ()) -> Path:
    """main.py on the distillation config of this teacher, with `extra` key=value overrides last (they win);
    returns the student's last checkpoint."""
    run_dir = workdir / "distill"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shards = workdir / "data" / "videos"
    config = student_config(teacher, workdir / "distill_config.yaml")
    overrides = [f"model.params.ckpt_path={teacher}", f"data.params.train.shards={shards}",
                 f"model.base_learning_rate={lr}", f"lightning.trainer.max_steps={steps}",
                 "lightning.trainer.log_every_n_steps=1", "lightning.trainer.enable_progress_bar=false",
                 f"lightning.modelcheckpoint.params.every_n_train_steps={steps}", "lightning.callbacks.video_logger=null", *extra]
    cmd = [sys.executable, str(REPO / "main.py"), "--base", str(config), *overrides, "--seed", str(seed)]
    env = {**os.environ, "SGM_RUN_DIR": str(run_dir), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log_path = workdir / "distill.log"
    start = time.perf_counter()
    with open(log_path, "w") as out:
        code = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if code != 0 or not ckpt.is_file():
        tail = "".join(open(log_path).readlines()[-15:])
        raise DistillError(f"distillation training exited with {code}; log {log_path}:\n{tail}")
    log(f"[distill] trained {steps} steps in {time.perf_counter() - start:.0f}s (log {log_path})")
    return ckpt


def held_out_clips(workdir: Path, teacher: Path, out_dir: Path, count: int) -> List[Tuple[Path, np.ndarray]]:
    """(first frame as a PNG file, the true clip (T, H, W, 3) uint8) of the held-out evaluation clips."""
    import torch
    from omegaconf import OmegaConf
    from PIL import Image

    from sgm.data.video import VideoDataModule

    shards = workdir / "data" / "eval_videos"
    if not any(shards.glob("*.tar")):
        raise DistillError(f"no held-out clips in {shards}: run scripts/toy_curriculum.py --workdir {workdir}")
    train = OmegaConf.to_container(teacher_run_config(teacher).data.params.train, resolve=True)
    train.update(shards=str(shards), shuffle_buffer=0, crop="center", frame_start="start")
    train.pop("resampled", None)
    loader = VideoDataModule(train=train, batch_size=1, num_workers=0).train_dataloader()
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, batch in enumerate(loader):
        if i >= count:
            break
        frames = ((batch["frames"][0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        path = out_dir / f"heldout_{i:02d}.png"
        Image.fromarray(frames[0]).save(path)
        clips.append((path, frames))
    if not clips:
        raise DistillError(f"the held-out shards in {shards} gave no clip")
    return clips


def toy_checks(reports: List[Dict]) -> Dict:
    """The toy curriculum's checks of a sampled video against its true clip, over clips: frame 0 PSNR against
    the conditioning frame, and the shape's motion (sgm.data.synthetic_metrics.motion_report)."""
    n = len(reports)
    out = {"frame0_psnr_db": float(np.mean([r["frame0_psnr_db"] for r in reports])),
           "direction_agrees": sum(r["direction_agrees"] for r in reports) / n,
           "size_within_0.5_2x": sum(r["size_within_0.5_2x"] for r in reports) / n,
           "closer_than_repeat": sum(r["closer_than_repeat"] for r in reports) / n}
    out["passes"] = bool(out["frame0_psnr_db"] >= FRAME0_PSNR_TARGET and out["direction_agrees"] > 0.5
                         and out["size_within_0.5_2x"] > 0.5)
    return out


def evaluate(teacher_ckpt: Path, student_ckpt: Path, clips: List[Tuple[Path, np.ndarray]], seed: int, log) -> Dict:
    """Latent MSE and frame PSNR of each sampler setting against the 25-step teacher, per clip and mean, and
    the toy checks of the 25-step teacher's and the 4-step student's videos against the true clips."""
    from sgm.data.synthetic_metrics import motion_report, psnr
    from sgm.inference import SamplingOptions, VideoPipeline

    # each checkpoint carries its run's config (scale factor, sizes): the pipelines build from it
    teacher = VideoPipeline.load(ckpt=str(teacher_ckpt), device="cpu")
    student = VideoPipeline.load(ckpt=str(student_ckpt), device="cpu")
    runs = {f"teacher_{k}": (teacher, "euler", k) for k in STUDENT_STEPS}
    runs.update({f"student_{k}": (student, "consistency", k) for k in STUDENT_STEPS})
    per_clip: Dict[str, List[Dict]] = {name: [] for name in runs}
    motion: Dict[str, List[Dict]] = {f"teacher_{TEACHER_STEPS}": [], "student_4": []}
    for image, truth in clips:
        opts = SamplingOptions(seed=seed, sampler="euler", num_steps=TEACHER_STEPS)
        z_ref = teacher.sample_latents(str(image), opts)
        x_ref = teacher.decode_latents(z_ref, opts)
        motion[f"teacher_{TEACHER_STEPS}"].append(motion_report(x_ref, truth))
        for name, (pipe, sampler, steps) in runs.items():
            o = SamplingOptions(seed=seed, sampler=sampler, num_steps=steps)
            z = pipe.sample_latents(str(image), o)
            x = pipe.decode_latents(z, o)
            per_clip[name].append({"latent_mse": float(((z - z_ref) ** 2).mean()), "psnr_db": psnr(x, x_ref)})
            if name in motion:
                motion[name].append(motion_report(x, truth))
        log(f"  {image.name}: " + ", ".join(f"{n} mse {v[-1]['latent_mse']:.4f}" for n, v in per_clip.items()))
    summary = {name: {"latent_mse": float(np.mean([r["latent_mse"] for r in rows])),
                      "psnr_db": float(np.mean([r["psnr_db"] for r in rows]))} for name, rows in per_clip.items()}
    return {"reference": f"teacher, {TEACHER_STEPS} guided Euler steps", "clips": [p.name for p, _ in clips],
            "mean": summary, "per_clip": per_clip,
            "toy_checks": {name: toy_checks(rows) for name, rows in motion.items()}, "motion_per_clip": motion}


def run(workdir: Path, steps: int, lr: float, seed: int, clips: int, threads: int, student: Optional[Path] = None,
        log=print, overrides: Tuple[str, ...] = ()) -> Dict:
    import torch

    torch.set_num_threads(threads)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    teacher = ensure_teacher(workdir, threads, log)
    if student is None:
        student = train_student(teacher, workdir, steps, lr, seed, threads, log, overrides)
    elif not student.is_file():
        raise DistillError(f"--student {student} does not exist")
    log(f"[eval] {clips} held-out clips, same initial noise for every sampler")
    held_out = held_out_clips(workdir, teacher, workdir / "distill_eval", clips)
    report = {"teacher": str(teacher), "student": str(student), "steps": steps, "learning_rate": lr, "seed": seed,
              "overrides": list(overrides), **evaluate(teacher, student, held_out, seed, log)}
    mean = report["mean"]
    ratio = mean["teacher_4"]["latent_mse"] / max(mean["student_4"]["latent_mse"], 1e-12)
    report["ratio_teacher4_over_student4"] = ratio
    report["target_met"] = ratio >= TARGET_RATIO and report["toy_checks"]["student_4"]["passes"]
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (workdir / "distill_report.json").write_text(json.dumps(report, indent=2))
    log(f"{'sampler':<12} {'latent MSE vs 25-step teacher':>30} {'PSNR (dB)':>10}")
    for name, row in mean.items():
        log(f"{name:<12} {row['latent_mse']:>30.5f} {row['psnr_db']:>10.2f}")
    for name, checks in report["toy_checks"].items():
        log(f"toy checks, {name}: frame 0 PSNR {checks['frame0_psnr_db']:.1f} dB, direction agrees in "
            f"{checks['direction_agrees']:.0%}, size within 0.5-2x in {checks['size_within_0.5_2x']:.0%}, later frames "
            f"closer than repeating frame 0 in {checks['closer_than_repeat']:.0%}: {'pass' if checks['passes'] else 'FAIL'}")
    log(f"[done] in {report['seconds']:.0f}s: the 4-step student is {ratio:.1f}x closer than the 4-step teacher "
        f"(target {TARGET_RATIO:.0f}x). Report: {workdir / 'distill_report.json'}")
    return report


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/toy", help="the toy curriculum's folder (default runs/toy)")
    p.add_argument("--steps", type=int, default=300, help="distillation steps (default 300)")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    p.add_argument("--clips", type=int, default=16,
                   help="held-out clips to evaluate (default 16; on 4 the toy checks fail even for the 25-step teacher)")
    p.add_argument("--seed", type=int, default=23, help="seed of training and sampling (default 23)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--student", default=None,
                   help="measure this student checkpoint instead of training one (e.g. <workdir>/distill/checkpoints/last.ckpt)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a main.py override of the distillation run, after the script's own (repeatable), e.g. "
                        "--set model.params.target_decay=0.9")
    args = p.parse_args(argv)
    if args.steps < 1 or args.clips < 1:
        p.error("--steps and --clips must be at least 1")
    bad = [o for o in args.overrides if "=" not in o or o.startswith("=")]
    if bad:
        p.error(f"--set takes KEY=VALUE (a dotted config key, as main.py takes it); got {bad[0]!r}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        report = run(Path(args.workdir).resolve(), args.steps, args.lr, args.seed, args.clips, args.threads,
                     Path(args.student).resolve() if args.student else None, overrides=tuple(args.overrides))
    except DistillError as e:
        print(f"toy distillation FAILED: {e}", file=sys.stderr)
        return 1
    return 0 if report["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
