"""Opt-in download of the official checkpoints (sgm.inference.download), with huggingface_hub's
download function replaced: no test touches the network."""
import logging

import pytest
import torch
from omegaconf import OmegaConf

from scripts.sampling.simple_video_sample import main as sample_main
from sgm.inference import MissingCheckpointError, VideoPipeline
from sgm.inference.download import DownloadError, download_official
from tests.helpers import TINY_CONFIG
from tests.inference_helpers import tiny_checkpoint

hub = pytest.importorskip("huggingface_hub")
from huggingface_hub import constants as hub_constants  # noqa: E402
from huggingface_hub import errors as hub_errors  # noqa: E402


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """An empty Hugging Face cache, and a download function that fails the test if called."""
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    calls = []

    def forbidden(**kwargs):
        calls.append(kwargs)
        raise AssertionError(f"network call without --download: {kwargs}")

    monkeypatch.setattr(hub, "hf_hub_download", forbidden)
    torch.set_num_threads(1)
    return calls


def tiny_config_naming(tmp_path, filename: str):
    """The tiny config whose sampling.checkpoint is the official file name `filename` (absent)."""
    cfg = OmegaConf.load(TINY_CONFIG)
    cfg.sampling.checkpoint = str(tmp_path / "checkpoints" / filename)
    path = tmp_path / "tiny_official_name.yaml"
    OmegaConf.save(cfg, path)
    return path


def an_image(tmp_path):
    from PIL import Image

    path = tmp_path / "in.png"
    Image.new("RGB", (128, 64), (200, 40, 40)).save(path)
    return path


def fake_download(calls, result=None, error=None):
    def download(repo_id, filename, local_dir=None, token=None):
        calls.append({"repo_id": repo_id, "filename": filename, "local_dir": local_dir})
        if error is not None:
            raise error
        return str(result)

    return download


def hub_error(cls, message="refused"):
    """An instance of a huggingface_hub HTTP error without an HTTP response behind it."""
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    return err


def test_missing_checkpoint_without_flag_makes_no_network_call(tmp_path, _hermetic, caplog):
    config = tiny_config_naming(tmp_path, "svd_xt.safetensors")
    with pytest.raises(MissingCheckpointError, match="--download"):
        VideoPipeline.load(config=str(config), device="cpu")
    with caplog.at_level(logging.ERROR):
        status = sample_main(["--config", str(config), "--input_path", str(an_image(tmp_path)), "--output_folder",
                              str(tmp_path / "o"), "--device", "cpu"])
    assert status == 2 and _hermetic == []
    assert any("checkpoint not found" in r.getMessage() for r in caplog.records)


def test_download_fetches_the_one_official_file_and_loads_it(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(hub, "hf_hub_download", fake_download(calls, result=tiny_checkpoint()))
    config = tiny_config_naming(tmp_path, "svd_xt.safetensors")
    pipe = VideoPipeline.load(config=str(config), device="cpu", download=True, download_dir=str(tmp_path / "checkpoints"))
    assert calls == [{"repo_id": "stabilityai/stable-video-diffusion-img2vid-xt", "filename": "svd_xt.safetensors",
                      "local_dir": str(tmp_path / "checkpoints")}]
    assert pipe.info["ckpt"] == str(tiny_checkpoint())


@pytest.mark.parametrize("name, repo", [("svd", "stable-video-diffusion-img2vid"),
                                        ("svd_image_decoder", "stable-video-diffusion-img2vid"),
                                        ("svd_xt", "stable-video-diffusion-img2vid-xt"),
                                        ("svd_xt_image_decoder", "stable-video-diffusion-img2vid-xt"),
                                        ("svd_xt_1_1", "stable-video-diffusion-img2vid-xt-1-1")])
def test_each_version_names_its_repository_and_file(name, repo, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(hub, "hf_hub_download", fake_download(calls, result=tmp_path / "x"))
    download_official(name)
    assert calls == [{"repo_id": f"stabilityai/{repo}", "filename": f"{name}.safetensors", "local_dir": None}]


def test_gated_repository_says_to_accept_the_licence_and_log_in(monkeypatch):
    monkeypatch.setattr(hub, "hf_hub_download", fake_download([], error=hub_error(hub_errors.GatedRepoError)))
    with pytest.raises(DownloadError) as e:
        download_official("svd_xt_1_1")
    msg = str(e.value)
    assert "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt-1-1" in msg
    assert "accept the licence" in msg and "hf auth login" in msg and "HF_TOKEN" in msg


def test_offline_says_so_and_how_to_go_on(monkeypatch):
    monkeypatch.setattr(hub, "hf_hub_download", fake_download([], error=hub_errors.LocalEntryNotFoundError("offline")))
    with pytest.raises(DownloadError, match="no connection to the Hub .*--ckpt"):
        download_official("svd")


def test_sampler_download_flag_reports_a_gated_repo_and_exits_2(tmp_path, monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(hub, "hf_hub_download", fake_download(calls, error=hub_error(hub_errors.GatedRepoError)))
    config = tiny_config_naming(tmp_path, "svd.safetensors")
    with caplog.at_level(logging.ERROR):
        status = sample_main(["--config", str(config), "--input_path", str(an_image(tmp_path)), "--output_folder",
                              str(tmp_path / "o"), "--device", "cpu", "--download"])
    assert status == 2 and [c["filename"] for c in calls] == ["svd.safetensors"]
    assert any("gated" in r.getMessage() for r in caplog.records)


def test_a_custom_checkpoint_is_never_downloaded(tmp_path, monkeypatch):
    config = tiny_config_naming(tmp_path, "my_finetune.safetensors")
    with pytest.raises(ValueError, match="only the official files"):
        VideoPipeline.load(config=str(config), device="cpu", download=True)


def test_an_earlier_download_is_found_in_the_cache_without_the_flag(tmp_path, _hermetic):
    cache = tmp_path / "hf_cache" / "models--stabilityai--stable-video-diffusion-img2vid-xt"
    snapshot = cache / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "svd_xt.safetensors").write_bytes(tiny_checkpoint().read_bytes())
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("abc123")
    pipe = VideoPipeline.load(config=str(tiny_config_naming(tmp_path, "svd_xt.safetensors")), device="cpu")
    assert pipe.info["ckpt"] == str(snapshot / "svd_xt.safetensors") and _hermetic == []


def test_demo_download_flag_loads_the_fetched_file(tmp_path, monkeypatch):
    from sgm.demo.cli import parse_args
    from sgm.demo.launch import prepare

    calls = []
    monkeypatch.setattr(hub, "hf_hub_download", fake_download(calls, result=tiny_checkpoint()))
    config = tiny_config_naming(tmp_path, "svd_xt_1_1.safetensors")
    settings = parse_args(["--config", str(config), "--download", "--output-folder", str(tmp_path / "out")])
    handlers = prepare(settings)
    assert [c["filename"] for c in calls] == ["svd_xt_1_1.safetensors"]
    assert handlers.slot.pipe is not None and handlers.slot.pipe.info["ckpt"] == str(tiny_checkpoint())
