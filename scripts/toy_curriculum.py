#!/usr/bin/env python
"""The SVD training curriculum in miniature, on CPU, in a few minutes, with no downloads; it checks itself.

    python scripts/toy_curriculum.py [--workdir runs/toy] [--ae-steps N] [--steps N] [--i2v-steps N]

1. Data: synthetic webdataset shards (sgm.data.synthetic) of 32x32 shapes: still images, and 4-frame clips whose
   shape moves at 0.5 frame widths/s in the direction its colour dictates (COLOUR_DIRECTIONS), so the motion can
   be predicted from the first frame. Training and held-out shards come from different seeds.
2. Stage 0, the autoencoder (configs/curriculum/toy/stage0_autoencoder.yaml), trained from scratch on the images.
   Its latents' 1/std becomes the scale_factor of the later stages, which keep it frozen.
3. Stage 1, text-to-image (configs/curriculum/toy/stage1_image.yaml), from a seeded random UNet.
4. Stage 2, text-to-video (configs/curriculum/toy/stage2_video_pretrain.yaml), stage 1 inflated with
   sgm.models.inflation.inflate_image_unet.
5. Stage 3, image-to-video (configs/curriculum/toy/stage3_image_to_video.yaml), stage 2 adapted with
   sgm.models.inflation.adapt_t2v_to_i2v; its video decoder starts as the stage-0 decoder (temporal layers
   as identities). Every stage is main.py's training run (sgm.training.run, in this process) in <workdir>/stageN.
6. Loss check per stage: the loss on a fixed held-out batch (fixed noise) must fall from the stage's start.
7. Videos sampled with scripts/sampling/simple_video_sample.py from the first frames of held-out clips:
   <workdir>/samples/clipK.mp4 (+ clipK_input.png) and a contact sheet clipK_contact.png (sampled frames above
   the true clip's frames).
8. <workdir>/report.json: the autoencoder's round-trip PSNR on held-out frames, each sample's frame-0 PSNR
   against its conditioning frame, its motion against the true clip (sgm.data.synthetic_metrics), the targets
   and whether they are met, and the seconds per stage.

Exit status 0 when every stage's loss fell and the videos were written (the targets are reported, not
enforced), 1 otherwise. See docs/curriculum.md.
"""
import argparse
import contextlib
import csv
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AE_CONFIG = "configs/curriculum/toy/stage0_autoencoder.yaml"
STAGES = [
    # name, config, adapter from the previous stage (None: seeded random init), batch kind
    ("stage1", "configs/curriculum/toy/stage1_image.yaml", None, "images"),
    ("stage2", "configs/curriculum/toy/stage2_video_pretrain.yaml", "inflate", "videos"),
    ("stage3", "configs/curriculum/toy/stage3_image_to_video.yaml", "i2v", "videos"),
]
SIZE = (32, 32)          # (H, W) of images and clips
SPEED = 0.5              # frame widths per second of every toy clip (motion bucket 64)
FPS = 6                  # frame rate the clips are sampled at (fps_id 5)
NUM_FRAMES = 4
EVAL_CLIPS = 16          # held-out clips (one shard); --clips samples up to this many
EVAL_REPEATS = 4         # noise draws per evaluation item (the same draws before and after a stage)
TARGETS = {"autoencoder_psnr_db": 26.0, "frame0_psnr_db": 22.0}


class CurriculumError(RuntimeError):
    """A stage failed; the message says which and why."""


# ------------------------------------------------------------------------------------------ data
def make_data(data_dir: Path, seed: int) -> Dict[str, Path]:
    """Training and held-out shards (kept if already there: the writers are deterministic)."""
    from sgm.data.synthetic import write_toy_image_shards, write_toy_video_shards

    def videos(n_shards: int, per_shard: int, data_seed: int, prefix: str):
        return lambda d: write_toy_video_shards(d, num_shards=n_shards, samples_per_shard=per_shard, size=SIZE,
                                                seed=data_seed, duration=1.5, speeds=(SPEED,),
                                                direction_by_colour=True, prefix=prefix)

    jobs = {
        "images": lambda d: write_toy_image_shards(d, num_shards=4, samples_per_shard=64, size=SIZE, seed=seed),
        "videos": videos(4, 32, seed, "toy-video"),
        "eval_images": lambda d: write_toy_image_shards(d, num_shards=1, samples_per_shard=32, size=SIZE,
                                                         seed=seed + 1000, prefix="toy-image-eval"),
        "eval_videos": videos(1, EVAL_CLIPS, seed + 1000, "toy-video-eval"),
    }
    dirs = {name: data_dir / name for name in jobs}
    for name, path in dirs.items():
        if not any(path.glob("*.tar")):
            jobs[name](path)
    return dirs


