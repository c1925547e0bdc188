"""Errors raised by the sampling library; each message says what to do about it."""
from typing import Optional


class InferenceError(RuntimeError):
    """Base class of every error raised by `sgm.inference`."""


class MissingCheckpointError(InferenceError, FileNotFoundError):
    """The model's weights file is not where it was looked for.

    path: the path that was looked for. official_name: the official file to put there (None for a
    custom config). source: where that file is published.
    """

    def __init__(self, path: str, official_name: Optional[str] = None, source: Optional[str] = None):
        self.path = path
        self.official_name = official_name
        self.source = source
        if official_name:
            hint = f"put the official file {official_name}"
            hint += f" (from {source})" if source else ""
            hint += f" at {path}, pass --ckpt / ckpt= with its location, or add --download / download=True to fetch it"
        else:
            hint = "pass --ckpt / ckpt= with the weights that belong to this config"
        super().__init__(f"checkpoint not found: {path}; {hint}. Weights are downloaded only when asked.")


class ImageReadError(InferenceError):
    """An input image cannot be opened or decoded."""


class OutOfMemoryError(InferenceError):
    """The accelerator ran out of memory; the message lists the settings that lower peak memory.

    stage: what was running, e.g. "sampling" or "decoding". detail: the first line of torch's own
    message (how much it tried to allocate), or "".
    """

    ADVICE = ("lower peak memory with: dtype='fp16' (or 'bf16'), offload=True (--offload), a smaller "
              "decoding_t (--decoding_t 2), ff_chunk_size (--ff_chunk 1024), fewer frames or a smaller size")

    def __init__(self, stage: str, detail: str = ""):
        self.stage = stage
        super().__init__(f"out of GPU memory while {stage}{f' ({detail})' if detail else ''}; {self.ADVICE}")
