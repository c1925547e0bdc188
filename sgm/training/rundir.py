"""Run directories: logs/<timestamp>_<name>/{configs,checkpoints}, and finding what to resume."""
import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

# Set for the processes Lightning launches for DDP (they re-run main.py and must reuse the parent's run
# directory); set it by hand to give every node of a multi-node job the same directory.
RUN_DIR_ENV = "SGM_RUN_DIR"
LAST_CKPT = "last.ckpt"
CONFIG_NAME = "config.yaml"


@dataclass
class RunDir:
    """The directory of one run. root: its path (holds configs/, checkpoints/, logs and videos)."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    def make(self) -> "RunDir":
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.configs.mkdir(parents=True, exist_ok=True)
        return self


def new_run_dir(logdir: str, name: Optional[str], bases: Sequence[str]) -> RunDir:
    """logs/<YYYY-mm-ddTHH-MM-SS>_<name> (name: --name, else the first config's stem), or $SGM_RUN_DIR."""
    if os.environ.get(RUN_DIR_ENV):
        return RunDir(Path(os.environ[RUN_DIR_ENV]))
    if not name:
        name = Path(bases[0]).stem if bases else "run"
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    return RunDir(Path(logdir) / f"{stamp}_{name}")


@dataclass
class ResumeTarget:
    """What to resume. run_dir: the run's directory; ckpt: the checkpoint to continue from; config: the
    run's saved config."""

    run_dir: RunDir
    ckpt: Path
    config: Optional[Path]  # the run's saved config, if there is one


def find_resume(path: str) -> ResumeTarget:
    """What `--resume path` means: a run directory (its checkpoints/last.ckpt) or a checkpoint file
    (its run directory is the folder above `checkpoints/`)."""
    p = Path(path)
    if p.is_dir():
        run, ckpt = RunDir(p), p / "checkpoints" / LAST_CKPT
        if not ckpt.is_file():
            raise FileNotFoundError(f"cannot resume {p}: no {ckpt} (give a checkpoint file instead)")
    elif p.is_file():
        ckpt = p
        run = RunDir(p.parent.parent if p.parent.name == "checkpoints" else p.parent)
    else:
        raise FileNotFoundError(f"cannot resume: {p.resolve()} is neither a run directory nor a checkpoint file")
    config = run.configs / CONFIG_NAME
    return ResumeTarget(run, ckpt, config if config.is_file() else None)
