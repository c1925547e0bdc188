"""Smoke test of the side-by-side benchmark against diffusers at the tiniest size."""
import json

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")


@pytest.mark.slow
def test_benchmark_runs_both_engines_on_the_same_architecture(tmp_path, capsys):
    from scripts.benchmark.svd_vs_diffusers import main

    out = tmp_path / "bench.json"
    main(["--size", "tiny", "--unet_channels", "32", "--head_dim", "32", "--vae_channels", "32", "--clip_layers", "1",
          "--frames", "2", "--height", "64", "--width", "64", "--steps", "2", "--decoding_t", "2", "--repeats", "1",
          "--threads", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "s / sampling step" in printed and "ours/theirs" in printed
    results = json.loads(out.read_text())["results"]
    ours, theirs = results["ours"], results["diffusers"]
    assert ours["params"] == theirs["params"]  # same architecture, same size
    assert len(ours["rows"]) == len(theirs["rows"]) == 1
    for r in (ours, theirs):
        assert r["step_s"] > 0 and r["decode_s"] > 0 and r["sample_peak_mib"] > 0
