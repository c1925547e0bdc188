"""The input list: a folder searched for videos, a text file of paths, or explicit files; split for job arrays."""
from pathlib import Path
from typing import List, Sequence, Union

__all__ = ["VIDEO_EXTENSIONS", "list_inputs", "select_shard"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv")


def list_inputs(sources: Sequence[Union[str, Path]]) -> List[Path]:
    """Sorted, de-duplicated absolute video paths from folders (recursive), `.txt` lists and files.

    A `.txt` source holds one path per line (blank lines and `#` comments ignored; relative paths are relative
    to the list file). Raises ValueError for a source that does not exist.
    """
    found = set()
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found.update(p.resolve() for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        elif source.is_file() and source.suffix.lower() == ".txt":
            for line in source.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    p = Path(line)
                    found.add((p if p.is_absolute() else source.parent / p).resolve())
        elif source.is_file():
            found.add(source.resolve())
        else:
            raise ValueError(f"input {source} does not exist (give folders, video files or .txt lists of paths)")
    return sorted(found)


def select_shard(paths: Sequence[Path], shard_index: int, num_shards: int) -> List[Path]:
    """Every `num_shards`-th path starting at `shard_index` (one Slurm array task's share of the sorted list)."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards, got shard_index={shard_index}, num_shards={num_shards}")
    return list(paths[shard_index::num_shards])
