#!/usr/bin/env python
"""Toy proof of motion LoRAs: a LoRA trained on clips whose shapes all move one way makes the toy model's
sampled videos move that way, whatever the toy world's law says.

    python scripts/toy_curriculum.py --workdir runs/toy              # the toy model (its stage 3)
    python scripts/lora_toy_motion.py --toy_run runs/toy --direction right

The toy model of scripts/toy_curriculum.py moves each shape the way its colour says (sgm.data.synthetic
COLOUR_DIRECTIONS: red right, green left, blue down, yellow up). The adapter is to override that law.

1. Base weights: the EMA weights of the toy run's stage 3 (the ones its sampling uses), written to
   <workdir>/base_ema.safetensors, so that the adapter trains on the weights it is sampled with.
2. Data: synthetic shards as the curriculum's (32x32, 0.5 frame widths per second), but every shape, of any
   colour, moves `--direction`.
3. Training: `main.py --base <toy run>/stage3/configs/config.yaml configs/lora/toy_motion.yaml` (temporal
   adapters of rank 8; every network weight frozen).
4. Measurement: from the toy run's held-out first frames (<toy run>/inputs, shapes of the four colours), one
   video each with the adapter at strength 0 (the base model) and 1, with the same seed and the run's
   sampling settings. Per video the shape's displacement from the first to the last frame
   (sgm.data.synthetic_metrics.displacement, as in the toy report); reported: the mean displacement (dx, dy)
   in pixels, its cosine with the direction, the videos moving within 45 degrees of it (all, and those of the
   inputs whose colour moves them another way, from the toy run's report.json), and whether strength 0
   reproduced the base model's own videos bit for bit.

Writes <workdir>/report.json. Exit status 0 when, with the adapter, most videos move within 45 degrees of the
direction, more than with the base model, and the mean displacement points that way by at least 2 px
(a quarter of the toy clips' true 8 px); 1 otherwise.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MIN_PX = 2.0  # the toy clips move 8 px between the first and the fourth frame (0.5 frame widths/s at 6 fps, 32 px)
UNIT = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}  # y grows downwards
SIZE = (32, 32)  # (H, W) of the curriculum's clips
SPEED = 0.5      # their speed, in frame widths per second


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--toy_run", default="runs/toy", help="workdir of scripts/toy_curriculum.py (its stage3/ and inputs/)")
    p.add_argument("--workdir", default="runs/lora_toy", help="base weights, data, run and report go here")
    p.add_argument("--direction", choices=sorted(UNIT), default="right")
    p.add_argument("--steps", type=int, default=1000, help="LoRA training steps")
    p.add_argument("--batch_size", type=int, default=4, help="clips per training step")
    p.add_argument("--num_images", type=int, default=16, help="held-out first frames to sample from (at most those in inputs/)")
    p.add_argument("--num_steps", type=int, default=None, help="sampling steps (default: the toy run's sampling section)")
    p.add_argument("--seed", type=int, default=23, help="training and sampling seed")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: sgm.training.threads.default_threads)")
    p.add_argument("--skip_training", action="store_true", help="reuse the adapter already in --workdir")
    return p.parse_args(argv)


def toy_model(toy_run: Path) -> Tuple[Path, Path]:
    """(config, checkpoint) of the toy run's stage 3; a ValueError saying how to make them when missing."""
    config, ckpt = toy_run / "stage3" / "configs" / "config.yaml", toy_run / "stage3" / "checkpoints" / "last.ckpt"
    for path in (config, ckpt, toy_run / "inputs"):
        if not path.exists():
            raise ValueError(f"{path} not found: --toy_run must be the workdir of a finished toy curriculum "
                             f"(python scripts/toy_curriculum.py --workdir {toy_run})")
    return config, ckpt


