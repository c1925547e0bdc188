"""sgm.media: every mp4 the project writes is faststart, and the same frames give the same bytes whatever the
process did before (earlier encodes, heap history, the size of its environment)."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from tests.curation_helpers import REPO


def top_level_boxes(data: bytes) -> list:
    """The types of an mp4's top-level boxes, in file order."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:  # 64-bit size after the type
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def assert_faststart(data: bytes, what: str) -> None:
    boxes = top_level_boxes(data)
    assert "moov" in boxes and "mdat" in boxes, (what, boxes)
    assert boxes.index("moov") < boxes.index("mdat"), f"{what}: moov after mdat ({boxes})"


def test_every_mp4_writer_is_faststart(tmp_path):
    from sgm.data.curation.config import OutputConfig
    from sgm.data.curation.encode import encode_clips
    from sgm.data.curation.synthetic import write_scene_video
    from sgm.data.synthetic import encode_mp4
    from sgm.inference.result import VideoResult
    from sgm.inference.writers import write_mp4, write_video

    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    # the sampler and the demo (write_video), the training video logger (write_mp4)
    paths = write_video(VideoResult(frames=frames, fps=7, settings={}), tmp_path / "sample", ("mp4",))
    assert_faststart(paths["mp4"].read_bytes(), "write_video")
    write_mp4(frames, tmp_path / "logger.mp4", 7)
    assert_faststart((tmp_path / "logger.mp4").read_bytes(), "write_mp4")
    # toy shards (bytes in memory) and synthetic raw videos
    assert_faststart(encode_mp4(frames, 12.0), "encode_mp4")
    write_scene_video(tmp_path / "raw.mp4", [("moving", 12)], height=32, width=48)
    assert_faststart((tmp_path / "raw.mp4").read_bytes(), "curation synthetic video")
    # curated clips
    clips = encode_clips(tmp_path / "raw.mp4", [{"clip_id": "c", "start_frame": 2, "end_frame": 10}], tmp_path / "clips",
                         OutputConfig())
    assert_faststart(clips["c"].read_bytes(), "curated clip")


# Frames that libx264's macroblock tree encoded to 3-4 different files in 4 encodes before the fix (86x66, 32 frames
# of blocky noise drifting brighter); each encode follows a different heap history and another encode.
_CHILD = r"""
import hashlib, json, sys
from pathlib import Path
import numpy as np
from sgm.data.curation.config import OutputConfig
from sgm.data.curation.encode import encode_clips
from sgm.inference.writers import write_mp4

folder, reps, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(11)
h, w, t = 66, 86, 32
base = rng.integers(0, 255, (1, h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
frames = np.repeat(np.repeat(base, 4, 1), 4, 2)[:, :h, :w] + rng.normal(0, 30, (t, h, w, 3))
frames = np.clip(frames + 5 * np.arange(t)[:, None, None, None], 0, 255).astype(np.uint8)
history, kept, out = np.random.default_rng(seed), [], {"sampler": [], "curated": []}
for i in range(reps):
    kept.append(np.ones(int(history.integers(1, 200_000)), np.uint8))  # another heap before each encode
    write_mp4(history.integers(0, 255, (3, 64, 96, 3), dtype=np.uint8), folder / "other.mp4", 7)
    write_mp4(frames, folder / f"{i}.mp4", 7)
    out["sampler"].append(hashlib.sha1((folder / f"{i}.mp4").read_bytes()).hexdigest())
    clip = {"clip_id": f"c{i}", "start_frame": 3, "end_frame": 29}
    path = encode_clips(Path(sys.argv[4]), [clip], folder / "clips", OutputConfig())[clip["clip_id"]]
    out["curated"].append(hashlib.sha1(path.read_bytes()).hexdigest())
print(json.dumps(out))
"""


@pytest.mark.slow
def test_same_frames_give_the_same_bytes_whatever_the_process_did_before(tmp_path):
    from sgm.data.curation.synthetic import write_video

    # a source whose clip 3-29 the old curation encoder gave 3 different files in 4 encodes in one process
    rng = np.random.default_rng(6)
    h, w, _ = 2 * int(rng.integers(20, 120)), 2 * int(rng.integers(20, 200)), rng.integers(5, 40)  # 128x232
    base = rng.integers(0, 255, (1, h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    source = np.repeat(np.repeat(base, 4, 1), 4, 2)[:, :h, :w] + rng.normal(0, 30, (32, h, w, 3))
    source = np.clip(source + 5 * np.arange(32)[:, None, None, None], 0, 255).astype(np.uint8)
    write_video(tmp_path / "source.mp4", source, 12.0)
    runs = []
    for name, seed, env_padding in (("a", 1, ""), ("b", 2, "x" * 5000)):
        folder = tmp_path / name
        folder.mkdir()
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
               "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", "") + env_padding}
        runs.append(subprocess.Popen([sys.executable, "-c", _CHILD, str(folder), "3", str(seed), str(tmp_path / "source.mp4")],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in runs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    for kind in ("sampler", "curated"):
        hashes = [h for r in results for h in r[kind]]
        assert len(set(hashes)) == 1, f"{kind}: {len(set(hashes))} different files from {len(hashes)} encodes"


def test_writer_refuses_odd_sizes_and_unknown_containers(tmp_path):
    from sgm.media import VideoWriter

    with pytest.raises(ValueError, match="even width and height"):
        VideoWriter(tmp_path / "a.mp4", 7, 31, 32)
    with pytest.raises(ValueError, match="unknown video container"):
        VideoWriter(tmp_path / "a.avi", 7, 32, 32)


def test_rotation_tag_round_trips(tmp_path):
    """The writer's display-matrix tag is what the readers turn frames by (see test_media_read.py)."""
    import av

    from sgm.media import VideoWriter

    with VideoWriter(tmp_path / "r.mp4", 7, 32, 16, rotation=-90) as writer:
        writer.write_rgb(np.zeros((16, 32, 3), np.uint8))
    with av.open(str(tmp_path / "r.mp4")) as container:
        assert next(container.decode(video=0)).rotation == -90
