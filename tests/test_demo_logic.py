"""Fast tests of the web demo's logic without a browser: arguments, crop geometry, uploads, form
values, outputs, error messages, the model slot and the handlers on the tiny model."""
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sgm.demo.cli import DemoSettings, parse_args, validate
from sgm.demo.form import MAX_SEED, FormValues, random_seed
from sgm.demo.handlers import DemoHandlers
from sgm.demo.messages import Kind, Message, error_message
from sgm.demo.models import ModelChoice, ModelSlot, available_versions, model_choices
from sgm.demo.outputs import downloads, output_stem
from sgm.demo.preview import crop_box, draw_crop_preview
from sgm.demo.uploads import UploadError, read_upload
from sgm.inference import MissingCheckpointError, OutOfMemoryError, VideoPipeline
from sgm.inference.images import cover_and_crop
from tests.helpers import REPO, TINY_CONFIG, build_tiny_model, tiny_config


def form(**overrides) -> FormValues:
    values = dict(num_frames=4, num_steps=2, fps_id=6, motion_bucket_id=127, cond_aug=0.02, min_cfg=1.0,
                  max_cfg=2.5, seed=7, decoding_t=4, width=128, height=64, crop_x=0.5, crop_y=0.5)
    values.update(overrides)
    return FormValues(**values)


def gradient(w: int, h: int) -> Image.Image:
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8))


# -- command line ---------------------------------------------------------------------------------
def test_defaults_are_local_and_private():
    s = parse_args([])
    assert (s.version, s.host, s.port, s.share, s.concurrency) == ("svd_xt", "127.0.0.1", 7860, False, 1)
    assert s.is_local_only


def test_config_and_ckpt_replace_version(tmp_path):
    ckpt = tmp_path / "w.safetensors"
    ckpt.write_bytes(b"x")
    s = parse_args(["--config", str(TINY_CONFIG), "--ckpt", str(ckpt), "--port", "7999", "--max-upload-mb", "5"])
    assert (s.version, s.config, s.ckpt, s.port, s.max_upload_mb) == (None, str(TINY_CONFIG), str(ckpt), 7999, 5.0)


def test_random_weights_load_the_launch_model_without_a_checkpoint(tmp_path):
    from sgm.demo.launch import prepare

    settings = parse_args(["--config", str(TINY_CONFIG), "--random-weights", "--device", "cpu",
                           "--output-folder", str(tmp_path)])
    assert settings.random_weights
    handlers = prepare(settings)
    assert handlers.slot.pipe is not None and handlers.slot.pipe.info["ckpt"] is None
    assert handlers.slot.status().text == "custom config configs/tiny/svd_tiny.yaml: random weights"
    assert all(not c.random_weights for c in handlers.choices[1:])  # the official models still need their files


@pytest.mark.parametrize("argv, fragment", [
    (["--version", "svd", "--config", "x.yaml"], "not allowed with"),
    (["--version", "nope"], "invalid choice"),
    (["--config", "missing.yaml"], "--config missing.yaml: no such file"),
    (["--ckpt", "missing.safetensors"], "--ckpt missing.safetensors: no such file"),
    (["--port", "0"], "--port must be in 1..65535"),
    (["--max-upload-mb", "0"], "--max-upload-mb must be > 0"),
    (["--concurrency", "0"], "--concurrency must be >= 1"),
    (["--device", "gpu7"], "is not a torch device"),
    (["--config", str(TINY_CONFIG), "--random-weights", "--ckpt", str(TINY_CONFIG)], "exclude each other"),
])
def test_bad_arguments_exit_with_the_reason(argv, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2
    assert fragment in capsys.readouterr().err


def test_validate_flags_network_exposure_only_via_is_local_only():
    assert validate(DemoSettings()) == []
    assert not DemoSettings(host="0.0.0.0").is_local_only
    assert not DemoSettings(share=True).is_local_only


# -- crop geometry --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(400, 300), (300, 400), (1000, 200), (128, 64), (50, 40)])
@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.5, 0.5), (1.0, 0.3)])
def test_crop_box_is_the_region_cover_and_crop_keeps(size, offset):
    image = gradient(*size)
    left, top, right, bottom = crop_box(image.size, 128, 64, offset)
    assert 0 <= left < right <= size[0] + 1e-6 and 0 <= top < bottom <= size[1] + 1e-6
    assert (right - left) / (bottom - top) == pytest.approx(2.0, rel=0.05)
    # The box cut from the original and resized matches the pipeline's crop (a smooth gradient
    # differs only by resampling).
    ours = np.asarray(image.resize((128, 64), Image.Resampling.LANCZOS, box=(left, top, right, bottom)), dtype=float)
    theirs = np.asarray(cover_and_crop(image, 128, 64, offset), dtype=float)
    assert np.abs(ours - theirs).mean() < 3.0


