#!/usr/bin/env python
"""Convert SVD weights between the official single file (sgm layout) and a diffusers folder.

    # official file -> folder that diffusers.StableVideoDiffusionPipeline.from_pretrained loads
    python scripts/convert_weights.py --to diffusers --config configs/inference/svd_xt.yaml \\
        checkpoints/svd_xt.safetensors svd_xt_diffusers/
    # diffusers folder (e.g. a finetune from the Hub) -> one .safetensors in the official layout
    python scripts/convert_weights.py --to sgm svd_xt_diffusers/ checkpoints/my_finetune.safetensors

The sampler, the demo, VideoPipeline.load and training (model.params.ckpt_path) also take a diffusers
folder directly. Exit status 2 for usage errors. See docs/diffusers.md.
"""
import argparse
import logging
import os
import sys
from typing import List, Optional

logger = logging.getLogger("convert_weights")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", required=True, choices=["diffusers", "sgm"], help="the layout to write")
    p.add_argument("--config", default=None, help="our model config of the checkpoint (needed for --to diffusers)")
    p.add_argument("--num_frames", type=int, default=None,
                   help="the diffusers UNet's default frame count (default: the config's sampling.num_frames, else 25)")
    p.add_argument("source", help="--to diffusers: a .safetensors/.ckpt file; --to sgm: a diffusers folder")
    p.add_argument("target", help="--to diffusers: the folder to write; --to sgm: the .safetensors file to write")
    return p


def to_diffusers(args) -> None:
    from sgm.checkpoint import read_state_dict
    from sgm.interop import write_diffusers_folder
    from sgm.models.loading import load_config

    if args.config is None:
        raise ValueError("--to diffusers needs --config (e.g. configs/inference/svd_xt.yaml) to know the architecture")
    if not os.path.isfile(args.source):
        raise ValueError(f"{args.source} is not a file; --to diffusers converts a .safetensors or .ckpt checkpoint")
    cfg = load_config(args.config)
    num_frames = args.num_frames or (cfg.get("sampling") or {}).get("num_frames") or 25
    counts = write_diffusers_folder(read_state_dict(args.source), cfg.model, args.target, num_frames=num_frames)
    print(f"wrote {args.target}: " + ", ".join(f"{k} {v} tensors" for k, v in counts.items()))


def to_sgm(args) -> None:
    from safetensors.torch import save_file

    from sgm.interop import is_diffusers_folder, read_diffusers_folder

    if not is_diffusers_folder(args.source):
        raise ValueError(f"{args.source} is not a diffusers folder (no model_index.json); --to sgm converts a "
                         f"StableVideoDiffusionPipeline folder")
    if not args.target.endswith(".safetensors"):
        raise ValueError(f"the target must be a .safetensors file, got {args.target}")
    state_dict = read_diffusers_folder(args.source)
    os.makedirs(os.path.dirname(os.path.abspath(args.target)), exist_ok=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, args.target)
    print(f"wrote {args.target}: {len(state_dict)} tensors")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        (to_diffusers if args.to == "diffusers" else to_sgm)(args)
    except (ValueError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
