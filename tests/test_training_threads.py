"""main.py's CPU thread count: a default that shares the machine, and the overrides."""
import logging

import pytest
import torch
from omegaconf import OmegaConf

from sgm.training.threads import default_threads, local_processes
from tests.training_helpers import run_main as main
from tests.training_helpers import toy_overrides


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # main.py exports its choice; keep it inside this test
    yield
    torch.set_num_threads(threads)


def test_default_shares_the_cpus_and_leaves_the_busy_ones_alone():
    assert default_threads(1, cpus=16, load=0.0) == 16
    assert default_threads(2, cpus=16, load=0.0) == 8  # two DDP ranks on this node
    assert default_threads(1, cpus=16, load=4.5) == 11  # other work keeps 4.5 cores busy
    assert default_threads(1, cpus=2, load=14.0) == 1  # an overloaded machine: one thread
    assert default_threads(8, cpus=4, load=0.0) == 1


def test_processes_per_node_from_the_trainer_config():
    def procs(**trainer):
        return local_processes(OmegaConf.create({"lightning": {"trainer": trainer}}))

    assert procs() == 1 and procs(devices=4) == 4 and procs(devices=[0, 2]) == 2 and procs(devices="3") == 3
    assert procs(accelerator="cpu", devices="auto") == 1


@pytest.mark.parametrize("how, expected, source", [
    (["--threads", "2"], 2, "(--threads)"),
    ([], 1, "(OMP_NUM_THREADS)"),
])
def test_main_sets_the_thread_count(how, expected, source, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert main([*toy_overrides(tmp_path), *how, "--dry-run"]) == 0
    assert torch.get_num_threads() == expected
    assert f"{expected} CPU thread(s) per training process {source}" in caplog.text


def test_main_default_without_overrides(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS")
    caplog.set_level(logging.INFO)
    assert main([*toy_overrides(tmp_path), "--dry-run"]) == 0
    assert "CPU thread(s) per training process (default: " in caplog.text
    assert 1 <= torch.get_num_threads() <= default_threads(1, load=0.0)
    assert main([*toy_overrides(tmp_path), "--threads", "0", "--dry-run"]) == 2


def test_busy_cpus_reads_the_non_idle_share_of_proc_stat(monkeypatch):
    """busy_cpus: online CPUs x the non-idle share of CPU time between two /proc/stat samples (idle + iowait
    count as idle), rounded; default_threads takes it as the busy CPUs."""
    import io

    from sgm.training import threads

    samples = iter(["cpu  50 0 50 80 20 0 0 0 0 0\n", "cpu  150 0 100 120 30 0 0 0 0 0\n"])
    monkeypatch.setattr(threads, "open", lambda *a, **k: io.StringIO(next(samples)), raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    # between the samples: 200 of CPU time, 50 of it idle -> 75% busy of 4 CPUs
    assert threads.busy_cpus() == 3.0
    monkeypatch.setattr(threads, "busy_cpus", lambda: 3.0)
    assert threads.default_threads(1, cpus=4) == 1


def test_busy_cpus_falls_back_when_proc_stat_is_missing(monkeypatch):
    from sgm.training import threads

    def missing(*args, **kwargs):
        raise FileNotFoundError("/proc/stat")

    monkeypatch.setattr(threads, "open", missing, raising=False)
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.busy_cpus() is None
    assert threads.default_threads(1, cpus=2, load=None) >= 1
