"""Curation on a Ray cluster: a local two-CPU Ray runs the same per-video tasks with Ray Data and ends with the
same shards, byte for byte, as the local process pool; the CLI's --ray does the same."""
import pytest

from sgm.data.curation.inputs import list_inputs
from sgm.data.curation.pipeline import analyze_all, build_shards
from tests.curation_helpers import make_inputs, quick_config, shard_members

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

pytestmark = pytest.mark.slow  # starting Ray takes 20-40 s on a 2-core machine


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    make_inputs(root / "in", extra_videos=2)
    cfg = quick_config("output.shard_size=3")
    counts = analyze_all(list_inputs([root / "in"]), root / "work", cfg, progress=False)
    build_shards(root / "work", root / "out", cfg, progress=False)
    return root, counts


def _all_members(folder):
    return {shard: list(members) for shard, members in shard_members(folder).items()}


def test_ray_data_run_gives_the_local_runs_shards(cluster, local_run, tmp_path):
    root, local_counts = local_run
    cfg = quick_config("output.shard_size=3")
    counts = analyze_all(list_inputs([root / "in"]), tmp_path / "work", cfg, progress=False, ray=True)
    assert counts == local_counts and counts["unreadable"] == 1  # bad.mp4, on Ray as locally
    summary = build_shards(tmp_path / "work", tmp_path / "out", cfg, progress=False, ray=True)
    assert summary["videos"]["unreadable"] == 1
    assert _all_members(tmp_path / "out" / "shards") == _all_members(root / "out" / "shards")  # names and bytes
    assert (tmp_path / "out" / "clips.jsonl").read_bytes() == (root / "out" / "clips.jsonl").read_bytes()


def test_cli_ray_flag_uses_the_connected_cluster(cluster, local_run, tmp_path, capsys):
    from scripts.data.curate import main

    root, _ = local_run
    status = main(["run", str(root / "in"), "--out", str(tmp_path / "out"), "--ray", "--no-progress",
                   "--set", "output.shard_size=3"])
    assert status == 1  # bad.mp4 is unreadable
    assert "1 unreadable" in capsys.readouterr().out
    assert _all_members(tmp_path / "out" / "shards") == _all_members(root / "out" / "shards")
