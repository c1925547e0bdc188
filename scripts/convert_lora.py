#!/usr/bin/env python
"""Convert a LoRA adapter file between our format and the names other tools use.

    # ours -> kohya names (lora_unet_*.lora_down/lora_up/alpha), what ComfyUI's "Load LoRA" node reads
    python scripts/convert_lora.py --to kohya --config configs/inference/svd_xt.yaml pan.safetensors pan_comfyui.safetensors
    # ours -> diffusers/peft names (unet.<diffusers layer>.lora_A/lora_B), for diffusers' UNet with peft
    python scripts/convert_lora.py --to diffusers --config configs/inference/svd_xt.yaml pan.safetensors pan_peft.safetensors
    # any of those (or a LoRA from a diffusers-based SVD trainer) -> ours
    python scripts/convert_lora.py --to sgm --config configs/inference/svd_xt.yaml their_lora.safetensors ours.safetensors

--config names the model the adapter is for: layer names are translated through its UNet, which is built on the
meta device (no weights, no memory). The sampler, the demo and VideoPipeline also read diffusers/peft and kohya
files directly (`--lora file.safetensors[:strength]`). Exit status 2 for usage errors. See docs/lora.md.
"""
import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

logger = logging.getLogger("convert_lora")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", required=True, choices=["kohya", "diffusers", "sgm"], help="the key names to write")
    p.add_argument("--config", required=True, help="the model config the adapter is for (e.g. configs/inference/svd_xt.yaml)")
    p.add_argument("source", help="the adapter file to read (.safetensors: ours, diffusers/peft or kohya names)")
    p.add_argument("target", help="the .safetensors file to write")
    return p


def meta_unet(config: str):
    """The config's UNet (model.params.network_config) on the meta device: its layer names, no weights."""
    import torch

    from sgm.models.loading import load_config
    from sgm.util import instantiate_from_config

    cfg = load_config(config)
    with torch.device("meta"):
        return instantiate_from_config(cfg.model.params.network_config)


def convert(to: str, config: str, source: str, target: str) -> int:
    """Write `source` with the names of `to` to `target`; returns the tensor count."""
    from sgm.lora.files import export_diffusers, export_kohya, read_lora, write_lora

    if not os.path.isfile(source):
        raise ValueError(f"LoRA file not found: {os.path.abspath(source)}")
    network = meta_unet(config)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    if to == "kohya":
        return export_kohya(source, target, network)
    if to == "diffusers":
        return export_diffusers(source, target, network)
    lora = read_lora(source, network)
    write_lora(lora, target)
    return len(lora.weights)


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        n = convert(args.to, args.config, args.source, args.target)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logger.info("wrote %s (%d tensors, %s names)", args.target, n, args.to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
