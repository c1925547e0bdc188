"""Where the files of one generation go and what the page offers for download."""
import itertools
import time
from pathlib import Path
from typing import Dict, List, Sequence

# Order of the download list: the video players understand first, then the settings.
DOWNLOAD_ORDER = ("mp4", "gif", "webp", "webm", "json")


def output_stem(folder: str, seed: int) -> Path:
    """A fresh `<folder>/<UTC time>_seed<seed>[_<n>]` (no extension) that no earlier output uses.

    The stem is reserved by creating its `.json` exclusively (the settings sidecar later replaces
    it), so two generations finishing in the same second never share a name.
    """
    base = Path(folder) / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}_seed{seed}"
    for n in itertools.count():
        stem = base if n == 0 else base.with_name(f"{base.name}_{n}")
        if any(stem.parent.glob(stem.name + ".*")):
            continue
        try:
            stem.with_name(stem.name + ".json").open("x").close()
        except FileExistsError:
            continue
        return stem
    raise AssertionError("unreachable")


def write_outputs(result, folder: str, seed: int, formats: Sequence[str]) -> Dict[str, Path]:
    """Write `result` (a VideoResult) as mp4 plus `formats`, with the settings JSON beside it, under
    a name carrying the `seed` the user chose."""
    from ..inference import write_video

    Path(folder).mkdir(parents=True, exist_ok=True)
    wanted = ("mp4",) + tuple(f for f in formats if f != "mp4")
    return write_video(result, str(output_stem(folder, seed)), formats=wanted)


def downloads(paths: Dict[str, Path]) -> List[str]:
    """The files offered for download, in DOWNLOAD_ORDER (the input copy and frame folders left out)."""
    return [str(paths[k]) for k in DOWNLOAD_ORDER if k in paths and Path(paths[k]).is_file()]
