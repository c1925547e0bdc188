#!/usr/bin/env python
"""Our engine against diffusers' StableVideoDiffusionPipeline, side by side in one run.

Both are built with random weights from the same architecture: SVD-XT's published configs (UNet
320/640/1280/1280 channels, 64-wide heads, the temporal VAE with 128/256/512/512 channels, the
ViT-H/14 image encoder), shrunk identically by the flags below for a CPU run: ours from
configs/inference/svd_xt.yaml, diffusers' components from the configs sgm.interop derives from it.

    # CPU, small (about a minute on 2 cores):
    python scripts/benchmark/svd_vs_diffusers.py --size tiny
    # GPU, the real thing: SVD-XT, 25 frames at 576x1024, 25 steps, fp16
    python scripts/benchmark/svd_vs_diffusers.py --size full --device cuda --dtype fp16
    # CPU, one full-size guided UNet forward (2 x 4 frames, 16x16 latent): ours eager and compiled,
    # diffusers eager and compiled, in turn within each round
    python scripts/benchmark/svd_vs_diffusers.py --unet_only --size full --frames 4 --height 128 --width 128 --compile
    # the CPU setting that beats eager: max-autotune with frozen weights (diffusers' UNet then stays eager)
    python scripts/benchmark/svd_vs_diffusers.py --unet_only --size full --frames 4 --height 128 --width 128 \
        --compile --compile_mode max-autotune --compile_freezing --threads 1

Printed per engine: median seconds per sampling step (one guided UNet evaluation on 2 x T
frames), seconds to decode the T latents (decoding_t frames per decoder call), peak memory of
sampling and of decoding above the loaded weights (CUDA: max allocated; CPU: resident set size
sampled every 2 ms, glibc set to return freed memory), the weights' size and parameter counts; then the ratios ours/theirs.
Both engines are built in one process and run alternately, one warm-up round then --repeats
rounds, so that a busy machine slows both alike; medians over the rounds (peaks: maxima).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make `scripts.benchmark` importable
    sys.path.insert(0, str(REPO))
SIZES = {
    # unet_channels, head_dim, vae_channels, clip width/layers/head width/patch, context dim; UNet levels
    # (SVD: 4, attention on all but the last) and res blocks per level (SVD: 2)
    "full": dict(levels=4, res_blocks=2, unet_channels=320, head_dim=64, vae_channels=128, clip_width=1280, clip_layers=32,
                 clip_head_width=80, clip_patch=14, context_dim=1024, frames=25, height=576, width=1024, steps=25, decoding_t=14),
    "tiny": dict(levels=4, res_blocks=2, unet_channels=64, head_dim=32, vae_channels=32, clip_width=64, clip_layers=2, clip_head_width=32,
                 clip_patch=32, context_dim=64, frames=8, height=128, width=192, steps=4, decoding_t=4),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="tiny", help="preset; the flags below override it")
    for key in SIZES["full"]:
        p.add_argument(f"--{key}", type=int, default=None)
    p.add_argument("--decoding_overlap", type=int, default=0,
                   help="our decoding overlap (0 = the same chunks as diffusers' decode_chunk_size)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--engines", default="ours,diffusers")
    p.add_argument("--json", default=None, help="also write all measurements here")
    p.add_argument("--unet_only", action="store_true",
                   help="time one guided UNet forward (2 x frames) instead of sampling and decoding; diffusers' UNet "
                        "shares our weights' storage (scripts/benchmark/unet_forward.py), so one model is in memory")
    p.add_argument("--compile", action="store_true", help="with --unet_only: add both UNets compiled to the same run")
    p.add_argument("--compile_mode", default=None, help="torch.compile mode (default: inductor's default)")
    p.add_argument("--compile_freezing", action="store_true",
                   help="with --compile: inductor freezing (weights folded in and prepacked; the CPU setting, with "
                        "--compile_mode max-autotune). Diffusers' UNet is then not compiled: a frozen copy of its weights "
                        "would be a third full copy in memory")
    p.add_argument("--compile_backend", default="inductor", help="torch.compile backend ('eager': trace only, for tests)")
    p.add_argument("--ablate_single_token", action="store_true",
                   help="with --unet_only: also time ours without the single-context-token attention path")
    args = p.parse_args(argv)
    for key, value in SIZES[args.size].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.unet_channels % args.head_dim or args.unet_channels % 32 or args.vae_channels % 32:
        p.error("unet_channels must be a multiple of head_dim and of 32; vae_channels a multiple of 32 (GroupNorm)")
    return args


# ------------------------------------------------------------------------------------------ builders
def our_config(a):
    """SVD-XT's config with the sizes of `a`."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "configs" / "inference" / "svd_xt.yaml")
    net = cfg.model.params.network_config.params
    net.model_channels, net.num_head_channels, net.context_dim = a.unet_channels, a.head_dim, a.context_dim
    net.use_checkpoint = False
    net.channel_mult, net.num_res_blocks = [1, 2, 4, 4][:a.levels], a.res_blocks
    net.attention_resolutions = [2**i for i in range(a.levels - 1)]  # SVD: [1, 2, 4], no attention on the last level
    clip = cfg.model.params.conditioner_config.params.emb_models[0].params.open_clip_embedding_config.params
    if a.clip_width != 1280 or a.clip_layers != 32 or a.clip_patch != 14 or a.context_dim != 1024:
        arch = {"embed_dim": a.context_dim, "vision_cfg": {"image_size": 224, "layers": a.clip_layers, "width": a.clip_width,
                                                           "head_width": a.clip_head_width, "patch_size": a.clip_patch},
                "text_cfg": {"context_length": 77, "vocab_size": 1000, "width": 32, "heads": 1, "layers": 1}}
        path = Path(tempfile.mkdtemp()) / f"bench_clip_{a.clip_width}_{a.clip_layers}.json"
        path.write_text(json.dumps(arch))
        clip.arch = str(path)
    cfg.model.params.conditioner_config.params.emb_models[3].params.encoder_config.params.ddconfig.ch = a.vae_channels
    cfg.model.params.first_stage_config.params.encoder_config.params.ch = a.vae_channels
    cfg.model.params.first_stage_config.params.decoder_config.params.ch = a.vae_channels
    cfg.sampling.update(num_frames=a.frames, num_steps=a.steps, height=a.height, width=a.width, decoding_t=a.decoding_t)
    return cfg


