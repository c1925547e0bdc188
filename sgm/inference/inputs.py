"""Turning an --input_path (a file, a folder or a glob) into the list of images to process."""
import glob
import os
from pathlib import Path
from typing import List

from .images import is_image_path


def expand_inputs(spec: str) -> List[Path]:
    """Files named by `spec`, sorted: the file itself; a folder's files with an image suffix (any
    letter case, not recursive); or the matches of a glob pattern that have an image suffix (so
    'photos/*' skips a README as the folder would). A named file is returned even if its suffix is
    unusual, so that reading it reports the real problem. ValueError if nothing matches."""
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_image_path(p))
        if not files:
            raise ValueError(f"folder {path} holds no jpg/png/webp images")
        return files
    if glob.has_magic(spec):
        matches = [Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p)]
        files = sorted(p for p in matches if is_image_path(p))
        if not files:
            raise ValueError(f"no jpg/png/webp images match {spec!r}" + (f" ({len(matches)} other file(s) do)" if matches else ""))
        return files
    raise ValueError(f"input {spec!r} is not a file, a folder or a glob pattern that matches files")
