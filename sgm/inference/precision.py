"""Whether a half-precision dtype is slow on this CPU, measured rather than guessed.

fp16 matrix products on most CPUs have no native kernels and run tens of times slower than fp32
(measured 40x for a 512x512 matmul on an AMD EPYC with AVX-512); bf16 is fast on CPUs with native
bf16 instructions (AVX512-BF16, AMX) and slow on the others. A few milliseconds of timing tell which
case this machine is in, so the warning is given exactly where it is true.
"""
import time
from typing import Optional

import torch

SLOW_RATIO = 2.0  # warn when the dtype is more than this many times slower than fp32


def cpu_slowdown(dtype: torch.dtype, size: int = 256, repeats: int = 3) -> float:
    """How many times slower a (size x size) matmul runs in `dtype` than in fp32 on this CPU."""
    def seconds(dt: torch.dtype) -> float:
        a = torch.ones(size, size, dtype=dt)
        a @ a  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t0)
        return max(best, 1e-9)

    return seconds(dtype) / seconds(torch.float32)


def slow_precision_warning(device: torch.device, dtype: torch.dtype, dtype_option: str = "--dtype") -> Optional[str]:
    """A warning text when `dtype` runs slowly on `device` (a CPU), naming `dtype_option`; else None."""
    if device.type != "cpu" or dtype not in (torch.float16, torch.bfloat16):
        return None
    ratio = cpu_slowdown(dtype)
    if ratio <= SLOW_RATIO:
        return None
    name = "fp16" if dtype == torch.float16 else "bf16"
    return (f"{name} on this CPU runs matrix products {ratio:.0f}x slower than fp32 (measured just now); "
            f"leave {dtype_option} out (fp32 is the CPU default) or use a GPU")
