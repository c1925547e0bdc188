"""The whole curation run on a folder: corrupt files, shards (contract 1), summary, re-filtering, options."""
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from sgm.data.curation.inputs import list_inputs, select_shard
from sgm.data.curation.pipeline import analyze_all, build_shards
from tests.curation_helpers import REPO, make_inputs, quick_config, shard_members

CONTRACT_KEYS = {"fps": float, "num_frames": int, "width": int, "height": int, "duration": float, "caption": str,
                 "motion_score": float, "motion_bucket_id": int}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("curated")
    make_inputs(root / "in")
    cfg = quick_config()
    counts = analyze_all(list_inputs([root / "in"]), root / "work", cfg, progress=False)
    summary = build_shards(root / "work", root / "out", cfg, progress=False)
    return root, counts, summary


def test_corrupt_file_is_reported_and_the_rest_processed(curated, caplog):
    root, counts, summary = curated
    assert counts == {"analysed": 3, "skipped_done": 0, "unreadable": 1, "clips": 6}
    assert summary["videos"]["unreadable"] == 1 and summary["videos"]["truncated"] == []  # whole videos are not "truncated"
    (error,) = summary["videos"]["errors"]
    assert error["path"].endswith("bad.mp4") and error["error"]
    assert "bad.mp4" in (root / "out" / "summary.md").read_text()
    # a: moving | static (dropped: low motion, static) | text (dropped: text) | moving; b: two moving clips
    assert summary["clips"] == {"total": 6, "kept": 4, "dropped": 2}
    assert summary["filters"]["text"]["dropped_by_this_alone"] == 1
    assert summary["filters"]["static"]["dropped"] == 1 and summary["filters"]["low_motion"]["dropped"] == 1


def test_shards_follow_the_shard_contract(curated):
    import av

    root, _, summary = curated
    shards = shard_members(root / "out" / "shards")
    assert list(shards) == ["shard-000000.tar", "shard-000001.tar"]  # shard_size=2, 4 kept clips
    for members in shards.values():
        names = [n for n, _ in members]
        keys = sorted({n.split(".", 1)[0] for n in names})
        assert sorted(names) == sorted([f"{k}.mp4" for k in keys] + [f"{k}.json" for k in keys])
        data = dict(members)
        for key in keys:
            meta = json.loads(data[f"{key}.json"])
            for name, kind in CONTRACT_KEYS.items():
                assert isinstance(meta[name], kind), (name, meta[name])
            assert 0 <= meta["motion_bucket_id"] <= 255
            with av.open(io.BytesIO(data[f"{key}.mp4"])) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            assert len(frames) == meta["num_frames"] == meta["end_frame"] - meta["start_frame"]
            assert frames[0].shape == (meta["height"], meta["width"], 3)
            assert meta["fps"] == 12.0 and meta["duration"] == pytest.approx(meta["num_frames"] / 12.0)
            if key.startswith("b-"):
                assert meta["caption"] == "a slowly panning colourful texture"
    mapping = json.loads((root / "out" / "motion_buckets.json").read_text())
    assert mapping["method"] == "quantile" and len(mapping["edges"]) == 255 and mapping["num_fitted"] == 4
    for name in ("motion_score.png", "frame_diff.png", "text_area.png", "duration.png", "motion_bucket_id_kept.png"):
        assert (root / "out" / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_shard_step_refilters_stored_scores_without_reanalysis(curated):
    root, _, _ = curated
    before = {p: p.stat().st_mtime_ns for p in (root / "work" / "records").glob("*.json")}
    cfg = quick_config("filters.max_text_area=null", "buckets.method=linear", "output.max_short_side=64")
    summary = build_shards(root / "work", root / "out2", cfg, progress=False)
    assert summary["clips"]["kept"] == 5 and "text" not in summary["filters"]
    assert {p: p.stat().st_mtime_ns for p in (root / "work" / "records").glob("*.json")} == before
    metas = [json.loads(b) for m in shard_members(root / "out2" / "shards").values() for n, b in m if n.endswith(".json")]
    assert len(metas) == 5 and {(m["width"], m["height"]) for m in metas} == {(108, 64)}
    assert all(m["motion_bucket_id"] == min(255, round(m["motion_score"] * 127)) for m in metas)


def test_input_lists_and_job_array_split(tmp_path, curated):
    root, _, _ = curated
    lst = tmp_path / "list.txt"
    lst.write_text(f"# videos\n{root / 'in' / 'b.mp4'}\n\n{root / 'in' / 'a.mp4'}\n")
    paths = list_inputs([lst, root / "in" / "a.mp4"])
    assert [p.name for p in paths] == ["a.mp4", "b.mp4"]
    everything = list_inputs([root / "in"])
    parts = [select_shard(everything, i, 2) for i in range(2)]
    assert sorted(parts[0] + parts[1]) == everything and not set(parts[0]) & set(parts[1])
    with pytest.raises(ValueError, match="does not exist"):
        list_inputs([tmp_path / "missing"])


def test_optional_clip_scores_and_captioner(tmp_path, curated):
    """CLIP scores from a local (tiny, random) open_clip checkpoint + a linear head, captions from a callable."""
    import open_clip
    import torch

    from sgm.data.curation.analyze import analyze_video

    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 32},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1}}
    (tmp_path / "tiny_curation_clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(str(tmp_path / "tiny_curation_clip.json"))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny_curation_clip", pretrained=None)
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    torch.save({"weight": torch.randn(1, 16), "bias": torch.zeros(1)}, tmp_path / "head.pt")
    (tmp_path / "captioner.py").write_text(
        "def caption(frames):\n    return f'a clip of {frames[0].size[0]}x{frames[0].size[1]} pixels'\n")
    cfg = quick_config(f"clip.model={tmp_path / 'tiny_curation_clip.json'}", f"clip.weights={tmp_path / 'clip.pt'}",
                       f"clip.aesthetic_head={tmp_path / 'head.pt'}", "caption.sidecar=false",
                       f"caption.captioner={tmp_path / 'captioner.py'}:caption", "filters.min_clip_similarity=-1.0")
    record = analyze_video(curated[0] / "in" / "b.mp4", cfg)
    for clip in record["clips"]:
        assert clip["caption"] == "a clip of 192x112 pixels"
        assert np.isfinite(clip["scores"]["clip_aesthetic"])
        assert -1.0 <= clip["scores"]["clip_similarity"] <= 1.0
    with pytest.raises(ValueError, match="does not exist"):
        analyze_video(curated[0] / "in" / "b.mp4", quick_config(f"clip.weights={tmp_path / 'nope.pt'}"))