def eval_batch(kind: str, shards: Path, data_cfg, batch_size: int) -> dict:
    """One fixed batch of held-out shards, decoded with the stage's data settings (clips from their start)."""
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
    cfg.params.batch_size = batch_size
    cfg.params.num_workers = 0
    return next(iter(instantiate_from_config(cfg).train_dataloader()))


def to_uint8(x):
    """[-1, 1] tensors (..., 3, H, W) -> uint8 numpy (..., H, W, 3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().movedim(-3, -1).numpy()


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


def autoencoder_psnr(ae, frames) -> float:
    """Mean PSNR (dB) of the autoencoder's round trip (posterior mean) over frames (N, 3, H, W) in [-1, 1]."""
    import torch

    from sgm.data.synthetic_metrics import psnr

    with torch.no_grad():
        z = ae.encode(frames, unregularized=True)[0][:, : ae.decoder.conv_in.in_channels]  # the mean half
        rec = ae.decode(z)
    return float(sum(psnr(a, b) for a, b in zip(to_uint8(rec), to_uint8(frames))) / len(frames))


# ---------------------------------------------------------------------------------------- stages
@contextlib.contextmanager
def logged_to(path: Path):
    """Send what a stage prints and logs (Lightning included) to `path` instead of the console."""
    names = ["", "pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"]
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg, lg.handlers[:], lg.propagate) for lg in loggers]
    with open(path, "w") as out:
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for lg in loggers:
            lg.handlers = [handler] if lg.name == "root" else []
            lg.propagate = True
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                yield
        finally:
            for lg, handlers, propagate in saved:
                lg.handlers, lg.propagate = handlers, propagate


def train(name: str, config: str, run_dir: Path, overrides: List[str], seed: int) -> Path:
    """main.py's training run (sgm.training.run) for one stage in `run_dir`; returns its last checkpoint."""
    from sgm.training import run as main_py

    if run_dir.exists():
        shutil.rmtree(run_dir)
    log_path = run_dir.parent / f"{name}.log"
    import torch

    # The thread count the curriculum chose at its start: main.py's own default looks at the CPUs busy now,
    # which by now include this very process, and would fall back to one thread on a 2-core machine.
    argv = ["--base", str(REPO / config), *overrides, "lightning.trainer.enable_progress_bar=false", "--seed", str(seed),
            "--threads", str(torch.get_num_threads())]
    previous = os.environ.get("SGM_RUN_DIR")
    os.environ["SGM_RUN_DIR"] = str(run_dir)
    try:
        with logged_to(log_path):
            code = main_py(argv)
    except Exception as e:  # noqa: BLE001 - reported with the log's place
        raise CurriculumError(f"{name}: training failed ({type(e).__name__}: {e}); log {log_path}") from e
    finally:
        if previous is None:
            os.environ.pop("SGM_RUN_DIR", None)
        else:
            os.environ["SGM_RUN_DIR"] = previous
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if code != 0 or not ckpt.is_file():
        raise CurriculumError(f"{name}: training exited with {code} and checkpoint {ckpt} "
                              f"{'exists' if ckpt.is_file() else 'missing'}; log {log_path}")
    return ckpt


def build_engine(config_path: str, ckpt: Optional[str] = None, scale_factor: Optional[float] = None):
    """The model of a config (ckpt_path ignored), with `ckpt` loaded (or its own init if None)."""
    from omegaconf import OmegaConf

    from sgm.models.inflation import without_ckpt_path
    from sgm.util import instantiate_from_config

    cfg = without_ckpt_path(OmegaConf.load(REPO / config_path))  # the model section
    if scale_factor is not None:
        cfg.params.scale_factor = scale_factor
    engine = instantiate_from_config(cfg)
    if ckpt is not None:
        from sgm.checkpoint import load_checkpoint

        load_checkpoint(engine, ckpt)
    return engine.eval()


