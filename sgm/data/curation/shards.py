"""Webdataset shards (project shard contract 1): `<clip_id>.mp4` + `<clip_id>.json` per clip.

Tar headers carry a fixed mtime, owner and mode, and samples are written in sorted clip-id order, so the same
kept clips always give byte-identical shards, however the analysis was scheduled or interrupted.
"""
import io
import json
import tarfile
from pathlib import Path
from typing import List, Optional, Sequence

__all__ = ["SHARD_PATTERN", "sample_json", "write_shards"]

SHARD_PATTERN = "shard-{:06d}.tar"
_TAR_MTIME = 1_700_000_000


def sample_json(clip: dict, record: dict, width: int, height: int, motion_bucket_id: int) -> dict:
    """The `<key>.json` of a clip: the contract fields plus every stored score and the clip's provenance."""
    fps = record["info"]["fps"]
    scores = {k: v for k, v in clip["scores"].items() if v is not None}
    return {
        **scores,
        "fps": float(fps),
        "num_frames": int(clip["num_frames"]),
        "width": int(width),
        "height": int(height),
        "duration": float(clip["num_frames"] / fps),
        "caption": clip["caption"],
        "motion_score": float(clip["scores"].get("motion_score") or 0.0),
        "motion_bucket_id": int(motion_bucket_id),
        "source": record["path"],
        "start_frame": int(clip["start_frame"]),
        "end_frame": int(clip["end_frame"]),
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = len(data), _TAR_MTIME, 0o644, 0, 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_shards(samples: Sequence[dict], out_dir: Path, shard_size: int, shard_max_bytes: Optional[int]) -> List[Path]:
    """Write `samples` (dicts with `key`, `mp4_path`, `json`; any order) into shards under `out_dir`.

    A shard closes after `shard_size` samples or once it exceeds `shard_max_bytes`. Each shard is written to
    a temporary name and renamed; shards left over from an earlier run with more shards are removed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = sorted(samples, key=lambda s: s["key"])
    written: List[Path] = []
    tar, tmp, count, size = None, None, 0, 0

    def close() -> None:
        tar.close()
        final = out_dir / SHARD_PATTERN.format(len(written))
        tmp.replace(final)
        written.append(final)

    for sample in samples:
        if tar is None:
            tmp = out_dir / f".{SHARD_PATTERN.format(len(written))}.tmp"
            tar, count, size = tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT), 0, 0
        mp4 = Path(sample["mp4_path"]).read_bytes()
        meta = json.dumps(sample["json"], sort_keys=True).encode()
        _add(tar, f"{sample['key']}.mp4", mp4)
        _add(tar, f"{sample['key']}.json", meta)
        count, size = count + 1, size + len(mp4) + len(meta)
        if count >= shard_size or (shard_max_bytes is not None and size >= shard_max_bytes):
            close()
            tar = None
    if tar is not None:
        close()
    for stale in sorted(out_dir.glob("shard-*.tar")):
        if stale not in written:
            stale.unlink()
    return written
