"""How the page names files on the server: never by an absolute path.

Anyone who reaches the page (with `--share`, anyone with the link) reads its text, so a server path
such as /home/alice/models/svd_xt.safetensors would tell them about the server's folders. The page
names a file relative to the working folder or the repository when it lies inside one of them
(`checkpoints/svd_xt.safetensors`, which says where to put a missing file), and by its name alone
otherwise. Outputs are named relative to the output folder.
"""
import os
import re
from pathlib import Path
from typing import Union

from ..inference.checkpoints import REPO_ROOT

# An absolute POSIX path inside a message: a "/" that does not continue a word, a URL or another path.
_ABSOLUTE = re.compile(r"(?<![\w:/.~-])/[^\s`'\"()\[\]{}<>,;]+")


def public_path(path: Union[str, os.PathLike]) -> str:
    """`path` as the page shows it: relative to the working folder or the repository, else its name."""
    if not os.path.isabs(path) and ".." not in Path(path).parts:
        return Path(path).as_posix()
    full = Path(os.path.abspath(path))
    for root in (Path.cwd(), REPO_ROOT):
        if full.is_relative_to(root) and full != root:
            return full.relative_to(root).as_posix()
    return full.name


def public_text(text: str) -> str:
    """`text` (e.g. an exception's message) with every absolute path replaced by its public form."""
    def public(match: "re.Match") -> str:
        token = match.group(0)
        core = token.rstrip(".:")  # sentence punctuation after the path stays
        return public_path(core) + token[len(core):]

    return _ABSOLUTE.sub(public, text)
