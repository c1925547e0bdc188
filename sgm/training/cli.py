"""The command line of main.py."""
import argparse
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py",
        description="Train a diffusion model (SVD) from YAML configs with PyTorch Lightning.",
        epilog="Example: python main.py --base configs/toy/svd_toy.yaml lightning.trainer.max_steps=20 --name toy",
    )
    p.add_argument("--base", "-b", nargs="*", default=[], metavar="CONFIG.yaml",
                   help="config files, merged left to right (later files override earlier ones)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides applied after the config files, e.g. model.base_learning_rate=1e-5")
    p.add_argument("--resume", "-r", default=None, metavar="RUN_DIR|CKPT",
                   help="continue a run: its directory (uses checkpoints/last.ckpt and configs/config.yaml) or a checkpoint file")
    p.add_argument("--name", "-n", default=None, help="run name (default: the first config's file name)")
    p.add_argument("--logdir", "-l", default="logs", help="where run directories are made (default: logs)")
    p.add_argument("--seed", "-s", type=int, default=23, help="global seed (default 23)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads per training process (default: $OMP_NUM_THREADS if set, else the usable CPUs "
                        "divided by the processes on this node, capped by the CPUs other work leaves idle)")
    p.add_argument("--dry-run", action="store_true",
                   help="build the model, data and trainer, print the resolved config and exit without training")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse argv; `KEY=VALUE` items given among or after the --base files count as overrides."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    found = [item for item in args.base if "=" in item] + list(args.overrides)
    overrides = []
    for item in argv:  # command-line order: a later override wins
        if item in found:
            found.remove(item)
            overrides.append(item)
    args.base = [item for item in args.base if "=" not in item]
    args.overrides = overrides
    for item in overrides:
        key = item.split("=", 1)[0]
        if not key or key.startswith("-"):
            parser.error(f"override {item!r} must look like dotted.key=value")
    if not args.base and not args.resume:
        parser.error("give at least one config with --base, or --resume a run")
    return args