def train_autoencoder(workdir: Path, data: Dict[str, Path], steps: int, seed: int, log) -> dict:
    """Stage 0; returns its report entry (checkpoint, held-out PSNR, scale_factor)."""
    import torch

    from sgm.checkpoint import read_state_dict
    from sgm.models.autoencoder import trained_weights

    ckpt = train("stage0", AE_CONFIG, workdir / "stage0",
                 [f"data.params.train.shards={data['images']}", f"lightning.trainer.max_steps={steps}"], seed)
    weights = trained_weights(read_state_dict(str(ckpt)), ema=True)
    out = workdir / "stage0_autoencoder.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in weights.items()}, str(out))
    ae = build_engine(AE_CONFIG, str(out))
    from omegaconf import OmegaConf

    ae_data = OmegaConf.load(REPO / AE_CONFIG).data
    images = eval_batch("images", data["eval_images"], ae_data, 32)["jpg"]
    clips = eval_batch("videos", data["eval_videos"], OmegaConf.load(REPO / STAGES[2][1]).data, 16)["frames"]
    train_images = eval_batch("images", data["images"], ae_data, 64)["jpg"]
    with torch.no_grad():
        std = float(ae.encode(train_images, unregularized=True)[0][:, :4].std())
    entry = {"config": AE_CONFIG, "checkpoint": str(ckpt), "weights": str(out), "steps": steps,
             "heldout_image_psnr_db": autoencoder_psnr(ae, images),
             "heldout_video_frame_psnr_db": autoencoder_psnr(ae, clips.flatten(0, 1)),
             "latent_std": std, "scale_factor": 1.0 / std}
    log(f"  held-out round trip: {entry['heldout_video_frame_psnr_db']:.1f} dB on clip frames, "
        f"{entry['heldout_image_psnr_db']:.1f} dB on images; latent std {std:.3f} -> scale_factor {1 / std:.4f}")
    return entry


def initial_checkpoint(stage: tuple, previous_ckpt: Optional[Path], ae_weights: Path, scale_factor: float,
                       out: Path, seed: int):
    """Write the stage's starting weights; return (path, engine holding them)."""
    import torch
    from safetensors.torch import save_file

    from sgm.checkpoint import read_state_dict
    from sgm.models.inflation import convert_state
    from sgm.modules.autoencoding.temporal_ae import VideoDecoder, init_temporal_as_identity_

    name, config, adapter, _ = stage
    torch.manual_seed(seed)
    engine = build_engine(config, scale_factor=scale_factor)
    if adapter is None:  # stage 1: a random UNet over the stage-0 autoencoder
        ae = {f"first_stage_model.{k}": v for k, v in read_state_dict(str(ae_weights)).items()}
        engine.load_state_dict(ae, strict=False)
    else:
        convert_state(read_state_dict(str(previous_ckpt)), engine, adapter)
    decoder = engine.first_stage_model.decoder
    if isinstance(decoder, VideoDecoder):
        init_temporal_as_identity_(decoder)  # decode as the stage-0 image decoder did
    save_file({k: v.detach().clone().contiguous() for k, v in engine.state_dict().items()}, str(out))
    return out, engine


def unet_stage(stage: tuple, workdir: Path, data: Dict[str, Path], previous: Optional[Path], ae: dict, steps: int,
               seed: int, log) -> dict:
    from omegaconf import OmegaConf

    name, config, adapter, kind = stage
    init, engine = initial_checkpoint(stage, previous, Path(ae["weights"]), ae["scale_factor"],
                                      workdir / f"{name}_init.safetensors", seed)
    batch = eval_batch(kind, data[f"eval_{kind}"], OmegaConf.load(REPO / config).data, 8 if kind == "images" else 4)
    before = eval_loss(engine, batch)
    del engine
    overrides = [f"model.params.ckpt_path={init}", f"model.params.scale_factor={ae['scale_factor']}",
                 f"data.params.train.shards={data[kind]}", f"lightning.trainer.max_steps={steps}"]
    if name == "stage3":
        overrides.append(f"lightning.callbacks.video_logger.params.every_n_steps={steps}")  # one grid, at the end
    ckpt = train(name, config, workdir / name, overrides, seed)
    after = eval_loss(build_engine(config, str(ckpt), ae["scale_factor"]), batch)
    first, last = first_last(training_losses(workdir / name / "csv" / "metrics.csv"))
    fell = after < before
    log(f"  eval loss {before:.4f} -> {after:.4f} ({'fell' if fell else 'DID NOT FALL'}); "
        f"training loss, first vs last quarter of the log: {first:.4f} -> {last:.4f}")
    if not fell:
        raise CurriculumError(f"{name}: the loss did not fall (evaluation loss {before:.4f} -> {after:.4f}); "
                              f"train longer or see {workdir / (name + '.log')}")
    return {"config": config, "checkpoint": str(ckpt), "steps": steps, "eval_loss_start": before,
            "eval_loss_end": after, "train_loss_first_quarter": first, "train_loss_last_quarter": last,
            "loss_fell": fell}


