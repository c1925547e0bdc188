"""What the page's events do, without Gradio: each handler takes plain values and returns plain
values plus a typed `Message`, so it can be tested directly and never lets an error escape."""
import logging
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from PIL import Image

from .form import FormValues
from .messages import Kind, Message, error_message
from .models import ModelChoice, ModelSlot
from .outputs import downloads, write_outputs
from .preview import draw_crop_preview
from .uploads import read_upload

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


class _ImageCache:
    """The last few decoded uploads by path, so moving a crop slider does not decode the file again.
    size: how many to keep (each up to 64 MP x 3 bytes)."""

    def __init__(self, size: int = 2):
        self.size = size
        self._items: "OrderedDict[str, Image.Image]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> Image.Image:
        with self._lock:
            if path in self._items:
                self._items.move_to_end(path)
                return self._items[path]
        image = read_upload(path)
        with self._lock:
            self._items[path] = image
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return image


class DemoHandlers:
    """The demo's behaviour behind the page.

    slot: the ModelSlot holding the loaded pipeline. choices: the model menu (the first is the
    model the app started with). output_folder: where each generation's files are written.
    concurrency: generations (and model loads) allowed to run at once.
    """

    def __init__(self, slot: ModelSlot, choices: Sequence[ModelChoice], output_folder: str, concurrency: int = 1):
        self.slot = slot
        self.concurrency = concurrency
        self.choices = list(choices)
        self.output_folder = output_folder
        self._images = _ImageCache()

    # -- model menu ---------------------------------------------------------------------------
    def menu(self) -> List[Tuple[str, str]]:
        """(label, key) pairs for the model dropdown; the key is the index in `choices`."""
        return [(c.label, str(i)) for i, c in enumerate(self.choices)]

    def selected_key(self) -> str:
        """The menu key of the model in the slot (the launch model if none was loaded yet)."""
        return str(self.choices.index(self.slot.choice)) if self.slot.choice in self.choices else "0"

    def defaults(self, choice: Optional[ModelChoice] = None):
        """SamplingOptions defaults of `choice` (default: the slot's): the loaded pipeline's, or read
        from the config when the model is not loaded."""
        choice = choice or self.slot.choice or self.choices[0]
        if self.slot.pipe is not None and self.slot.choice == choice:
            return self.slot.pipe.defaults
        from ..inference.options import defaults_from_config
        from ..inference.pipeline import read_config

        return defaults_from_config(read_config(choice.config_path, choice.config_path))

    def load_model(self, key: str) -> Tuple[Message, object]:
        """Load the menu entry `key`; returns (status message, the default SamplingOptions of the
        model now in the slot, or of `key`'s model when none is loaded)."""
        try:
            choice = self.choices[int(key)]
        except (TypeError, ValueError, IndexError):
            return Message(Kind.UNKNOWN_CHOICE, f"{key!r}; pick one from the menu."), self.defaults()
        if self.slot.pipe is not None and not self.slot.load_kwargs.get("download"):
            # A missing file is found before the loaded model is given up for it (unless it may be downloaded).
            from ..inference import MissingCheckpointError

            try:
                choice.check_checkpoint()
            except MissingCheckpointError as e:
                return error_message(e).with_text(f"Still loaded: {self.slot.choice.label}."), self.defaults()
        try:
            self.slot.load(choice)
        except Exception as e:  # noqa: BLE001 - shown in the page; the app keeps serving
            return error_message(e), self.defaults(choice)
        return self.slot.status(), self.defaults(choice)

    # -- crop preview -------------------------------------------------------------------------
    def preview(self, path: Optional[str], width: float, height: float, crop_x: float, crop_y: float):
        """(crop preview, exact model input, message or None) for the upload at `path`; (None, None,
        None) without one."""
        if not path:
            return None, None, None
        try:
            from ..inference import SamplingOptions
            from ..inference.images import cover_and_crop

            image = self._images.get(path)
            opts = SamplingOptions(width=int(width), height=int(height), crop_offset=(float(crop_x), float(crop_y)))
            opts.validate()  # the pipeline's own rules for size and offset
            framed = draw_crop_preview(image, opts.width, opts.height, opts.crop_offset)
            # `image` is already RGB, so this is exactly `pipe.prepare_image` (tested).
            return framed, cover_and_crop(image, opts.width, opts.height, opts.crop_offset), None
        except Exception as e:  # noqa: BLE001 - shown in the page
            return None, None, error_message(e)

    # -- generation ---------------------------------------------------------------------------
    def generate(self, path: Optional[str], values: FormValues, formats: Sequence[str] = (),
                 progress: Optional[Progress] = None) -> Tuple[Optional[str], Optional[List[str]], Message]:
        """(mp4 path, download paths, message) for one video; (None, None, error message) on failure."""
        try:
            image = read_upload(path)
            opts = values.to_options()
            pipe = self.slot.pipe
            if pipe is None:
                pipe = self.slot.load(self.slot.choice or self.choices[0])
            opts = fit_overlap(opts.filled(pipe.defaults))
            # NOTE: catch_warnings swaps process-wide state; generations are serialised by the queue
            # (concurrency 1 by default), so the notes caught are this generation's.
            logger.info("generation started (seed %d, %d frames)", opts.seed, opts.num_frames)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = pipe.generate(image, opts, progress=progress)
            logger.info("generation finished (seed %d)", opts.seed)
            paths = write_outputs(result, self.output_folder, opts.seed, formats)
        except Exception as e:  # noqa: BLE001 - shown in the page; the app keeps serving
            _release_cached_memory()  # what the failed attempt held, so the next one can fit
            return None, None, error_message(e).with_text("No video was made.")
        files = downloads(paths)
        notes = tuple(dict.fromkeys(str(w.message) for w in caught if is_library_note(w)))
        for note in notes:  # e.g. sampling off the trained size
            logger.warning(note)
        # Named relative to the output folder: the page never shows a server path.
        text = (f"{len(result.frames)} frames at {result.fps} fps, seed {opts.seed}. Saved with its settings as "
                f"{Path(paths['mp4']).stem}.* in the output folder.")
        return str(paths["mp4"]), files, Message(Kind.DONE, text, notes)


def fit_overlap(opts):
    """`opts` with a decoding overlap that fits its decoding_t. The page offers no overlap control,
    so the largest overlap up to the model's default that `decoding_t` allows is used without a note
    (`sgm.inference.decoding.effective_overlap` would lower it with a warning)."""
    from dataclasses import replace

    from ..inference.decoding import effective_overlap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        overlap = effective_overlap(opts.num_frames, opts.decoding_t, opts.decoding_overlap)
    return replace(opts, decoding_overlap=overlap)


def is_library_note(record: warnings.WarningMessage) -> bool:
    """Whether a caught warning is a note of the sampling library about the settings (shown in the
    page), not some other package's remark (left to the server log)."""
    import sgm

    return issubclass(record.category, UserWarning) and Path(record.filename).is_relative_to(Path(sgm.__file__).parent)


def _release_cached_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
