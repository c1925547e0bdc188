"""scripts/benchmark/svd_vs_diffusers.py --unet_only at a tiny size: every variant in one run, on one
copy of the weights."""
import json

import pytest

pytest.importorskip("diffusers")


@pytest.mark.slow
def test_unet_only_times_every_variant_on_shared_weights(tmp_path, capsys):
    from scripts.benchmark.svd_vs_diffusers import main

    out = tmp_path / "unet.json"
    main(["--unet_only", "--size", "tiny", "--unet_channels", "32", "--head_dim", "32", "--levels", "2", "--res_blocks", "1",
          "--frames", "2", "--height", "64", "--width", "64", "--repeats", "2", "--threads", "1", "--compile",
          "--compile_backend", "eager", "--ablate_single_token", "--json", str(out)])
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    variants = results["variants"]
    assert set(variants) == {"ours eager", "ours compiled", "diffusers eager", "diffusers compiled", "ours eager, full attention"}
    for name, r in variants.items():
        assert len(r["rows"]) == 2 and r["median_s"] > 0 and name in printed
    # the same architecture: equal parameter counts, and every diffusers tensor found one of ours of its shape
    assert results["params"]["ours"] == results["params"]["diffusers"]
    assert results["fresh_tensors_for_diffusers"] == 0


@pytest.mark.slow
def test_unet_only_with_freezing_compiles_ours_and_says_why_diffusers_stays_eager(tmp_path, capsys):
    """--compile_freezing (the CPU setting of docs/benchmarks.md) times ours compiled and reports diffusers'
    compiled row as not run, with the reason, instead of holding a third copy of the weights."""
    from scripts.benchmark.svd_vs_diffusers import main

    out = tmp_path / "unet.json"
    main(["--unet_only", "--size", "tiny", "--unet_channels", "32", "--head_dim", "32", "--levels", "2", "--res_blocks", "1",
          "--frames", "2", "--height", "64", "--width", "64", "--repeats", "1", "--threads", "1", "--compile",
          "--compile_backend", "eager", "--compile_mode", "max-autotune", "--compile_freezing", "--json", str(out)])
    printed = capsys.readouterr().out
    variants = json.loads(out.read_text())["results"]["variants"]
    assert variants["ours compiled"]["median_s"] > 0
    assert "median_s" not in variants["diffusers compiled"] and "freezing" in variants["diffusers compiled"]["error"]
    assert "compiled: mode max-autotune, backend eager, freezing" in printed
    assert "third full copy of the weights" in printed
