"""The analysis journal: one JSON record per video, written atomically, and deterministic ids.

A record file exists only once its video is fully analysed (written to a temporary name, then renamed), so an
interrupted run leaves either a complete record or none; restarting skips videos whose record exists with the
same analysis fingerprint. Clip ids derive from the video path and the clip's index, so a re-analysed video
gets the same ids and shards never hold a clip twice.
"""
import hashlib
import json
import os
import re
import socket
from pathlib import Path
from typing import Iterator, Optional, Union

__all__ = ["video_id", "clip_id", "record_path", "write_record", "read_record", "iter_records", "atomic_write_bytes"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def video_id(path: Union[str, Path]) -> str:
    """`<sanitised stem>-<10 hex of sha1(absolute path)>`: readable, unique per path, free of dots
    (webdataset splits a member name at its first dot)."""
    path = Path(path).resolve()
    stem = _UNSAFE.sub("_", path.stem)[:40].strip("_") or "video"
    return f"{stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"


def clip_id(vid: str, index: int) -> str:
    """The key of clip `index` (0-based, in time order) of video `vid`."""
    return f"{vid}_{index:04d}"


def record_path(work_dir: Union[str, Path], vid: str) -> Path:
    return Path(work_dir) / "records" / f"{vid}.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers (and a restarted run) never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")  # unique across array tasks
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_record(work_dir: Union[str, Path], record: dict) -> Path:
    path = record_path(work_dir, record["video_id"])
    atomic_write_bytes(path, json.dumps(record, sort_keys=True, indent=1).encode())
    return path


def read_record(work_dir: Union[str, Path], vid: str) -> Optional[dict]:
    path = record_path(work_dir, vid)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def iter_records(work_dir: Union[str, Path]) -> Iterator[dict]:
    """All complete records, sorted by video id (temporary files of interrupted writes are ignored)."""
    folder = Path(work_dir) / "records"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        yield json.loads(path.read_text())