def base_weights(config: Path, ckpt: Path, work: Path) -> Path:
    """The stage-3 run's EMA weights of the network (what its sampling uses) as one .safetensors."""
    from sgm.models.inflation import convert_checkpoint

    out = work / "base_ema.safetensors"
    convert_checkpoint(str(ckpt), str(config), str(out), "copy", ema=True)  # rewritten: --toy_run may have changed
    return out


def train(args, config: Path, base: Path, work: Path, threads: int) -> Path:
    from sgm.data.synthetic import COLOUR_DIRECTIONS, write_toy_video_shards

    shards = work / f"data_{args.direction}_seed{args.seed}"  # deterministic for a direction and seed: kept
    if not any(shards.glob("*.tar")):
        write_toy_video_shards(shards, num_shards=4, samples_per_shard=32, size=SIZE, seed=args.seed, duration=1.5,
                               direction=args.direction, speeds=(SPEED,), colours=list(COLOUR_DIRECTIONS))
    cmd = [sys.executable, str(REPO / "main.py"), "--base", str(config), str(REPO / "configs/lora/toy_motion.yaml"),
           f"model.params.ckpt_path={base}", f"data.params.train.shards={shards}",
           f"lightning.trainer.max_steps={args.steps}", f"data.params.batch_size={args.batch_size}",
           "lightning.trainer.enable_progress_bar=false", "--seed", str(args.seed), "--threads", str(threads),
           "--logdir", str(work / "logs"), "--name", f"lora_{args.direction}"]
    subprocess.run(cmd, check=True, cwd=REPO)
    return latest_adapter(work, args.direction)


def latest_adapter(work: Path, direction: str) -> Path:
    runs = sorted((work / "logs").glob(f"*_lora_{direction}"))
    if not runs or not (runs[-1] / "lora" / "last.safetensors").is_file():
        raise ValueError(f"no trained adapter under {work / 'logs'}; run without --skip_training first")
    return runs[-1] / "lora" / "last.safetensors"


def eval_images(toy_run: Path, n: int):
    """The toy run's held-out first frames (inputs/clip<k>.png, in k order)."""
    from PIL import Image

    paths = sorted((toy_run / "inputs").glob("clip*.png"), key=lambda p: int(p.stem[4:]))[:n]
    return [Image.open(p).convert("RGB") for p in paths]


def law_directions(toy_run: Path, n: int) -> List[Optional[Tuple[float, float]]]:
    """Per held-out input, the true displacement of its clip (the toy world's law: the direction its colour
    moves), from the toy run's report.json; None where the report does not have it."""
    report = toy_run / "report.json"
    samples = json.loads(report.read_text()).get("samples", []) if report.is_file() else []
    truth = [tuple(s["true_displacement"]) if "true_displacement" in s else None for s in samples[:n]]
    return truth + [None] * (n - len(truth))


def moves_along(move: Tuple[float, float], direction: str) -> bool:
    """The displacement points within 45 degrees of `direction`."""
    m, norm = np.array(move, np.float64), float(np.linalg.norm(move))
    return bool(np.isfinite(norm) and norm > 0 and (m @ np.array(UNIT[direction])) / norm > np.cos(np.pi / 4))


def summarize(moves: List[Tuple[float, float]], direction: str, law: List[Optional[Tuple[float, float]]]) -> Dict:
    """Figures of one strength. law: each input's true displacement (or None), to count separately the videos
    whose own law moves them another way: the ones the adapter has to turn."""
    u = np.array(UNIT[direction])
    found = np.array([m for m in moves if np.all(np.isfinite(m))]).reshape(-1, 2)
    mean = found.mean(0) if len(found) else np.zeros(2)
    along = [moves_along(m, direction) for m in moves]
    other_law = [a for a, t in zip(along, law) if t is not None and not moves_along(t, direction)]
    mean_norm = float(np.linalg.norm(mean))
    return {"videos": len(moves), "with_shape": int(len(found)),
            "mean_displacement_px": [round(float(v), 3) for v in mean],
            "mean_cosine_with_direction": round(float(mean @ u / mean_norm), 3) if mean_norm else 0.0,
            "moving_that_way": int(sum(along)),
            "share_moving_that_way": round(float(np.mean(along)) if along else 0.0, 3),
            "law_moves_another_way": len(other_law), "of_those_moving_that_way": int(sum(other_law)),
            "displacements": [[float(v) for v in m] for m in moves]}


