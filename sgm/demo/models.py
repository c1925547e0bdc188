"""The models offered in the page, and the slot that holds the one loaded pipeline."""
import gc
import logging
import threading
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from .messages import Kind, Message, error_message
from .paths import public_path

logger = logging.getLogger(__name__)

DEFAULT_VERSION = "svd_xt"


def available_versions() -> List[str]:
    """Names of the official models (`sgm.inference.checkpoints.VERSIONS`), e.g. svd, svd_xt."""
    from ..inference.checkpoints import VERSIONS

    return list(VERSIONS)


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the page's model menu.

    version: a configs/inference name, or None for a custom config. config: the custom config path
    (None for a version). ckpt: weights path (None: the config's `sampling.checkpoint`).
    random_weights: build the model with random weights and read no checkpoint (to try the page,
    e.g. with the tiny config; the videos are noise).
    """

    version: Optional[str] = None
    config: Optional[str] = None
    ckpt: Optional[str] = None
    random_weights: bool = False

    @property
    def config_path(self) -> str:
        from ..inference.checkpoints import version_config

        return self.config if self.config is not None else str(version_config(self.version))

    def check_checkpoint(self) -> str:
        """The weights file `VideoPipeline.load` will read; MissingCheckpointError (naming the file
        to put where) when it is not there. "" for random weights (no file is read)."""
        from ..inference.checkpoints import resolve_checkpoint

        if self.random_weights:
            return ""
        return resolve_checkpoint(self.ckpt, self._config_checkpoint(), self.version)

    def _config_checkpoint(self) -> Optional[str]:
        from ..inference.checkpoints import config_checkpoint
        from ..inference.pipeline import read_config

        return config_checkpoint(read_config(self.config_path, self.config_path))

    def checkpoint_path(self) -> Tuple[Optional[str], bool]:
        """(where the weights are looked for, whether the file is there), found the way
        `VideoPipeline.load` finds it: `ckpt`, else the config's `sampling.checkpoint`."""
        from ..inference import MissingCheckpointError

        try:
            return self.check_checkpoint(), True
        except MissingCheckpointError:
            return (self.ckpt or self._config_checkpoint()), False

    @property
    def label(self) -> str:
        """What the menu shows, e.g. `svd_xt: checkpoints/svd_xt.safetensors (missing)`; paths in
        their public form (`sgm.demo.paths`)."""
        name = self.version if self.version is not None else f"custom config {public_path(self.config)}"
        if self.random_weights:
            return f"{name}: random weights"
        try:
            ckpt, found = self.checkpoint_path()
        except (ValueError, FileNotFoundError):  # the config itself cannot be read; loading says why
            return f"{name}: config cannot be read"
        if ckpt is None:
            return f"{name}: no checkpoint configured"
        return f"{name}: {public_path(ckpt)}" + ("" if found else " (missing)")


def model_choices(launch: ModelChoice) -> List[ModelChoice]:
    """The model the app was started with, then every other official version."""
    others = [ModelChoice(version=v) for v in available_versions() if launch != ModelChoice(version=v)]
    return [launch] + others


class ModelSlot:
    """Holds at most one loaded `VideoPipeline` (a second model would need a second model's memory).

    loader: `VideoPipeline.load`-like callable taking version/config/ckpt keywords. load_kwargs:
    extra keywords for it (device, dtype, offload). Loading is serialised by a lock; the previous
    pipeline is released before the next one is built.
    """

    def __init__(self, loader: Callable, **load_kwargs):
        self.loader = loader
        self.load_kwargs = load_kwargs
        self.choice: Optional[ModelChoice] = None
        self.pipe = None
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()

    def load(self, choice: ModelChoice):
        """Load `choice` (kept if already loaded); returns the pipeline. On failure the slot is empty,
        `error` holds the message and the exception is re-raised."""
        with self._lock:
            if self.pipe is not None and self.choice == choice:
                return self.pipe
            self._release()
            self.choice = choice
            try:
                self.pipe = self.loader(version=choice.version, config=choice.config, ckpt=choice.ckpt,
                                        random_weights=choice.random_weights, **self.load_kwargs)
            except Exception as e:
                self.error = e
                logger.info("could not load %s: %s", choice.label, e)
                raise
            self.error = None
            logger.info("loaded %s", choice.label)
            return self.pipe

    def _release(self) -> None:
        if self.pipe is None:
            return
        self.pipe = None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def status(self) -> Message:
        """Which model is loaded, or why none is."""
        if self.pipe is not None:
            return Message(Kind.LOADED, self.choice.label)
        if self.choice is not None and self.error is not None:
            return Message(Kind.NO_MODEL, error_message(self.error).plain())
        return Message(Kind.NO_MODEL)
