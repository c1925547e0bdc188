#!/usr/bin/env python
"""The GPU table of docs/benchmarks.md in one run: SVD-XT (25 frames, 576x1024, 25 steps, random weights),
ours and diffusers' StableVideoDiffusionPipeline side by side, in fp16 and bf16, eager, eager with
offload and feed-forward chunking, and compiled. Run through scripts/benchmark/gpu_suite.sh, which
first installs the wheels a bare GPU machine lacks.

    scripts/benchmark/gpu_suite.sh                 # on one CUDA GPU
    scripts/benchmark/gpu_suite.sh --dry-run       # anywhere: every import, every variant, tiny sizes, CPU

Per variant: end-to-end seconds (sampling + decoding, image in, frames out), UNet seconds per guided
step (median over the steps after the first), decode seconds and peak memory allocated on the GPU.
Compiled variants first run once to compile (reported as compile seconds), then are timed.
--dry-run builds tiny models on the CPU, runs each variant for 2 steps in fp32 (the dtype column keeps
the name of the dtype it stands in for), compiles with the "eager" backend (tracing only) and checks
the shapes of the latents and frames; it needs no CUDA and takes a few minutes on 2 cores.
"""
import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.benchmark.svd_vs_diffusers import SIZES, diffusers_pipeline, our_config  # noqa: E402

DRY_SIZE = dict(SIZES["tiny"], levels=2, res_blocks=1, unet_channels=32, head_dim=32, clip_layers=1, frames=3, height=64, width=64, steps=2,
                decoding_t=3)
VARIANTS = ("eager", "offload+ff_chunk", "compiled")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="tiny models on the CPU: check imports and shapes")
    p.add_argument("--dtypes", default="fp16,bf16")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"any of {', '.join(VARIANTS)}")
    p.add_argument("--engines", default="ours,diffusers")
    p.add_argument("--ff_chunk", type=int, default=4096, help="tokens per feed-forward chunk in the offload variant")
    p.add_argument("--json", default=None, help="also write every measurement here")
    a = p.parse_args(argv)
    a.dtypes, a.variants, a.engines = (x.split(",") for x in (a.dtypes, a.variants, a.engines))
    unknown = set(a.variants) - set(VARIANTS)
    if unknown:
        p.error(f"--variants: unknown {sorted(unknown)}; choose from {VARIANTS}")
    size = DRY_SIZE if a.dry_run else SIZES["full"]
    for key, value in size.items():
        setattr(a, key, value)
    a.size, a.device, a.decoding_overlap = ("dry-run" if a.dry_run else "full"), ("cpu" if a.dry_run else "cuda"), 0
    return a