def test_cli_reports_bad_config_values(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "data" / "curate.py"), "shard", "--out", str(tmp_path),
                          "--set", "buckets.method=cubic"], capture_output=True, text=True)
    assert out.returncode == 2 and "buckets.method" in out.stderr


def test_job_array_tasks_then_shard_step_match_a_single_run(curated, tmp_path, capsys):
    """Two `analyze --shard-index i --num-shards 2` tasks sharing a work folder, then `shard`, equal `run`."""
    from scripts.data.curate import main

    root, _, _ = curated
    common = ["--workers", "0", "--no-progress", "--set", "output.shard_size=2"]
    statuses = [main(["analyze", str(root / "in"), "--out", str(tmp_path / "array"), "--shard-index", str(i),
                      "--num-shards", "2", *common]) for i in range(2)]
    assert statuses == [1, 0]  # task 0 has a.mp4 and the unreadable bad.mp4 (exit 1), task 1 b.mp4
    assert len(list((tmp_path / "array" / "work" / "records").glob("*.json"))) == 3
    assert main(["shard", "--out", str(tmp_path / "array"), *common]) == 1  # the summary lists bad.mp4
    assert "clips kept 4 of 6" in capsys.readouterr().out

    def names_and_json(folder):
        return {s: [(n, b if n.endswith(".json") else None) for n, b in m] for s, m in shard_members(folder).items()}

    assert names_and_json(tmp_path / "array" / "shards") == names_and_json(root / "out" / "shards")
    assert (tmp_path / "array" / "motion_buckets.json").read_text() == (root / "out" / "motion_buckets.json").read_text()


def test_benchmark_script_reports_throughput(tmp_path, capsys):
    from scripts.data.bench_curation import main

    assert main(["--videos", "2", "--seconds", "5", "--scene-seconds", "2.5", "--size", "112x192", "--fps", "12",
                 "--workers", "0", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "videos/s" in out and "clips/s" in out and "(clips 4, kept" in out
    kept = int(out.split("(clips 4, kept ")[1].split(")")[0])
    members = [n for m in shard_members(tmp_path / "out" / "shards").values() for n, _ in m if n.endswith(".json")]
    assert len(members) == kept


def test_temporary_clips_of_a_killed_run_are_removed(curated, tmp_path):
    """A SIGKILLed encode leaves `.<clip>.mp4.<pid>.tmp` in the clip cache; the next shard step deletes it."""
    from sgm.data.curation.pipeline import _clip_cache

    root, _, _ = curated
    cfg = quick_config()
    work = tmp_path / "work"
    (work / "records").mkdir(parents=True)
    for record in (root / "work" / "records").glob("*.json"):
        (work / "records" / record.name).write_bytes(record.read_bytes())
    cache = _clip_cache(work, cfg)
    cache.mkdir(parents=True)
    stale = cache / ".a-0123456789_0000_0-36.mp4.4242.tmp"
    stale.write_bytes(b"half an mp4")
    build_shards(work, tmp_path / "out", cfg, progress=False)
    assert not stale.exists() and not list(cache.glob("*.tmp"))
    assert len(list(cache.glob("*.mp4"))) == 4


def test_cli_refuses_an_empty_ray_address(curated, tmp_path, capsys):
    from scripts.data.curate import main

    root, _, _ = curated
    assert main(["run", str(root / "in"), "--out", str(tmp_path), "--ray-address", " "]) == 2
    assert "--ray-address is empty" in capsys.readouterr().err
