#!/usr/bin/env python
"""Train a diffusion model (SVD) with PyTorch Lightning.

    python main.py --base configs/toy/svd_toy.yaml [more.yaml ...] [dotted.key=value ...] [--name NAME]
    python main.py --resume logs/<run>            # continue from logs/<run>/checkpoints/last.ckpt
    python main.py --base configs/svd_xt.yaml --dry-run   # print the resolved config and exit

See docs/training.md. The logic lives in sgm/training/.
"""
import logging
import sys

from sgm.training import run


def main() -> int:
    try:
        return run(sys.argv[1:])
    except FloatingPointError as e:
        logging.getLogger("main").error("training stopped: %s", e)
        return 1
    except (ValueError, FileNotFoundError) as e:
        logging.getLogger("main").error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