# -------------------------------------------------------------------------------------- sampling
def sample_videos(workdir: Path, data: Dict[str, Path], ckpt: Path, clips: int, seed: int) -> List[dict]:
    """Sample a video from the first frame of each of `clips` held-out clips with the sampling script, and
    compare it with the true clip; writes the inputs, samples and contact sheets."""
    from omegaconf import OmegaConf
    from PIL import Image

    from sgm.data.motion import motion_bucket_from_score
    from sgm.data.synthetic_metrics import contact_sheet, motion_report

    truth = to_uint8(eval_batch("videos", data["eval_videos"], OmegaConf.load(REPO / STAGES[2][1]).data,
                                clips)["frames"])  # (N, T, H, W, 3)
    inputs, samples = workdir / "inputs", workdir / "samples"
    for folder in (inputs, samples):
        if folder.exists():
            shutil.rmtree(folder)  # no stale video from an earlier run
    inputs.mkdir(parents=True)
    for k, clip in enumerate(truth):
        Image.fromarray(clip[0]).save(inputs / f"clip{k}.png")
    script = _load_sampling_script()
    argv = ["--config", str(workdir / "stage3" / "configs" / "config.yaml"), "--ckpt", str(ckpt),
            "--input_path", str(inputs), "--output_folder", str(samples), "--device", "cpu",
            "--num_frames", str(NUM_FRAMES), "--fps_id", str(FPS - 1),
            "--motion_bucket_id", str(motion_bucket_from_score(SPEED)), "--seed", str(seed), "--format", "mp4"]
    with logged_to(workdir / "sample.log"):
        code = script.main(argv)
    if code != 0:
        raise CurriculumError(f"sampling failed (exit {code}); see {workdir / 'sample.log'}")
    results = []
    for k, clip in enumerate(truth):
        video = samples / f"clip{k}.mp4"
        if not video.is_file():
            raise CurriculumError(f"sampling wrote no {video}; see {workdir / 'sample.log'}")
        sampled = read_mp4(video)
        sheet = samples / f"clip{k}_contact.png"
        Image.fromarray(contact_sheet([sampled, clip])).save(sheet)
        results.append({"video": str(video), "contact_sheet": str(sheet), **motion_report(sampled, clip)})
    return results


