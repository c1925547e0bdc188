"""Synthetic inputs for the curation tests: small scene videos, a corrupt file and a quick config."""
from pathlib import Path
from typing import Sequence

from sgm.data.curation.config import CurationConfig, load_config
from sgm.data.curation.synthetic import write_scene_video

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "curation" / "default.yaml"

# a.mp4: moving | static | text | moving -> cuts at 36, 72, 108
SCENES_A = [("moving", 36), ("static", 36), ("text", 36), ("moving", 30)]
SCENES_B = [("moving", 40), ("moving", 30)]


def quick_config(*overrides: str) -> CurationConfig:
    """The shipped defaults, in-process (workers=0), with small shards so several are written."""
    return load_config(DEFAULT_CONFIG, ["workers=0", "output.shard_size=2", *overrides])


def make_inputs(folder: Path, extra_videos: int = 0) -> dict:
    """a.mp4, b.mp4 (+ b.txt caption), bad.mp4 (not a video) and `extra_videos` short moving videos."""
    folder.mkdir(parents=True, exist_ok=True)
    cuts_a = write_scene_video(folder / "a.mp4", SCENES_A, seed=1)
    write_scene_video(folder / "b.mp4", SCENES_B, seed=2)
    (folder / "b.txt").write_text("a slowly panning colourful texture\n")
    (folder / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not really a video" * 50)
    for i in range(extra_videos):
        write_scene_video(folder / f"extra{i:02d}.mp4", [("moving", 30)], seed=10 + i)
    return {"cuts_a": cuts_a}


def shard_members(shard_dir: Path) -> dict:
    """{shard name: [(member name, bytes), ...]} for every shard in `shard_dir`."""
    import tarfile

    out = {}
    for path in sorted(shard_dir.glob("shard-*.tar")):
        with tarfile.open(path) as tar:
            out[path.name] = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    return out


def clip_ids_in(shard_dir: Path) -> Sequence[str]:
    return [name[: -len(".json")] for members in shard_members(shard_dir).values() for name, _ in members if name.endswith(".json")]
