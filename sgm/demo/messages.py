"""What the page tells the user: a typed `Message` (kind, text, notes) that the page renders, and
the message for each kind of error."""
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Tuple

from .paths import public_path, public_text

logger = logging.getLogger(__name__)


class Kind(str, Enum):
    """What a message reports; `Message.is_error` and the page's rendering follow from it."""

    DONE = "done"
    LOADED = "loaded"
    NO_MODEL = "no_model"
    BAD_UPLOAD = "bad_upload"
    MISSING_CHECKPOINT = "missing_checkpoint"
    OUT_OF_MEMORY = "out_of_memory"
    GENERATION_FAILED = "generation_failed"
    INVALID_SETTING = "invalid_setting"
    UNKNOWN_CHOICE = "unknown_choice"
    UNEXPECTED = "unexpected"


TITLES = {Kind.DONE: "Done", Kind.LOADED: "Loaded model", Kind.NO_MODEL: "No model loaded",
          Kind.BAD_UPLOAD: "Bad upload", Kind.MISSING_CHECKPOINT: "Missing checkpoint",
          Kind.OUT_OF_MEMORY: "Out of memory", Kind.GENERATION_FAILED: "Generation failed",
          Kind.INVALID_SETTING: "Invalid setting", Kind.UNKNOWN_CHOICE: "Unknown model choice",
          Kind.UNEXPECTED: "Unexpected error"}
NOT_ERRORS = (Kind.DONE, Kind.LOADED, Kind.NO_MODEL)


@dataclass(frozen=True)
class Message:
    """One message for the page.

    kind: what it reports. text: the sentence(s) after the title, plain text without server paths.
    notes: remarks about the settings used (e.g. sampling off the trained size), shown below it.
    """

    kind: Kind
    text: str = ""
    notes: Tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.kind not in NOT_ERRORS

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    def plain(self) -> str:
        """Title and text on one line (for pop-ups and logs)."""
        return f"{self.title}: {self.text}" if self.text else self.title

    def markdown(self) -> str:
        """The message as the page shows it: the title in bold, then the text, then one line per note."""
        head = f"**{self.title}:** {self.text}" if self.text else f"**{self.title}**"
        return "\n\n".join([head, *(f"Note: {note}" for note in self.notes)])

    def with_text(self, extra: str) -> "Message":
        """The same message with `extra` appended to its text."""
        return Message(self.kind, f"{self.text} {extra}".strip(), self.notes)


def error_message(exc: BaseException) -> Message:
    """A Message for `exc` that tells the user what to do; unexpected errors are logged with their
    traceback and shown by type and message only. No server path reaches the text."""
    from ..inference import InferenceError, MissingCheckpointError, OutOfMemoryError
    from .uploads import UploadError

    if isinstance(exc, UploadError):
        return Message(Kind.BAD_UPLOAD, public_text(str(exc)))
    if isinstance(exc, MissingCheckpointError):
        return Message(Kind.MISSING_CHECKPOINT, missing_checkpoint_text(exc))
    if isinstance(exc, OutOfMemoryError):
        return Message(Kind.OUT_OF_MEMORY, public_text(str(exc)))
    if _is_torch_oom(exc):  # raised outside the pipeline's own translation (e.g. while loading)
        return Message(Kind.OUT_OF_MEMORY, f"{str(exc).splitlines()[0]}; {OutOfMemoryError.ADVICE}")
    if isinstance(exc, InferenceError):
        return Message(Kind.GENERATION_FAILED, public_text(str(exc)))
    if isinstance(exc, ValueError):
        return Message(Kind.INVALID_SETTING, public_text(str(exc)))
    logger.error("unexpected error in the demo", exc_info=exc)
    return Message(Kind.UNEXPECTED, public_text(f"{type(exc).__name__}: {exc}. The server log has the details."))


def missing_checkpoint_text(exc) -> str:
    """Which file to put where (a MissingCheckpointError in the page's terms)."""
    if exc.path.startswith("("):  # no path at all: the config names no checkpoint
        return ("the model's config names no weights file (sampling.checkpoint); restart the app with --ckpt "
                "(or --random-weights to try the page).")
    where = public_path(exc.path)
    if exc.official_name:
        source = f" (from {exc.source})" if exc.source else ""
        return (f"put the official file {exc.official_name}{source} at {where}, then press Load model (or "
                f"restart the app with --download to fetch it). Weights are downloaded only when asked.")
    return (f"no weights file at {where}; restart the app with --ckpt naming this config's weights "
            f"(or --random-weights to try the page).")


def _is_torch_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError)
