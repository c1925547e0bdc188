"""Checkpoint files written atomically: a run killed while it writes (SIGKILL, power loss, a full disk)
leaves the previous file in place, never a truncated one under the checkpoint's name."""
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

logger = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"  # a temporary file is `.<name>.tmp-<pid>` next to the checkpoint


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save into a temporary file in the same folder, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_stale_temp_files(folder: Path) -> None:
    """Delete the temporary files a killed run left in `folder` (they are incomplete by construction)."""
    for stale in folder.glob(f".*{TEMP_MARK}*"):
        logger.warning("removing %s, an incomplete checkpoint left by a run that was killed while writing it", stale)
        stale.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO with atomic local writes (see `atomic_torch_save`); remote paths
    (`s3://...`) go through Lightning's own writer."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, Path(path))