def read_mp4(path: Path):
    """The RGB frames (T, H, W, 3) uint8 of a video file."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _load_sampling_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("simple_video_sample", REPO / "scripts" / "sampling" / "simple_video_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summarize(report: dict) -> dict:
    """The headline figures and whether they meet the targets."""
    samples = report["samples"]
    n = len(samples)
    moving = [s for s in samples if s["true_displacement"] != [0.0, 0.0]]
    summary = {
        "autoencoder_psnr_db": report["stage0"]["heldout_video_frame_psnr_db"],
        "frame0_psnr_db": sum(s["frame0_psnr_db"] for s in samples) / n,
        "direction_agrees": f"{sum(s['direction_agrees'] for s in moving)}/{len(moving)}",
        "size_within_0.5_2x": f"{sum(s['size_within_0.5_2x'] for s in moving)}/{len(moving)}",
        "later_frames_closer_than_repeating_frame0": f"{sum(s['closer_than_repeat'] for s in samples)}/{n}",
    }
    summary["targets"] = {
        "autoencoder_psnr_db >= 26": summary["autoencoder_psnr_db"] >= TARGETS["autoencoder_psnr_db"],
        "frame0_psnr_db >= 22": summary["frame0_psnr_db"] >= TARGETS["frame0_psnr_db"],
        "direction agrees in most clips": 2 * sum(s["direction_agrees"] for s in moving) > len(moving),
        "size within 0.5-2x in most clips": 2 * sum(s["size_within_0.5_2x"] for s in moving) > len(moving),
    }
    return summary


# ------------------------------------------------------------------------------------------- main
def run(workdir: Path, ae_steps: int, steps: int, i2v_steps: int, seed: int, threads: int, clips: int = 4,
        log=print) -> dict:
    import torch

    torch.set_num_threads(threads)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)  # the stages' INFO goes to their logs (see logged_to)
    logging.getLogger().addHandler(console)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report = {"workdir": str(workdir), "threads": threads, "load_average_at_start": os.getloadavg()[0],
              "seconds": {}, "cpu_seconds": {}, "stages": {}}

    @contextlib.contextmanager
    def timed(name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        report["seconds"][name] = round(time.perf_counter() - wall, 1)
        report["cpu_seconds"][name] = round(time.process_time() - cpu, 1)
        log(f"  [{name}: {report['seconds'][name]:.0f} s]")

    log(f"[data] synthetic shards in {workdir / 'data'} (torch threads: {threads})")
    with timed("data"):
        data = make_data(workdir / "data", seed)
    log(f"[stage0] {AE_CONFIG} (autoencoder from scratch, {ae_steps} steps)")
    with timed("stage0"):
        report["stage0"] = train_autoencoder(workdir, data, ae_steps, seed, log)
    previous = None
    for stage in STAGES:
        name, config, adapter, _ = stage
        n = i2v_steps if name == "stage3" else steps
        log(f"[{name}] {config}" + (f" (from {previous.parent.parent.name}, adapter {adapter}" if previous else
                                     " (random UNet") + f", {n} steps)")
        with timed(name):
            report["stages"][name] = unet_stage(stage, workdir, data, previous, report["stage0"], n, seed, log)
        previous = Path(report["stages"][name]["checkpoint"])
    log(f"[sample] image-to-video from the first frames of {clips} held-out clips")
    with timed("sample"):
        report["samples"] = sample_videos(workdir, data, previous, clips, seed)
    report["summary"] = summarize(report)
    report["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    report["cpu_seconds"]["total"] = round(sum(report["cpu_seconds"].values()), 1)
    (workdir / "report.json").write_text(json.dumps(report, indent=2))
    s = report["summary"]
    log(f"[done] in {report['seconds']['total']:.0f} s. Held-out figures (targets in brackets):")
    log(f"  autoencoder round trip {s['autoencoder_psnr_db']:.1f} dB (>= 26); sampled frame 0 vs conditioning frame "
        f"{s['frame0_psnr_db']:.1f} dB (>= 22); direction agrees {s['direction_agrees']}, size within 0.5-2x "
        f"{s['size_within_0.5_2x']}; later frames closer than repeating frame 0: "
        f"{s['later_frames_closer_than_repeating_frame0']}")
    log(f"  videos and contact sheets: {workdir / 'samples'}; report: {workdir / 'report.json'}")
    return report


def default_threads() -> int:
    """sgm.training.threads.default_threads for one process (the usable cores that are idle now), at most 4.
    On a busy machine extra threads only wait for each other: on our 2-core machine at load 12, an
    autoencoder step took about 13 s with 2 threads and 2 s with 1."""
    from sgm.training.threads import default_threads as idle_threads

    return min(idle_threads(1), 4)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/toy", help="where data, runs, checkpoints and videos go (default runs/toy)")
    p.add_argument("--ae-steps", type=int, default=800, help="autoencoder (stage 0) training steps (default 800)")
    p.add_argument("--steps", type=int, default=40, help="training steps of stages 1 and 2 (default 40)")
    p.add_argument("--i2v-steps", type=int, default=700, help="training steps of stage 3, image-to-video (default 700)")
    p.add_argument("--clips", type=int, default=16,
                   help="held-out clips to sample and measure (default 16, all of the held-out shard)")
    p.add_argument("--seed", type=int, default=23, help="seed of data, initialisation and training (default 23)")
    threads = default_threads()
    p.add_argument("--threads", type=int, default=threads,
                   help=f"torch threads (default: the CPU cores idle now, 1 to 4; here {threads})")
    args = p.parse_args(argv)
    for flag in ("ae_steps", "steps", "i2v_steps", "clips", "threads"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.clips > EVAL_CLIPS:
        p.error(f"--clips must be at most {EVAL_CLIPS}, the clips in the held-out shard")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir).resolve()
    try:
        run(workdir, args.ae_steps, args.steps, args.i2v_steps, args.seed, args.threads, args.clips)
    except CurriculumError as e:
        print(f"toy curriculum FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
