"""How many CPU threads each training process gives torch (intra-op parallelism).

torch's default is one thread per core whatever else runs; several training processes (DDP on CPU,
runs side by side) or other work on the machine then oversubscribe the cores, and OpenMP threads
spinning against each other can make a step many times slower than with one thread.
"""
import logging
import os
import time
from typing import Any, Optional, Tuple

import torch
from omegaconf import DictConfig

logger = logging.getLogger(__name__)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a cgroup/SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def local_processes(cfg: DictConfig) -> int:
    """Training processes this node starts: `lightning.trainer.devices` (1 when unset or "auto" on CPU)."""
    trainer = (cfg.get("lightning") or {}).get("trainer") or {}
    devices: Any = trainer.get("devices", 1)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices > 0:
        return devices
    if not isinstance(devices, (int, str)):  # a list of device indices
        return max(1, len(list(devices)))
    if trainer.get("accelerator", "auto") != "cpu" and torch.cuda.is_available():
        return torch.cuda.device_count()  # devices: auto / -1 on a GPU machine
    return 1


def busy_cpus(interval: float = 0.25) -> Optional[float]:
    """CPUs busy right now: online CPUs times the non-idle share of CPU time over `interval` seconds
    (Linux /proc/stat), rounded to whole CPUs; None where /proc/stat cannot be read. Unlike the 1-minute load
    average it does not count a job that ended seconds ago (e.g. the pip install before a first run)."""
    def sample():
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        return fields[3] + fields[4], sum(fields)

    try:
        idle0, total0 = sample()
        time.sleep(interval)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return float(round((1.0 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)))


def default_threads(processes: int, cpus: Optional[int] = None, load: Optional[float] = None) -> int:
    """The usable CPUs shared by this node's training processes, and no more than the CPUs that other
    work leaves idle (usable CPUs minus `load`, rounded down); at least 1. `load` defaults to the CPUs busy
    now (busy_cpus), else the 1-minute load average."""
    cpus = usable_cpus() if cpus is None else cpus
    if load is None:
        load = busy_cpus()
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    share = cpus // max(1, processes)
    idle = int(cpus - load)
    return max(1, min(share, idle))


def choose_threads(flag: Optional[int], cfg: DictConfig) -> Tuple[int, str]:
    """(threads, where the number comes from): --threads, else $OMP_NUM_THREADS, else default_threads."""
    if flag is not None:
        if flag < 1:
            raise ValueError(f"--threads must be at least 1, got {flag}")
        return flag, "--threads"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env), "OMP_NUM_THREADS"
    processes = local_processes(cfg)
    return default_threads(processes), f"default: {usable_cpus()} usable CPUs, {processes} process(es), CPUs busy now"


def set_threads(flag: Optional[int], cfg: DictConfig) -> int:
    """Give torch the chosen number of threads; export it as OMP_NUM_THREADS so that the processes this
    one starts (DDP ranks, data workers) use the same number."""
    threads, source = choose_threads(flag, cfg)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    logger.info("%d CPU thread(s) per training process (%s)", threads, source)
    return threads
