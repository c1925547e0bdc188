"""One guided UNet forward, ours against diffusers': the building blocks of `svd_vs_diffusers.py --unet_only`.

Our VideoUNet is built from SVD-XT's config; diffusers' UNetSpatioTemporalConditionModel from the same
published sizes. To keep one full-size model (about 6 GiB in fp32) in memory instead of two, diffusers'
UNet is built on the meta device and each of its parameters takes the storage of one of ours of the
same shape, each of ours used at most once (a fresh random tensor only where no shape matches). The
weights' values do not change the work of a forward (denormals are flushed), so the timing is that of
diffusers' own model; the printed parameter counts still come from each module.
"""
from collections import defaultdict
from typing import Callable, Dict, Tuple

import torch
import torch.nn as nn


def our_unet(cfg, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Our VideoUNet from the `network_config` of `cfg` (a full model config), random weights, eval mode."""
    from sgm.util import instantiate_from_config

    with device:
        unet = instantiate_from_config(cfg.model.params.network_config)
    return unet.to(dtype).eval().requires_grad_(False)


def their_unet(a, donor: nn.Module, device: torch.device, dtype: torch.dtype) -> Tuple[nn.Module, int]:
    """diffusers' SVD UNet sized by `a`, its parameters sharing the storage of `donor`'s (see the module
    docstring). Returns the model and the number of its parameter tensors that got fresh storage."""
    from diffusers import UNetSpatioTemporalConditionModel

    from scripts.benchmark.svd_vs_diffusers import our_config
    from sgm.interop.diffusers_configs import unet_config

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel.from_config(unet_config(our_config(a).model, a.frames))
    pool: Dict[tuple, list] = defaultdict(list)
    for p in donor.parameters():
        pool[tuple(p.shape)].append(p)
    fresh = 0
    for module in unet.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            same_shape = pool.get(tuple(p.shape))
            if same_shape:
                data = same_shape.pop().data
            else:
                data = torch.empty(p.shape, device=device, dtype=dtype).normal_(0.0, 0.02)
                fresh += 1
            setattr(module, name, nn.Parameter(data, requires_grad=False))
        for name, b in list(module.named_buffers(recurse=False)):
            module.register_buffer(name, torch.zeros(b.shape, device=device, dtype=b.dtype))
    return unet.eval(), fresh


def forward_calls(a, ours: nn.Module, theirs: nn.Module, device: torch.device, dtype: torch.dtype) -> Dict[str, Callable]:
    """Zero-argument callables running one guided forward (a CFG batch of 2 videos x `a.frames` frames at
    (height/8, width/8) latents) of each UNet on the same random inputs."""
    g = torch.Generator().manual_seed(0)
    T, h, w = a.frames, a.height // 8, a.width // 8
    x = torch.randn(2 * T, 8, h, w, generator=g).to(device, dtype)  # (B*T, C_in, h, w): noisy latent + image latent
    sigma = torch.full((2 * T,), 0.5).to(device, dtype)  # c_noise
    context = torch.randn(2, 1, a.context_dim, generator=g).to(device, dtype)  # one CLIP token per video
    vector = torch.randn(2, 768, generator=g).to(device, dtype)  # fps, motion bucket, cond_aug embeddings
    added_time_ids = torch.tensor([[6.0, 127.0, 0.02]] * 2).to(device, dtype)
    indicator = torch.zeros(2, T, device=device, dtype=dtype)  # (B, T): no still images
    calls = {}
    if ours is not None:
        ctx_frames, y_frames = context.repeat_interleave(T, 0), vector.repeat_interleave(T, 0)

        def run_ours(unet=ours):
            return unet(x, sigma, context=ctx_frames, y=y_frames, num_video_frames=T, image_only_indicator=indicator)

        calls["ours"] = run_ours
    if theirs is not None:
        sample = x.view(2, T, *x.shape[1:])  # (B, T, C_in, h, w)

        def run_theirs(unet=theirs):
            return unet(sample, sigma[0], encoder_hidden_states=context, added_time_ids=added_time_ids,
                        return_dict=False)[0]

        calls["diffusers"] = run_theirs
    return calls


def timed(fn: Callable, sync: Callable) -> float:
    import time

    sync()
    t0 = time.perf_counter()
    with torch.no_grad():  # (without_single_token_path re-enables gradients inside)
        fn()
    sync()
    return time.perf_counter() - t0


def without_single_token_path(fn: Callable) -> Callable:
    """`fn` run with gradients enabled but nothing requiring them: no autograd graph is recorded, and our
    attention takes its full path instead of the single-context-token one (sgm.modules.attention), which
    measures what that path saves."""
    def run():
        with torch.enable_grad():
            return fn()

    return run


def measure_unet_forward(a, cfg, device: torch.device, dtype: torch.dtype, compile_options=None,
                         ablate_single_token: bool = False) -> dict:
    """Median seconds of one guided forward for each variant: ours eager, ours compiled (with
    `compile_options`, None: not compiled), diffusers eager and compiled (when it compiles), and with
    `ablate_single_token` ours eager without the single-context-token attention path. The
    variants run in turn within each of `a.repeats` rounds, after one warm-up call each (for a compiled
    variant the warm-up call compiles; its time is reported as `first_call_s`)."""
    import statistics

    from sgm.modules.compile import compiled_callable

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ours = our_unet(cfg, device, dtype)
    theirs, fresh = their_unet(a, ours, device, dtype)
    calls = forward_calls(a, ours, theirs, device, dtype)
    variants = {"ours eager": calls["ours"], "diffusers eager": calls["diffusers"]}
    if ablate_single_token:
        variants["ours eager, full attention"] = without_single_token_path(calls["ours"])
    skipped = {}
    if compile_options is not None:
        kwargs = compile_options.kwargs()
        ours_compiled = compiled_callable(ours, compile_options)  # as compile_module (the pipeline's), not in place
        variants["ours compiled"] = forward_calls(a, ours_compiled, None, device, dtype)["ours"]
        if compile_options.freezing:  # its frozen constants would be a third copy of the weights
            skipped["diffusers compiled"] = "not run with freezing (a third full copy of the weights in memory)"
        else:
            variants["diffusers compiled"] = forward_calls(a, None, torch.compile(theirs, **kwargs), device, dtype)["diffusers"]
    results = {name: {"rows": []} for name in variants}
    for name, why in skipped.items():
        results[name] = {"rows": [], "error": why}
    for name, fn in list(variants.items()):
        try:
            results[name]["first_call_s"] = timed(fn, sync)
        except Exception as e:  # diffusers' model may not compile; ours must
            if name != "diffusers compiled":
                raise
            results[name]["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            del variants[name]
    for _ in range(a.repeats):
        for name, fn in variants.items():
            results[name]["rows"].append(timed(fn, sync))
    for name in variants:
        results[name]["median_s"] = statistics.median(results[name]["rows"])
    params = {"ours": sum(p.numel() for p in ours.parameters()), "diffusers": sum(p.numel() for p in theirs.parameters())}
    return {"variants": results, "params": params, "fresh_tensors_for_diffusers": fresh}


def print_unet_forward(a, results: dict, machine: str) -> None:
    v = results["variants"]
    compiled = ""
    if getattr(a, "compile", False):
        compiled = (f"; compiled: mode {a.compile_mode or 'default'}, backend {a.compile_backend}"
                    + (", freezing" if getattr(a, "compile_freezing", False) else ""))
    print(f"machine: {machine}; dtype {a.dtype}{compiled}")
    print(f"UNet forward: CFG batch 2 x {a.frames} frames, latent {a.height // 8}x{a.width // 8}, UNet {a.unet_channels} ch "
          f"(heads of {a.head_dim}), parameters ours {results['params']['ours'] / 1e6:.1f}M / diffusers "
          f"{results['params']['diffusers'] / 1e6:.1f}M; median of {a.repeats} rounds, variants in turn within each round")
    base = v["diffusers eager"]["median_s"]
    print(f"{'':28}{'median s':>10}{'x diffusers eager':>19}{'first call s':>14}   rounds")
    for name, r in v.items():
        if "median_s" not in r:
            print(f"{name:28}{'-':>10}   {r.get('error', '')}")
            continue
        rounds = " ".join(f"{s:.3f}" for s in r["rows"])
        print(f"{name:28}{r['median_s']:>10.3f}{r['median_s'] / base:>19.2f}{r['first_call_s']:>14.1f}   {rounds}")
