"""The text the page shows when something goes wrong, one place for every kind of error."""
import logging

logger = logging.getLogger(__name__)


def error_message(exc: BaseException) -> str:
    """A Markdown message for `exc` that tells the user what to do; unexpected errors are logged
    with their traceback and shown by type and message only."""
    from ..inference import InferenceError, MissingCheckpointError, OutOfMemoryError
    from .uploads import UploadError

    if isinstance(exc, UploadError):
        return f"**Bad upload:** {exc}"
    if isinstance(exc, MissingCheckpointError):
        return f"**Missing checkpoint:** {exc}"
    if isinstance(exc, OutOfMemoryError):
        return f"**Out of memory:** {exc}"
    if _is_torch_oom(exc):  # raised outside the pipeline's own translation (e.g. while loading)
        return f"**Out of memory:** {str(exc).splitlines()[0]}; {OutOfMemoryError.ADVICE}"
    if isinstance(exc, InferenceError):
        return f"**Generation failed:** {exc}"
    if isinstance(exc, ValueError):
        return f"**Invalid setting:** {exc}"
    logger.error("unexpected error in the demo", exc_info=exc)
    return f"**Unexpected error** ({type(exc).__name__}: {exc}). The server log has the details."


def _is_torch_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError)
