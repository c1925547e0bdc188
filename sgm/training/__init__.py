"""Training: the logic behind main.py (CLI, configs, run directories, trainer, callbacks)."""
from .run import run

__all__ = ["run"]