def measure(args, config: Path, base: Path, adapter: Path, threads: int) -> Dict:
    import torch
    from omegaconf import OmegaConf

    from sgm.data.synthetic_metrics import displacement
    from sgm.inference import SamplingOptions, VideoPipeline

    torch.set_num_threads(threads)
    images = eval_images(Path(args.toy_run), args.num_images)
    law = law_directions(Path(args.toy_run), len(images))
    opts = SamplingOptions(seed=args.seed, num_steps=args.num_steps)  # the rest from the run's sampling section
    base_pipe = VideoPipeline.load(config=str(config), ckpt=str(base), device="cpu")
    base_videos = [base_pipe.generate(image, opts).frames for image in images]  # each (T, H, W, 3) uint8
    del base_pipe
    pipe = VideoPipeline.load(config=str(config), ckpt=str(base), device="cpu", lora=[(str(adapter), 0.0)],
                              merge_lora=False)
    name = pipe.info["lora"][0]["name"]
    report = {"sampling": {k: v for k, v in OmegaConf.to_container(OmegaConf.load(config).get("sampling", {})).items()
                           if k != "checkpoint"} | {"seed": args.seed, "num_steps_override": args.num_steps}}
    for strength in (0.0, 1.0):
        pipe.set_lora_strength(name, strength)
        videos = [pipe.generate(image, opts).frames for image in images]
        report[f"strength_{strength:g}"] = summarize([displacement(v[0], v[-1]) for v in videos], args.direction, law)
        if strength == 0.0:
            report["strength_0_equals_base_model"] = all(np.array_equal(a, b) for a, b in zip(videos, base_videos))
    return report


def main(argv=None) -> int:
    from sgm.training.threads import default_threads

    args = parse_args(argv)
    work = Path(args.workdir)
    try:
        config, ckpt = toy_model(Path(args.toy_run))
        reused = latest_adapter(work, args.direction) if args.skip_training else None  # before any work
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    threads = args.threads or default_threads(1)
    work.mkdir(parents=True, exist_ok=True)
    base = base_weights(config, ckpt, work)
    adapter = reused or train(args, config, base, work, threads)
    report = {"direction": args.direction, "toy_run": str(args.toy_run), "adapter": str(adapter),
              "adapter_steps": None if args.skip_training else args.steps, **measure(args, config, base, adapter, threads)}
    before, after = report["strength_0"], report["strength_1"]
    along = float(np.array(after["mean_displacement_px"]) @ np.array(UNIT[args.direction]))
    report["passed"] = bool(after["moving_that_way"] > after["videos"] / 2
                            and after["moving_that_way"] > before["moving_that_way"]
                            and after["mean_cosine_with_direction"] > np.cos(np.pi / 4) and along >= MIN_PX)
    (work / "report.json").write_text(json.dumps(report, indent=1))
    for key, label in (("strength_0", "base model (strength 0)"), ("strength_1", "with the adapter (strength 1)")):
        r = report[key]
        print(f"{label}: {r['moving_that_way']}/{r['videos']} videos move {args.direction} "
              f"({r['of_those_moving_that_way']} of the {r['law_moves_another_way']} whose colour moves them another way); "
              f"mean displacement {r['mean_displacement_px']} px (cosine with {args.direction} {r['mean_cosine_with_direction']})")
    print(f"strength 0 reproduces the base model's videos exactly: {report['strength_0_equals_base_model']}")
    print(f"{'PASSED' if report['passed'] else 'FAILED'}; report: {work / 'report.json'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
