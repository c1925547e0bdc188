"""Interrupting a curation run and restarting it ends with the same shards as an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time

import pytest

from sgm.data.curation import pipeline
from sgm.data.curation.inputs import list_inputs
from tests.curation_helpers import REPO, make_inputs, quick_config, shard_members

NUM_VIDEOS = 9  # a, b, bad + 6 extra


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume") / "in"
    make_inputs(folder, extra_videos=NUM_VIDEOS - 3)
    return folder


def _cli(inputs, out, workers):
    return [sys.executable, str(REPO / "scripts" / "data" / "curate.py"), "run", str(inputs), "--out", str(out),
            "--workers", str(workers), "--no-progress", "--set", "output.shard_size=3"]


def _same_shards(a, b):
    """Every shard has the same members with the same bytes, mp4s included (the encoder is reproducible)."""
    members_a, members_b = shard_members(a / "shards"), shard_members(b / "shards")
    assert list(members_a) == list(members_b)
    for shard, members in members_a.items():
        assert [n for n, _ in members] == [n for n, _ in members_b[shard]], shard
        for (name, data), (_, other) in zip(members, members_b[shard]):
            assert data == other, f"{shard}/{name} differs"


def test_killed_run_restarts_to_byte_identical_shards(inputs, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    first = subprocess.run(_cli(inputs, full, 0), capture_output=True, text=True, timeout=300)
    assert first.returncode == 1, first.stderr  # bad.mp4 is unreadable: the run finishes, and says so

    # Kill the whole process group (SIGKILL: no clean-up) once a few videos are analysed.
    proc = subprocess.Popen(_cli(inputs, cut, 0), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = cut / "work" / "records"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and len(list(records.glob("*.json"))) < 3:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(records.glob("*.json")))
    assert 3 <= done_before < NUM_VIDEOS and not (cut / "shards").exists()

    # Restart (in parallel this time): finished videos are not redone, the result is identical.
    out = subprocess.run(_cli(inputs, cut, 2), capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr
    assert f"{done_before} already done" in out.stdout
    assert len(list(records.glob("*.json"))) == NUM_VIDEOS
    _same_shards(cut, full)
    assert (cut / "clips.jsonl").read_bytes() == (full / "clips.jsonl").read_bytes()
    keys = [n for m in shard_members(full / "shards").values() for n, _ in m if n.endswith(".json")]
    assert len(keys) == len(set(keys)) == 10  # 4 from a and b, one from each extra video; no duplicates


def test_interrupted_encoding_resumes_without_redoing_clips(inputs, tmp_path, monkeypatch):
    cfg = quick_config("output.shard_size=3")
    paths = list_inputs([inputs])
    pipeline.analyze_all(paths, tmp_path / "work", cfg, progress=False)
    reference = tmp_path / "reference"
    pipeline.build_shards(tmp_path / "work", reference, cfg, progress=False)
    # a second work folder with the same records, whose encoding is interrupted after three videos
    work = tmp_path / "work2"
    (work / "records").mkdir(parents=True)
    for record in (tmp_path / "work" / "records").glob("*.json"):
        (work / "records" / record.name).write_bytes(record.read_bytes())
    real_run, calls, interrupt = pipeline._run_tasks, [], [True]

    def interrupted_run(fn, tasks, *args, **kwargs):  # the encode stage stops after three finished videos
        if fn is not pipeline._encode_task:
            yield from real_run(fn, tasks, *args, **kwargs)
            return
        calls.extend(task[0] for task in tasks)
        for done, result in enumerate(real_run(fn, tasks, *args, **kwargs), 1):
            yield result
            if done == 3 and interrupt[0]:
                interrupt[0] = False
                raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_run_tasks", interrupted_run)
    with pytest.raises(KeyboardInterrupt):
        pipeline.build_shards(work, tmp_path / "out", cfg, progress=False)
    encoded = {p.name: p.read_bytes() for p in (work / "clips").rglob("*.mp4")}
    assert encoded and not (tmp_path / "out" / "shards").exists()
    assert len(calls) == 8  # 8 videos have kept clips
    calls.clear()
    pipeline.build_shards(work, tmp_path / "out", cfg, progress=False)
    assert 0 < len(calls) <= 8 - 3  # the videos finished before the interruption are not encoded again
    _same_shards(tmp_path / "out", reference)
    members = {n: b for m in shard_members(tmp_path / "out" / "shards").values() for n, b in m}
    # clips from before the interruption (cached as <clip_id>_<start>-<end>.mp4)
    assert all(members[name.rsplit("_", 1)[0] + ".mp4"] == data for name, data in encoded.items())


def test_reanalysed_clips_are_encoded_again(tmp_path):
    """Other cut settings give clip ids new frame spans; the clip cache must not hand back the old files."""
    import io
    import json

    import av

    from sgm.data.curation.synthetic import write_scene_video

    write_scene_video(tmp_path / "in" / "v.mp4", [("moving", 30), ("moving", 30)], seed=3)

    def curate(*overrides):
        cfg = quick_config("filters.min_duration=null", *overrides)
        pipeline.analyze_all([tmp_path / "in" / "v.mp4"], tmp_path / "work", cfg, progress=False)
        pipeline.build_shards(tmp_path / "work", tmp_path / "out", cfg, progress=False)
        members = {n: b for m in shard_members(tmp_path / "out" / "shards").values() for n, b in m}
        spans = []
        for name, data in sorted(members.items()):
            if name.endswith(".json"):
                meta = json.loads(data)
                with av.open(io.BytesIO(members[name[: -len(".json")] + ".mp4"])) as container:
                    spans.append((meta["num_frames"], sum(1 for _ in container.decode(video=0))))
        return spans

    assert curate() == [(30, 30), (30, 30)]
    assert curate("cuts.content=null", "cuts.threshold=null") == [(60, 60)]  # clip 0 now spans the whole video
