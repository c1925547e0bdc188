"""Captions for clips: a `<video>.txt` sidecar, or a user-given captioning callable."""
import importlib
import importlib.util
from pathlib import Path
from typing import Callable, List, Optional

__all__ = ["load_captioner", "sidecar_caption"]


def sidecar_caption(video_path: Path) -> Optional[str]:
    """The stripped text of `<video stem>.txt` next to the video, or None."""
    txt = Path(video_path).with_suffix(".txt")
    return txt.read_text().strip() if txt.is_file() else None


def load_captioner(spec: str) -> Callable[[List], str]:
    """Resolve `module.path:function` or `path/to/file.py:function` to the captioning callable.

    The callable receives a list of RGB `PIL.Image` frames of one clip and returns its caption; it may be a
    function or a class instance's bound method set up at import (e.g. a loaded BLIP/CoCa model).
    """
    if ":" not in spec:
        raise ValueError(f"caption.captioner must look like 'module:function' or 'file.py:function', got {spec!r}")
    target, name = spec.rsplit(":", 1)
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise ValueError(f"captioner file {target} does not exist")
        module_spec = importlib.util.spec_from_file_location(f"_curation_captioner_{Path(target).stem}", target)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise ValueError(f"captioner module {target!r} cannot be imported: {e}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ValueError(f"captioner {spec!r}: {target} has no callable {name!r}")
    return fn
