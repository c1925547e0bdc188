#!/usr/bin/env python
"""Seconds per training step and peak memory of one DiffusionEngine training step, for any config.

Default: full-size SVD-XT (configs/svd_xt.yaml, random weights), 576x1024, 25 frames, batch 1, bf16
autocast, gradient checkpointing on, AdamW over all network parameters and the EMA update (when the
config keeps an EMA, as the stage-3 configs do; --no-ema leaves it out): the stage-3 finetuning step.

    python scripts/benchmark/train_step.py                       # on a GPU
    python scripts/benchmark/train_step.py --trainable temporal  # temporal layers only
    python scripts/benchmark/train_step.py --tiny                # the toy model on CPU (a smoke test)

Timing: `--warmup` untimed steps, then the median of `--steps` timed steps (CUDA synchronised).
Memory: torch.cuda.max_memory_allocated on GPU, the process's peak RSS on CPU. Prints one JSON line.
"""
import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from sgm.util import instantiate_from_config  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None,
                   help="training config (default configs/svd_xt.yaml; --tiny: configs/toy/svd_toy.yaml)")
    p.add_argument("--tiny", action="store_true", help="the toy model at 64x64, 4 frames, fp32 on CPU")
    p.add_argument("--frames", type=int, default=None, help="frames per video (default 25, tiny 4)")
    p.add_argument("--height", type=int, default=None, help="frame height (default 576, tiny 64)")
    p.add_argument("--width", type=int, default=None, help="frame width (default 1024, tiny 64)")
    p.add_argument("--batch", type=int, default=1, help="videos per step (default 1)")
    p.add_argument("--precision", choices=sorted(DTYPES), default=None, help="autocast dtype (default bf16; tiny fp32)")
    p.add_argument("--no-checkpointing", action="store_true", help="turn gradient checkpointing (use_checkpoint) off")
    p.add_argument("--no-ema", action="store_true", help="leave out the EMA of the network (model.params.use_ema)")
    p.add_argument("--trainable", default="all", help='trainable_parameters: "all", "temporal" or a regex')
    p.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--device", default=None, help="default cuda if available, else cpu")
    return p.parse_args(argv)


def synthetic_batch(b: int, t: int, h: int, w: int, device) -> dict:
    """A training batch with the keys of the data contract (random frames)."""
    frames = torch.rand(b, t, 3, h, w, device=device) * 2 - 1
    cond_aug = torch.full((b,), 0.02, device=device)
    return {"frames": frames, "cond_frames_without_noise": frames[:, 0],
            "cond_frames": frames[:, 0] + 0.02 * torch.randn_like(frames[:, 0]), "cond_aug": cond_aug,
            "fps_id": torch.full((b,), 5, device=device), "motion_bucket_id": torch.full((b,), 127, device=device),
            "txt": [""] * b, "num_video_frames": torch.full((b,), t, device=device)}


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = args.config or str(REPO / ("configs/toy/svd_toy.yaml" if args.tiny else "configs/svd_xt.yaml"))
    t = args.frames or (4 if args.tiny else 25)
    h, w = args.height or (64 if args.tiny else 576), args.width or (64 if args.tiny else 1024)
    precision = args.precision or ("fp32" if args.tiny else "bf16")
    cfg = OmegaConf.load(config).model
    cfg.params.ckpt_path = None  # random weights: same compute and memory as the real ones
    cfg.params.use_ema = bool(cfg.params.get("use_ema", False)) and not args.no_ema
    cfg.params.scheduler_config = None
    cfg.params.trainable_parameters = args.trainable
    cfg.params.network_config.params.use_checkpoint = not args.no_checkpointing
    for guider in [cfg.params.get("sampler_config", {}).get("params", {}).get("guider_config", {})]:
        if "num_frames" in guider.get("params", {}):
            guider.params.num_frames = t
    with torch.device(device):
        model = instantiate_from_config(cfg)
    model.train()
    model.learning_rate = 1e-5
    opt = model.configure_optimizers()
    batch = synthetic_batch(args.batch, t, h, w, device)
    dtype = DTYPES[precision]

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss, _ = model.shared_step(dict(batch))
        loss.backward()
        opt.step()
        model.update_ema()  # as DiffusionEngine.optimizer_step does in training
        opt.zero_grad(set_to_none=True)
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated() / 2**30, "cuda_max_allocated_gib"
    else:
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "cpu_peak_rss_gib"
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(json.dumps({
        "config": str(Path(config).relative_to(REPO) if Path(config).is_absolute() else config),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "frames": t, "height": h, "width": w, "batch": args.batch, "precision": precision,
        "checkpointing": not args.no_checkpointing, "ema": model.use_ema, "trainable": args.trainable,
        "trainable_params_m": round(n_train / 1e6, 1),
        "sec_per_step_median": round(statistics.median(times), 4), "sec_per_step_all": [round(x, 4) for x in times],
        peak_kind: round(peak, 2), "loss": loss.item(),
    }))


if __name__ == "__main__":
    main()