def diffusers_pipeline(a, device, dtype):
    """StableVideoDiffusionPipeline with random weights, each component configured from our config of the
    same size (sgm.interop.diffusers_configs, the configs the weight converter writes)."""
    import diffusers
    import torch
    import transformers

    from sgm.interop.diffusers_configs import (clip_vision_kwargs, feature_extractor_config, scheduler_config,
                                               unet_config, vae_config)

    model_cfg = our_config(a).model
    vae_cfg = vae_config(model_cfg)
    pipe = diffusers.StableVideoDiffusionPipeline(
        vae=getattr(diffusers, vae_cfg["_class_name"]).from_config(vae_cfg),
        image_encoder=transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**clip_vision_kwargs(model_cfg))),
        unet=diffusers.UNetSpatioTemporalConditionModel.from_config(unet_config(model_cfg, a.frames)),
        scheduler=diffusers.EulerDiscreteScheduler.from_config(scheduler_config(model_cfg)),
        feature_extractor=transformers.CLIPImageProcessor.from_dict(feature_extractor_config()))
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device)
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)  # (diffusers warns about casting fp32 to fp32)


# ------------------------------------------------------------------------------------------ measuring
def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def return_freed_memory_to_the_os() -> None:
    """Make glibc serve every allocation above 64 KiB with its own mapping and unmap it when freed,
    so the resident set size follows the live tensors and a phase's peak can be read from it."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 16)
    libc.mallopt(m_trim_threshold, 1 << 16)


class Meter:
    """Step timestamps and the peak memory of one phase above its start (CUDA: allocated memory;
    CPU: the resident set size, sampled every 2 ms by a thread)."""

    def __init__(self, device):
        import torch

        self.torch, self.cuda = torch, device.type == "cuda"
        self.stamps, self._peak, self._running = [], 0.0, False

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def _sample(self):
        while self._running:
            self._peak = max(self._peak, _rss_mib())
            time.sleep(0.002)

    def start(self):
        import threading

        self.sync()
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()
            self._base = self.torch.cuda.memory_allocated() / 2**20
        else:
            self._base = self._peak = _rss_mib()
            self._running = True
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self.stamps = [time.perf_counter()]

    def stamp(self):
        self.sync()
        self.stamps.append(time.perf_counter())

    def stop(self) -> float:
        """Peak MiB above the start of the phase."""
        self.sync()
        if self.cuda:
            return self.torch.cuda.max_memory_allocated() / 2**20 - self._base
        self._running = False
        self._thread.join()
        return max(self._peak, _rss_mib()) - self._base

    def step_seconds(self):
        deltas = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        return statistics.median(deltas[1:] if len(deltas) > 1 else deltas)  # the first includes conditioning


def build_engines(a, device, dtype, names):
    """{name: (sample(steps, meter) -> latents, decode(latents), weights in MiB)}."""
    import numpy as np
    import torch
    from PIL import Image

    image = Image.fromarray((np.random.default_rng(0).random((a.height, a.width, 3)) * 255).astype(np.uint8))
    engines = {}
    if "ours" in names:
        from sgm.inference import SamplingOptions, VideoPipeline

        pipe = VideoPipeline.load(config=our_config(a), device=device, dtype=a.dtype, random_weights=True)
        opts = SamplingOptions(seed=0, decoding_overlap=a.decoding_overlap, min_cfg=1.0, max_cfg=3.0)

        def sample_ours(steps, meter, pipe=pipe):
            o = SamplingOptions(**{**opts.to_dict(), "num_steps": steps, "crop_offset": (0.5, 0.5)})
            return pipe.sample_latents(image, o, progress=lambda i, n, s: meter.stamp())

        engines["ours"] = (sample_ours, lambda z, pipe=pipe: pipe.decode_latents(z, opts), list(pipe.model.parameters()))
    if "diffusers" in names:
        pipe = diffusers_pipeline(a, device, dtype)

        def sample_theirs(steps, meter, pipe=pipe):
            def on_step(p, i, t, kw):
                meter.stamp()
                return kw

            return pipe(image, height=a.height, width=a.width, num_frames=a.frames, num_inference_steps=steps,
                        min_guidance_scale=1.0, max_guidance_scale=3.0, decode_chunk_size=a.decoding_t,
                        generator=torch.Generator().manual_seed(0), output_type="latent",
                        callback_on_step_end=on_step).frames

        def decode_theirs(z, pipe=pipe):
            with torch.no_grad():
                return pipe.decode_latents(z.to(dtype), a.frames, a.decoding_t)

        params = [p for m in (pipe.unet, pipe.vae, pipe.image_encoder) for p in m.parameters()]
        engines["diffusers"] = (sample_theirs, decode_theirs, params)
    return engines


def measure(a, names):
    """Both engines in this process, alternating run by run so that a busy machine slows both alike."""
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cpu":
        return_freed_memory_to_the_os()
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    engines = build_engines(a, device, dtype, names)
    rows = {name: [] for name in names}
    meter = Meter(device)
    for r in range(a.repeats + 1):  # the first round warms up
        for name in names:
            sample, decode, _ = engines[name]
            meter.start()
            z = sample(a.steps if r else 1, meter)
            sample_mib = meter.stop()
            step_s = meter.step_seconds()
            meter.start()
            decode(z)
            meter.stamp()
            decode_mib = meter.stop()
            if r:
                rows[name].append({"step_s": step_s, "decode_s": meter.stamps[-1] - meter.stamps[0],
                                   "sample_peak_mib": sample_mib, "decode_peak_mib": decode_mib})
    results = {}
    for name in names:
        params = engines[name][2]
        results[name] = {
            "params": sum(p.numel() for p in params), "weights_mib": sum(p.numel() * p.element_size() for p in params) / 2**20,
            "rows": rows[name], **{k: statistics.median(row[k] for row in rows[name]) for k in ("step_s", "decode_s")},
            **{k: max(row[k] for row in rows[name]) for k in ("sample_peak_mib", "decode_peak_mib")}}
    return results


def describe_machine(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores visible (torch {torch.__version__}, CPU)"


def main_unet_only(a):
    import torch

    from scripts.benchmark.unet_forward import measure_unet_forward, print_unet_forward
    from sgm.modules.compile import CompileOptions

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    options = CompileOptions(mode=a.compile_mode, backend=a.compile_backend, freezing=a.compile_freezing) if a.compile else None
    results = measure_unet_forward(a, our_config(a), torch.device(a.device), dtype, options, a.ablate_single_token)
    print_unet_forward(a, results, describe_machine(a.device))
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "machine": describe_machine(a.device), "results": results}, indent=1))
    return results


def main(argv=None):
    a = parse_args(argv)
    if a.unet_only:
        return main_unet_only(a)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    results = measure(a, engines)
    print(f"machine: {describe_machine(a.device)}; dtype {a.dtype}")
    print(f"size: {a.size}: {a.frames} frames at {a.height}x{a.width}, {a.steps} steps, UNet {a.unet_channels} ch "
          f"(heads of {a.head_dim}), VAE {a.vae_channels} ch, CLIP {a.clip_width}x{a.clip_layers}, decoding_t {a.decoding_t}, "
          f"our overlap {a.decoding_overlap}; medians of {a.repeats} alternating runs")
    keys = [("step_s", "s / sampling step"), ("decode_s", "decode s"), ("sample_peak_mib", "sampling MiB above weights"),
            ("decode_peak_mib", "decoding MiB above weights"), ("weights_mib", "weights MiB"), ("params", "parameters (M)")]
    print(f"{'':28}" + "".join(f"{e:>12}" for e in engines) + ("   ours/theirs" if len(engines) == 2 else ""))
    for key, label in keys:
        vals = [results[e][key] / (1e6 if key == "params" else 1) for e in engines]
        line = f"{label:28}" + "".join(f"{v:>12.3f}" for v in vals)
        if len(engines) == 2 and vals[1]:
            line += f"{vals[0] / vals[1]:>14.2f}"
        print(line)
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "machine": describe_machine(a.device), "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
