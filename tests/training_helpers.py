"""In-memory video data (contract 2 batches) and config builders for the training tests."""
import math
from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
TOY_CONFIG = REPO / "configs" / "toy" / "svd_toy.yaml"


class FixedVideoDataset(Dataset):
    """`length` deterministic videos (smooth moving gradients), one contract-2 sample each."""

    def __init__(self, length: int = 4, num_frames: int = 2, height: int = 64, width: int = 64, seed: int = 0):
        self.length, self.t, self.h, self.w, self.seed = length, num_frames, height, width, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Dict:
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        ys = torch.linspace(-1, 1, self.h)[:, None]
        xs = torch.linspace(-1, 1, self.w)[None, :]
        phase = torch.rand(3, generator=g) * 2 * math.pi
        frames = torch.stack([
            torch.stack([torch.sin(3 * xs + 2 * ys + phase[c] + 0.3 * f).expand(self.h, self.w) for c in range(3)])
            for f in range(self.t)]) * 0.8  # (T, 3, H, W) in [-1, 1]
        cond_aug = torch.exp(-3.0 + 0.5 * torch.randn((), generator=g))
        first = frames[0]
        return {
            "frames": frames,
            "cond_frames_without_noise": first,
            "cond_frames": first + cond_aug * torch.randn(first.shape, generator=g),
            "cond_aug": cond_aug,
            "fps_id": torch.tensor(5),
            "motion_bucket_id": torch.tensor(127),
            "txt": f"video {i}",
            "num_video_frames": torch.tensor(self.t),
        }


class FixedVideoDataModule(pl.LightningDataModule):
    """Batches of FixedVideoDataset in a fixed order (deterministic across resumes).

    length, num_frames, height, width, seed: of the dataset. batch_size: videos per batch.
    """

    def __init__(self, length: int = 4, num_frames: int = 2, height: int = 64, width: int = 64, batch_size: int = 1,
                 seed: int = 0):
        super().__init__()
        self.dataset = FixedVideoDataset(length, num_frames, height, width, seed)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=0)


def fixed_batch(batch_size: int = 1, num_frames: int = 2, size: int = 64, seed: int = 0) -> Dict:
    """One collated contract-2 batch."""
    ds = FixedVideoDataset(batch_size, num_frames, size, size, seed)
    return next(iter(DataLoader(ds, batch_size=batch_size)))


def toy_overrides(tmp_path, max_steps: int = 3, extra: List[str] = (), length: int = 4, name: str = "t") -> List[str]:
    """main.py arguments: the toy config with its data section replaced by in-memory data, CPU, a few
    steps, logs under tmp_path."""
    cfg = OmegaConf.load(TOY_CONFIG)
    cfg.data = OmegaConf.create({"target": "tests.training_helpers.FixedVideoDataModule",
                                 "params": {"length": length, "num_frames": 2, "height": 64, "width": 64, "batch_size": 1}})
    path = Path(tmp_path) / "toy_mem.yaml"
    OmegaConf.save(cfg, path)
    return [
        "--base", str(path),
        f"lightning.trainer.max_steps={max_steps}",
        "lightning.trainer.enable_progress_bar=false",
        "lightning.trainer.enable_model_summary=false",
        "lightning.callbacks.video_logger=null",
        *extra,
        "--logdir", str(Path(tmp_path) / "logs"), "--name", name,
    ]


def toy_config(**overrides):
    cfg = OmegaConf.load(TOY_CONFIG)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


class NaNWeighting:
    """A loss weighting that makes every loss NaN (to test that training stops with a clear message)."""

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.full_like(sigma, float("nan"))


class SimulatedCrash(RuntimeError):
    pass


class CrashAtStep(pl.Callback):
    """Raises SimulatedCrash when the batch of optimizer step `step` starts (the run dies mid-epoch)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise SimulatedCrash(f"simulated crash at step {self.step}")


class NaNWeightingOnRank1:
    """NaN loss weights on distributed rank 1 only (the other ranks' losses stay finite)."""

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        return torch.full_like(sigma, float("nan") if rank == 1 else 1.0)


class SignalAtStep(pl.Callback):
    """Sends this process `signal` (a name, e.g. SIGTERM) when the batch of optimizer step `step` starts,
    as a cluster's preemption would."""

    def __init__(self, step: int, signal: str = "SIGTERM"):
        self.step, self.signal = step, signal

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        import os
        import signal

        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))


class KillDuringCheckpointWrite(pl.Callback):
    """SIGKILLs this process in the middle of writing the checkpoint of global step `step`: half of the
    file's bytes are written and flushed to disk, then the process dies as under the OOM killer."""

    def __init__(self, step: int):
        self.step = step

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if trainer.global_step != self.step:
            return
        import io
        import os
        import signal

        real_save = torch.save

        def half_then_die(obj, f, *args, **kwargs):
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = half_then_die


class KeywordSink(pl.Callback):
    """A callback taking **kwargs that refuses names it does not know (as a constructor that checks its
    own keyword arguments does), to test that such an error names the config key."""

    def __init__(self, **kwargs):
        unknown = sorted(set(kwargs) - {"colour"})
        if unknown:
            raise TypeError(f"KeywordSink got an unexpected keyword argument {unknown[0]!r}")


def toy_video_shards(out: Path, duration: float = 1.0, samples: int = 3) -> Path:
    """One webdataset shard of `samples` small synthetic videos (64x64) in `out`."""
    from sgm.data.synthetic import write_toy_video_shards

    write_toy_video_shards(out, num_shards=1, samples_per_shard=samples, size=(64, 64), duration=duration)
    return Path(out)


def toy_image_shards(out: Path) -> Path:
    from sgm.data.synthetic import write_toy_image_shards

    write_toy_image_shards(out, num_shards=1, samples_per_shard=2)
    return Path(out)


class TinyModule(pl.LightningModule):
    """A LightningModule that is not a DiffusionEngine (width: hidden size; hidden_layers: unused), for
    config checks."""

    def __init__(self, width: int = 4, hidden_layers: int = 1):
        super().__init__()
        self.layer = torch.nn.Linear(width, width)


def run_main(argv) -> int:
    """main.py's entry point (exit status, errors logged) in this process, as `python main.py ARGV`."""
    import sys

    import main

    old = sys.argv
    sys.argv = ["main.py", *argv]
    try:
        return main.main()
    finally:
        sys.argv = old


def one_thread_fixture():
    """An autouse fixture body: the test runs torch on one thread; the count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