def test_crop_box_moves_with_the_offset():
    boxes = [crop_box((400, 400), 128, 64, (0.5, y)) for y in (0.0, 0.5, 1.0)]
    assert boxes[0][1] == 0 and boxes[2][3] == pytest.approx(400)
    assert boxes[0][1] < boxes[1][1] < boxes[2][1]


def test_preview_darkens_outside_the_crop():
    image = Image.new("RGB", (400, 400), (200, 200, 200))
    out = draw_crop_preview(image, 128, 64, (0.5, 0.0), max_side=200)
    assert out.size == (200, 200)
    px = np.asarray(out)
    assert px[70, 100].tolist() == [200, 200, 200]  # inside the top band (rows 0..100)
    assert px[150, 100].max() < 100  # outside, darkened


# -- uploads --------------------------------------------------------------------------------------
def test_upload_of_text_renamed_png_is_refused(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("this is not an image")
    with pytest.raises(UploadError, match="photo.png is not an image"):
        read_upload(str(fake))
    with pytest.raises(UploadError, match="no image uploaded"):
        read_upload(None)


def test_upload_over_the_pixel_limit_is_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    with pytest.raises(UploadError, match="300x300 pixels"):
        read_upload(str(path), max_pixels=50_000)


def test_upload_rgba_becomes_rgb(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGBA", (40, 30), (10, 20, 30, 0)).save(path)
    image = read_upload(str(path))
    assert image.mode == "RGB" and image.size == (40, 30)


# -- form -----------------------------------------------------------------------------------------
def test_form_values_become_options():
    opts = form(num_frames=4.0, crop_x=0.25).to_options()
    assert (opts.num_frames, opts.seed, opts.width, opts.crop_offset) == (4, 7, 128, (0.25, 0.5))
    assert isinstance(opts.num_frames, int)


@pytest.mark.parametrize("overrides, fragment", [
    (dict(seed=None), "seed must be a whole number"),
    (dict(seed=1.5), "seed must be a whole number"),
    (dict(seed=-1), "seed must be in"),
    (dict(width=100), "width must be a positive multiple of 32"),
    (dict(motion_bucket_id=300), "motion_bucket_id must be in 0..255"),
])
def test_bad_form_values_name_the_control(overrides, fragment):
    with pytest.raises(ValueError, match=fragment):
        form(**overrides).to_options()


def test_random_seed_in_range():
    rng = random.Random(0)
    seeds = {random_seed(rng) for _ in range(20)}
    assert len(seeds) > 1 and all(0 <= s <= MAX_SEED for s in seeds)


# -- outputs and messages -------------------------------------------------------------------------
def test_output_stems_do_not_collide(tmp_path, monkeypatch):
    import sgm.demo.outputs

    monkeypatch.setattr(sgm.demo.outputs.time, "strftime", lambda fmt, t: "20260101-000000")
    stems = [output_stem(str(tmp_path), 5) for _ in range(3)]  # same second, same seed
    assert [s.name for s in stems] == ["20260101-000000_seed5", "20260101-000000_seed5_1", "20260101-000000_seed5_2"]
    assert all(s.with_name(s.name + ".json").is_file() for s in stems)  # reserved


def test_downloads_order_and_skip_missing(tmp_path):
    paths = {k: tmp_path / f"v.{k}" for k in ("json", "webp", "mp4", "gif")}
    for p in list(paths.values())[:-1]:
        p.write_bytes(b"")
    paths["input"] = tmp_path / "v_input.png"
    assert [p.rsplit(".", 1)[1] for p in downloads(paths)] == ["mp4", "webp", "json"]


def test_error_messages_say_what_to_do():
    assert "put the official file svd_xt.safetensors" in error_message(
        MissingCheckpointError("checkpoints/svd_xt.safetensors", "svd_xt.safetensors")).text
    oom = error_message(OutOfMemoryError("sampling"))
    assert oom.kind == Kind.OUT_OF_MEMORY and "offload" in oom.text and "decoding_t" in oom.text
    assert oom.markdown().startswith("**Out of memory:**") and oom.is_error
    assert error_message(UploadError("x")).kind == Kind.BAD_UPLOAD
    assert error_message(ValueError("seed must be")).kind == Kind.INVALID_SETTING
    unexpected = error_message(KeyError("boom"))
    assert unexpected.kind == Kind.UNEXPECTED and unexpected.text.startswith("KeyError: 'boom'")


def test_messages_are_typed_and_rendered_from_their_kind():
    done = Message(Kind.DONE, "4 frames", ("sampling at 64x64",))
    assert not done.is_error and done.markdown() == "**Done:** 4 frames\n\nNote: sampling at 64x64"
    failed = Message(Kind.GENERATION_FAILED, "the image is 1x1").with_text("No video was made.")
    assert failed.is_error and failed.plain() == "Generation failed: the image is 1x1 No video was made."
    # A message whose text happens to start like an error title is still what its kind says.
    assert not Message(Kind.DONE, "**Bad upload:** in the file name").is_error


def test_no_server_path_reaches_a_message(tmp_path, monkeypatch):
    from sgm.demo.paths import public_path
    from sgm.inference.checkpoints import REPO_ROOT

    monkeypatch.chdir(tmp_path)
    outside = "/srv/private/models/svd_xt.safetensors"
    missing = error_message(MissingCheckpointError(outside, "svd_xt.safetensors", "https://huggingface.co/x/y"))
    assert "/srv" not in missing.text and "at svd_xt.safetensors" in missing.text
    assert "https://huggingface.co/x/y" in missing.text  # URLs are not paths
    repo_file = str(REPO_ROOT / "checkpoints" / "svd_xt.safetensors")
    assert "at checkpoints/svd_xt.safetensors, then press Load model" in error_message(
        MissingCheckpointError(repo_file, "svd_xt.safetensors")).text
    assert public_path(tmp_path / "outputs" / "a.mp4") == "outputs/a.mp4"  # inside the working folder
    unexpected = error_message(OSError(f"cannot open {tmp_path}/secret/x.png: denied"))
    assert str(tmp_path) not in unexpected.text and "secret/x.png" in unexpected.text
    choice = ModelChoice(config=str(TINY_CONFIG), ckpt="/srv/private/w.safetensors")
    assert choice.label == "custom config configs/tiny/svd_tiny.yaml: w.safetensors (missing)"


# -- models ---------------------------------------------------------------------------------------
def test_model_menu_lists_launch_model_first_and_every_version(tmp_path):
    launch = ModelChoice(config=str(TINY_CONFIG), ckpt=str(tmp_path / "none.safetensors"))
    choices = model_choices(launch)
    assert choices[0] == launch and [c.version for c in choices[1:]] == available_versions()
    assert launch.label.endswith("none.safetensors (missing)")
    assert model_choices(ModelChoice(version="svd"))[0].version == "svd"
    assert len(model_choices(ModelChoice(version="svd"))) == len(available_versions())


def missing_checkpoint_config(tmp_path):
    cfg = tiny_config(**{"sampling.checkpoint": str(tmp_path / "absent.safetensors")})
    path = tmp_path / "tiny_missing.yaml"
    from omegaconf import OmegaConf

    OmegaConf.save(cfg, path)
    return path


def test_model_choice_finds_the_checkpoint_where_the_pipeline_does(tmp_path):
    """A config naming its weights only in model.params.ckpt_path: the menu must not call them missing."""
    from omegaconf import OmegaConf

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    cfg = tiny_config(**{"model.params.ckpt_path": str(weights)})
    del cfg.sampling["checkpoint"]
    OmegaConf.save(cfg, tmp_path / "c.yaml")
    choice = ModelChoice(config=str(tmp_path / "c.yaml"))
    assert choice.check_checkpoint() == str(weights)
    assert choice.label.endswith("w.safetensors")


def test_missing_checkpoint_starts_the_app_and_says_which_file(tmp_path):
    from sgm.demo.launch import prepare

    settings = DemoSettings(version=None, config=str(missing_checkpoint_config(tmp_path)),
                            output_folder=str(tmp_path / "out"), device="cpu")
    handlers = prepare(settings)
    assert handlers.slot.pipe is None
    status = handlers.slot.status()
    assert status.kind == Kind.NO_MODEL and "absent.safetensors" in status.text and str(tmp_path) not in status.text
    # Defaults come from the config, so the page can be filled without the model.
    assert (handlers.defaults().width, handlers.defaults().num_frames) == (128, 4)
    image = tmp_path / "in.png"
    gradient(200, 100).save(image)
    mp4, files, message = handlers.generate(str(image), form())
    assert (mp4, files) == (None, None)
    assert message.kind == Kind.MISSING_CHECKPOINT and "absent.safetensors" in message.text
    assert message.text.endswith("No video was made.") and str(tmp_path) not in message.text
    _, first, text = handlers.preview(str(image), 128, 64, 0.5, 0.5)
    assert text is None and first.size == (128, 64)


def test_slot_keeps_one_model_and_reports_failures():
    loaded = []

    def loader(version, config, ckpt, **kwargs):
        if ckpt == "missing":
            raise MissingCheckpointError("missing", "svd.safetensors")
        loaded.append((version, kwargs))
        return object()

    slot = ModelSlot(loader, device="cpu")
    a, b = ModelChoice(version="svd"), ModelChoice(version="svd", ckpt="missing")
    first = slot.load(a)
    assert slot.load(a) is first and len(loaded) == 1  # already loaded: kept
    assert slot.status().kind == Kind.LOADED and slot.status().text.startswith("svd")
    with pytest.raises(MissingCheckpointError):
        slot.load(b)
    assert slot.pipe is None and "svd.safetensors" in slot.status().text
    assert loaded == [("svd", {"random_weights": False, "device": "cpu"})]


# -- handlers on the tiny model -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_handlers(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_out")
    pipe = VideoPipeline(build_tiny_model(0), tiny_config())
    slot = ModelSlot(lambda **kw: pipe)
    launch = ModelChoice(config=str(TINY_CONFIG))
    slot.load(launch)
    return DemoHandlers(slot, model_choices(launch), str(out))


def test_generate_writes_video_settings_and_reports_progress(tiny_handlers, tmp_path):
    image = tmp_path / "in.png"
    gradient(300, 200).save(image)
    calls = []
    mp4, files, message = tiny_handlers.generate(str(image), form(), ["gif"], progress=lambda *a: calls.append(a))
    assert message.kind == Kind.DONE and message.text.startswith("4 frames at 7 fps, seed 7"), message
    # Named relative to the output folder, not by the server path.
    assert f"as {Path(mp4).stem}.* in the output folder" in message.text and "/" not in message.text
    assert [f.rsplit(".", 1)[1] for f in files] == ["mp4", "gif", "json"]
    import av

    with av.open(mp4) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264"
    assert len(frames) == 4 and (frames[0].width, frames[0].height) == (128, 64)
    settings = json.loads(Path(files[-1]).read_text())
    assert (settings["base_seed"], settings["num_frames"], settings["crop_offset"]) == (7, 4, [0.5, 0.5])
    sampling = [c[:2] for c in calls if c[2] == "sampling"]
    assert sampling[-1] == (2, 2) and any(c[2] == "decoding" for c in calls)


def test_generate_errors_become_messages(tiny_handlers, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    assert tiny_handlers.generate(str(fake), form())[2].kind == Kind.BAD_UPLOAD
    good = tmp_path / "in.png"
    gradient(64, 64).save(good)
    invalid = tiny_handlers.generate(str(good), form(seed=-3))[2]
    assert invalid.kind == Kind.INVALID_SETTING and invalid.text.startswith("seed")


def test_pipeline_warnings_are_shown_as_notes(tiny_handlers, tmp_path):
    image = tmp_path / "in.png"
    gradient(64, 64).save(image)
    message = tiny_handlers.generate(str(image), form(width=64, num_frames=2, decoding_t=2, num_steps=1))[2]
    assert message.kind == Kind.DONE and message.text.startswith("2 frames")
    assert len(message.notes) == 1 and message.notes[0].startswith("sampling at 64x64")
    assert "Note: sampling at 64x64" in message.markdown()


def test_notes_only_about_settings_the_page_offers(tiny_handlers, tmp_path):
    """4 frames decoded 2 at a time cannot keep the default overlap of 4; the page has no overlap
    control, so it uses the overlap that fits and says nothing about it."""
    image = tmp_path / "in.png"
    gradient(128, 64).save(image)
    mp4, files, message = tiny_handlers.generate(str(image), form(num_frames=4, decoding_t=2, num_steps=1))
    assert message.kind == Kind.DONE and message.notes == (), message
    assert json.loads(Path(files[-1]).read_text())["decoding_overlap"] == 0


def test_out_of_memory_is_reported_with_advice(tiny_handlers, tmp_path, monkeypatch):
    def oom(*args, **kwargs):
        raise OutOfMemoryError("sampling", "CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(tiny_handlers.slot.pipe, "generate", oom)
    image = tmp_path / "in.png"
    gradient(64, 64).save(image)
    mp4, _, message = tiny_handlers.generate(str(image), form())
    assert mp4 is None and message.kind == Kind.OUT_OF_MEMORY and "offload" in message.text


def test_preview_uses_the_pipeline_crop(tiny_handlers, tmp_path):
    image = tmp_path / "in.png"
    gradient(300, 300).save(image)
    _, first, text = tiny_handlers.preview(str(image), 128, 64, 0.5, 1.0)
    assert text is None and first.size == (128, 64)
    expected = tiny_handlers.slot.pipe.prepare_image(str(image), form(crop_y=1.0).to_options())
    assert np.array_equal(np.asarray(first), np.asarray(expected))
    assert tiny_handlers.preview(str(image), 100, 64, 0.5, 0.5)[2].kind == Kind.INVALID_SETTING
    assert tiny_handlers.preview(None, 128, 64, 0.5, 0.5) == (None, None, None)


def test_switching_to_a_missing_model_keeps_the_loaded_one(tiny_handlers, tmp_path):
    absent = ModelChoice(version="svd", ckpt=str(tmp_path / "absent.safetensors"))
    handlers = DemoHandlers(tiny_handlers.slot, [tiny_handlers.slot.choice, absent], str(tmp_path))
    text, opts = handlers.load_model("1")
    assert text.kind == Kind.MISSING_CHECKPOINT and "absent.safetensors" in text.text
    assert "Still loaded: custom" in text.text
    assert handlers.slot.pipe is not None and handlers.selected_key() == "0" and opts.width == 128
    assert handlers.load_model("7")[0].kind == Kind.UNKNOWN_CHOICE


def test_switching_models_replaces_the_pipeline_and_its_defaults(tmp_path):
    from types import SimpleNamespace

    from sgm.inference import SamplingOptions

    weights = tmp_path / "b.safetensors"
    weights.write_bytes(b"not read by the fake loader")
    built = []

    def loader(version, config, ckpt, **kwargs):
        built.append(ckpt)
        return SimpleNamespace(defaults=SamplingOptions(width=64 * len(built), num_frames=len(built)))

    a = ModelChoice(config=str(TINY_CONFIG), ckpt=str(weights))
    b = ModelChoice(version="svd", ckpt=str(weights))
    handlers = DemoHandlers(ModelSlot(loader), [a, b], str(tmp_path))
    text, opts = handlers.load_model("0")
    assert text.kind == Kind.LOADED and text.text.startswith("custom config") and opts.num_frames == 1
    text, opts = handlers.load_model("1")
    assert text.markdown().startswith("**Loaded model:** svd:") and (opts.width, opts.num_frames) == (128, 2)
    assert handlers.selected_key() == "1" and built == [str(weights)] * 2


def test_page_queues_generation_and_model_loads_together(tiny_handlers):
    from sgm.demo.ui import build_demo

    demo = build_demo(tiny_handlers, max_queue=3)
    fns = {f.name: f for f in demo.fns.values()}
    assert {f.api_name for f in demo.fns.values() if f.api_visibility == "public"} == {"preview", "generate", "load_model"}
    for name in ("on_generate", "on_load"):
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == ("model", 1)
    assert demo._queue.max_size == 3


def test_launch_binds_locally_limits_uploads_and_serves_only_outputs(tmp_path):
    from sgm.demo.launch import launch_kwargs

    kwargs = launch_kwargs(DemoSettings(output_folder=str(tmp_path / "out"), max_upload_mb=2))
    assert (kwargs["server_name"], kwargs["server_port"], kwargs["share"]) == ("127.0.0.1", 7860, False)
    assert kwargs["max_file_size"] == 2 * 2**20
    assert kwargs["allowed_paths"] == [str((tmp_path / "out").resolve())]
    assert launch_kwargs(DemoSettings(share=True, host="0.0.0.0"))["share"] is True


def test_weights_that_do_not_fit_the_config_stop_the_app_at_start(tmp_path):
    import torch
    from safetensors.torch import save_file

    from sgm.demo.launch import prepare

    wrong = tmp_path / "other.safetensors"
    save_file({"model.diffusion_model.out.2.bias": torch.zeros(3)}, str(wrong))
    with pytest.raises(SystemExit, match="could not load custom config .*other.safetensors.*shape"):
        prepare(DemoSettings(version=None, config=str(TINY_CONFIG), ckpt=str(wrong), device="cpu",
                             output_folder=str(tmp_path)))


def test_malformed_config_stops_the_app_with_the_reason(tmp_path):
    from sgm.demo.launch import prepare

    bad = tmp_path / "broken.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(SystemExit, match="could not load custom config .*broken.yaml.*not a valid YAML config"):
        prepare(DemoSettings(version=None, config=str(bad), device="cpu", output_folder=str(tmp_path)))


def test_torch_out_of_memory_gets_the_same_advice():
    import torch

    message = error_message(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB\nmore"))
    assert message.kind == Kind.OUT_OF_MEMORY
    assert message.text.startswith("CUDA out of memory. Tried to allocate 9 GiB;") and "offload" in message.text


# -- the README's command on a fresh clone, scripted by keyword -----------------------------------
def readme_tiny_demo_command() -> list:
    """The README's tiny-model demo command, exactly as written there (its comment left out)."""
    import shlex

    lines = [line for line in (REPO / "README.md").read_text().splitlines()
             if line.startswith("python scripts/demo/app.py") and "svd_tiny" in line]
    assert len(lines) == 1, lines
    return shlex.split(lines[0].split("#")[0])


def docs_client_example() -> str:
    """The Python example of docs/demo.md that drives the demo with gradio_client."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "demo.md").read_text(), re.DOTALL)
    examples = [b for b in blocks if "gradio_client" in b]
    assert len(examples) == 1, blocks
    return examples[0]


def fresh_clone(dest: Path) -> Path:
    """A copy of the files a clone of this checkout has (tracked or not ignored; no checkpoints)."""
    import shutil
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def test_readme_tiny_demo_runs_on_a_fresh_clone_and_docs_example_calls_it_by_keyword(tmp_path):
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clone has")
    clone = fresh_clone(tmp_path / "clone")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = readme_tiny_demo_command()
    assert cmd[:2] == ["python", "scripts/demo/app.py"]
    cmd = [sys.executable, *cmd[1:], "--port", str(port)]  # the port: tests run side by side
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp_path / "gradio"), HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS="1")
    log = tmp_path / "app.log"
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w") as log_file:
        process = subprocess.Popen(cmd, cwd=clone, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the README's demo command did not start (exit {process.poll()}):\n{log.read_text()}")
                time.sleep(0.5)
        image = tmp_path / "photo.jpg"
        gradient(300, 200).save(image)
        code = docs_client_example().replace("http://127.0.0.1:7860/", url).replace('"photo.jpg"', repr(str(image)))
        namespace = {}
        exec(compile(code, "docs/demo.md", "exec"), namespace)  # noqa: S102 - the documented example, run as written
    finally:
        process.terminate()
        process.wait(timeout=30)
    message, video = namespace["message"], namespace["video"]
    assert message.startswith("**Done:** 4 frames at 7 fps, seed 7."), message
    assert Path(video).suffix == ".mp4" and Path(video).stat().st_size > 0
    written = sorted(p.name for p in (clone / "outputs" / "demo").iterdir())
    assert [n for n in written if n.endswith(".mp4")] and [n for n in written if n.endswith(".json")], written