class Engine:
    """One engine's pipeline and its variant switches: run(steps) -> (latents, frames, step stamps, decode s)."""

    def __init__(self, name, a, dtype_name):
        import torch

        self.name, self.a, self.device = name, a, torch.device(a.device)
        self.dtype = torch.float32 if a.dry_run else {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
        self.dtype_name = "fp32" if a.dry_run else dtype_name
        self.pipe = self._build()

    def _build(self):
        if self.name == "ours":
            from sgm.inference import VideoPipeline

            return VideoPipeline.load(config=our_config(self.a), device=self.device, dtype=self.dtype_name, random_weights=True)
        return diffusers_pipeline(self.a, self.device, self.dtype)

    def set_variant(self, variant):
        """Switch to `variant` (in the order of VARIANTS: offload is undone before compiling)."""
        from sgm.inference.memory import set_ff_chunk_size
        from sgm.inference.pipeline import VideoPipeline
        from sgm.modules.compile import CompileOptions, compile_engine

        options = CompileOptions(backend="eager" if self.a.dry_run else "inductor")
        if self.name == "ours":
            model = self.pipe.model
            offload = variant == "offload+ff_chunk"
            set_ff_chunk_size(model, self.a.ff_chunk if offload else None)
            self.pipe = VideoPipeline(model.to("cpu" if offload else self.device), self.pipe.config, self.device,
                                      offload=offload, info=self.pipe.info)
            if variant == "compiled":
                compile_engine(model, options)
            return
        pipe = self.pipe
        if variant == "offload+ff_chunk":
            pipe.unet.enable_forward_chunking()  # the pipeline's documented saver: one batch item at a time
            if self.device.type == "cuda":
                pipe.enable_model_cpu_offload(device=self.device)
            else:
                import accelerate  # noqa: F401  (what enable_model_cpu_offload needs; it takes no CPU device)
        else:
            for module in pipe.unet.modules():  # diffusers has no disable_forward_chunking for this UNet
                if hasattr(module, "set_chunk_feed_forward"):
                    module.set_chunk_feed_forward(chunk_size=None, dim=0)
            if hasattr(pipe, "remove_all_hooks"):
                pipe.remove_all_hooks()
            pipe.to(self.device)
        if variant == "compiled":
            pipe.unet.compile(**options.kwargs())
            pipe.vae.decoder.compile(**options.kwargs())

    def run(self, steps):
        import numpy as np
        import torch
        from PIL import Image

        a, stamps = self.a, []
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        image = Image.fromarray((np.random.default_rng(0).random((a.height, a.width, 3)) * 255).astype(np.uint8))

        def stamp(*unused):
            sync()
            stamps.append(time.perf_counter())

        sync()
        stamps.append(time.perf_counter())
        if self.name == "ours":
            from sgm.inference import SamplingOptions

            opts = SamplingOptions(seed=0, num_steps=steps, decoding_overlap=0, min_cfg=1.0, max_cfg=3.0, crop_offset=(0.5, 0.5))
            z = self.pipe.sample_latents(image, opts, progress=lambda i, n, s: stamp())
            t_decode = time.perf_counter()
            frames = self.pipe.decode_latents(z, opts)
        else:
            def on_step(p, i, t, kw):
                stamp()
                return kw

            z = self.pipe(image, height=a.height, width=a.width, num_frames=a.frames, num_inference_steps=steps,
                          min_guidance_scale=1.0, max_guidance_scale=3.0, decode_chunk_size=a.decoding_t,
                          generator=torch.Generator().manual_seed(0), output_type="latent", callback_on_step_end=on_step).frames
            t_decode = time.perf_counter()
            with torch.no_grad():
                frames = self.pipe.decode_latents(z.to(self.dtype), a.frames, a.decoding_t)
        sync()
        end = time.perf_counter()
        return z, frames, stamps, end - t_decode, end - stamps[0]


def check_shapes(engine, z, frames):
    """The latents and frames of one run have SVD's shapes for this size (the dry run's shape check)."""
    a = engine.a
    latent = (a.frames, 4, a.height // 8, a.width // 8)
    got = tuple(z.shape[-4:]) if engine.name == "diffusers" else tuple(z.shape)
    if got != latent:
        raise AssertionError(f"{engine.name}: latents {tuple(z.shape)}, expected {latent}")
    n_pixels = 3 * a.frames * a.height * a.width
    count = frames.numel() if hasattr(frames, "numel") else frames.size  # a tensor (diffusers) or an array (ours)
    if count != n_pixels:
        raise AssertionError(f"{engine.name}: frames {tuple(frames.shape)} hold no {a.frames} RGB frames of {a.height}x{a.width}")


def measure(engine, variant):
    import torch

    cuda = engine.device.type == "cuda"
    engine.set_variant(variant)
    row = {"engine": engine.name, "dtype": engine.dtype_name, "variant": variant}
    if variant == "compiled":
        t0 = time.perf_counter()
        engine.run(2)  # compiles the UNet and the decoder
        row["compile_s"] = time.perf_counter() - t0
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    z, frames, stamps, decode_s, total_s = engine.run(engine.a.steps)
    check_shapes(engine, z, frames)
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    row.update(end_to_end_s=total_s, unet_s_per_step=statistics.median(steps[1:] or steps), decode_s=decode_s,
               peak_vram_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None)
    return row


def run_suite(a):
    import torch

    rows, t_start = [], time.perf_counter()
    for dtype_name in a.dtypes:
        engines = [Engine(name, a, dtype_name) for name in a.engines]
        for engine in engines:  # warm-up: allocator, cuDNN autotuning, lazy imports
            engine.run(min(2, a.steps))
        for variant in a.variants:
            for engine in engines:
                rows.append(measure(engine, variant))
                print(f"[{time.perf_counter() - t_start:6.0f}s] {dtype_name} {variant:17} {engine.name:9} "
                      f"{rows[-1]['end_to_end_s']:.2f}s end to end", file=sys.stderr, flush=True)
        del engines
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows


def table(rows, a, machine) -> str:
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    ours = {(r["dtype"], r["variant"]): r for r in rows if r["engine"] == "ours"}
    theirs = {(r["dtype"], r["variant"]): r for r in rows if r["engine"] == "diffusers"}
    lines = [f"machine: {machine}; SVD-XT {a.frames} frames at {a.height}x{a.width}, {a.steps} steps, "
             f"decoding_t {a.decoding_t}, random weights" + (" (DRY RUN: tiny sizes on the CPU, fp32)" if a.dry_run else ""),
             "",
             "| dtype | variant | engine | end to end s | UNet s/step | decode s | peak VRAM GiB | compile s | end to end ours/diffusers |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        key = (r["dtype"], r["variant"])
        ratio = ours[key]["end_to_end_s"] / theirs[key]["end_to_end_s"] if r["engine"] == "ours" and key in theirs else None
        lines.append(f"| {r['dtype']} | {r['variant']} | {r['engine']} | {r['end_to_end_s']:.2f} | {r['unet_s_per_step']:.3f} | "
                     f"{r['decode_s']:.2f} | {fmt(r['peak_vram_gib'], '.2f')} | {fmt(r.get('compile_s'), '.0f')} | {fmt(ratio, '.2f')} |")
    return "\n".join(lines)


def uncarried_distributions() -> set:
    """Distributions of the modules imported so far that the wheels of gpu_wheels.py do not bring and a
    bare torch + torchvision machine lacks (the dry run's import check)."""
    import importlib.metadata as md

    from scripts.benchmark.gpu_wheels import OPTIONAL, PRESENT, normalize, requirements_closure

    carried = set(requirements_closure()) | {normalize(p) for p in PRESENT | OPTIONAL} | {"sgm-svd"}
    owners = md.packages_distributions()
    missing = set()
    for module in list(sys.modules):
        top = module.split(".")[0]
        for dist in owners.get(top, []) if top not in sys.stdlib_module_names else []:
            name = normalize(dist)
            if name not in carried and not name.startswith(("nvidia-", "cuda-")):
                missing.add(name)
    return missing


def main(argv=None):
    a = parse_args(argv)
    from scripts.benchmark.svd_vs_diffusers import describe_machine

    t0 = time.perf_counter()
    rows = run_suite(a)
    if a.dry_run:
        missing = uncarried_distributions()
        if missing:
            raise SystemExit(f"dry run: the suite imported {sorted(missing)}, which gpu_wheels.py does not carry; "
                             f"add them to its ROOTS")
        print("dry run: every imported distribution is carried by gpu_wheels.py or comes with torch")
    machine = describe_machine(a.device)
    print(table(rows, a, machine))
    print(f"\nsuite wall time: {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine, "args": vars(a), "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
