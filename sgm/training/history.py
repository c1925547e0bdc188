"""Loggers that keep a run's metrics history when the run is resumed in the same run directory."""
import csv
import logging
import os
from typing import Any, Optional

from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

logger = logging.getLogger(__name__)


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, minus deleting the metrics.csv it finds: the rows of steps before
    `resume_step` are kept (later rows were logged by the interrupted run after its last checkpoint and
    are logged again now); new rows are appended."""

    def __init__(self, log_dir: str, resume_step: Optional[int]):
        self.resume_step = resume_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            keys, rows = list(reader.fieldnames or []), list(reader)
        if self.resume_step is not None:
            rows = [r for r in rows if r.get("step") in (None, "") or int(float(r["step"])) < self.resume_step]
        with open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = sorted(keys)
        logger.info("%s: kept %d rows of earlier steps", self.metrics_file_path, len(rows))


class HistoryCSVLogger(CSVLogger):
    """CSVLogger (same arguments) that appends to an existing metrics.csv instead of deleting it.

    resume_step: the global step the run resumes from (rows logged at or after it are dropped, since the
        resumed run logs those steps again); None for a new run.
    """

    def __init__(self, *args: Any, resume_step: Optional[int] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._experiment = _KeepingWriter(self.log_dir, self.resume_step)
        return self._experiment


def tensorboard_logger(save_dir: str, name: str, version: str, resume_step: Optional[int] = None) -> TensorBoardLogger:
    """A TensorBoardLogger; when resuming, TensorBoard hides the earlier event files' entries from
    `resume_step` on (SummaryWriter's purge_step), so each step is shown once."""
    extra = {} if resume_step is None else {"purge_step": resume_step}
    return TensorBoardLogger(save_dir=save_dir, name=name, version=version, **extra)
