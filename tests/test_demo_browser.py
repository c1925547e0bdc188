"""End-to-end tests of the web demo in headless Chromium: the app runs in a subprocess on the tiny
model, Playwright drives Debian's /usr/bin/chromium (never a downloaded browser).

The first test takes a screenshot of the page after a generation into its tmp_path; to refresh the
README's picture, run it with SGM_DEMO_SCREENSHOT=docs/images/demo.png (tests never rewrite tracked
files on their own).
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scripts.demo.screenshot import stop
from tests.helpers import REPO, TINY_CONFIG, build_tiny_model

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
MAX_UPLOAD_MB = 0.05  # 52 KB: the test images are smaller, a 120 KB noise image is not
SCREENSHOT = os.environ.get("SGM_DEMO_SCREENSHOT")  # None: the test's tmp_path
VIEWPORT = {"width": 1280, "height": 800}

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except OSError:
        return 0


def landscape(path: Path) -> Path:
    """A 480x360 drawing (sky, sun, hills) as the input image."""
    sky = np.linspace([90, 150, 230], [200, 225, 250], 360).astype(np.uint8)[:, None, :].repeat(480, 1)
    image = Image.fromarray(sky)
    draw = ImageDraw.Draw(image)
    draw.ellipse((330, 50, 410, 130), fill=(255, 210, 60))
    draw.polygon([(0, 260), (120, 170), (250, 240), (380, 160), (480, 230), (480, 360), (0, 360)], fill=(60, 140, 70))
    draw.rectangle((0, 310, 480, 360), fill=(70, 110, 180))
    image.save(path)
    return path


class App:
    def __init__(self, url: str, output_folder: Path, log: Path, process: subprocess.Popen, private: tuple):
        self.url, self.output_folder, self.log, self.process = url, output_folder, log, process
        self.private = private  # absolute server paths the page must not show


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The demo on the tiny model, served on a free port until the module's tests are done."""
    from safetensors.torch import save_file

    tmp = tmp_path_factory.mktemp("demo_app")
    (tmp / "weights").mkdir()
    ckpt = tmp / "weights" / "svd_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in build_tiny_model(0).state_dict().items()}, str(ckpt))
    port, out, log = free_port(), tmp / "outputs", tmp / "app.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp / "gradio"),
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    config = TINY_CONFIG  # absolute: the page must name it relative to the working folder
    cmd = [sys.executable, str(REPO / "scripts" / "demo" / "app.py"), "--config", str(config), "--ckpt", str(ckpt),
           "--device", "cpu", "--port", str(port), "--output-folder", str(out), "--max-upload-mb", str(MAX_UPLOAD_MB)]
    with open(log, "w") as log_file:
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while http_status(url) != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the demo did not start (exit status {process.poll()}):\n{log.read_text()}")
            time.sleep(0.5)
        yield App(url, out, log, process, private=(str(out), str(ckpt.parent), str(REPO)))
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app.url, wait_until="domcontentloaded")
    page.wait_for_selector("#generate")
    yield page
    context.close()


def upload(page, path: Path) -> None:
    page.set_input_files("#input-file input[type=file]", str(path))


def test_upload_preview_generate_and_play(app, page, tmp_path):
    assert "Loaded model:" in page.inner_text("#model-status")
    upload(page, landscape(tmp_path / "landscape.png"))
    first_frame = page.wait_for_selector("#model-input img")
    page.wait_for_selector("#crop-preview img")
    src_centre = first_frame.get_attribute("src")

    # Moving the crop to the top changes the first frame that will be used.
    crop_y = page.locator("#crop-y input[type=number]")
    crop_y.fill("0")
    crop_y.press("Enter")
    page.wait_for_function("old => { const i = document.querySelector('#model-input img');"
                           " return i && i.src !== old; }", arg=src_centre)

    # Record the progress texts Gradio shows while the video is made (fed by the progress callback).
    page.evaluate("""() => { window.progressTexts = new Set(); const box = document.querySelector('#output-video');
        new MutationObserver(() => { const t = box.innerText;
            if (t.includes('Sampling') || t.includes('Decoding')) window.progressTexts.add(t); })
        .observe(box, {subtree: true, childList: true, characterData: true}); }""")
    page.click("#generate")
    page.wait_for_selector("#output-video video", timeout=120_000)
    progress_texts = page.evaluate("() => Array.from(window.progressTexts)")
    assert any(re.search(r"\d/4 steps.*Sampling - \d", t, re.DOTALL) for t in progress_texts), progress_texts
    # The browser parsed the H.264 stream: metadata with a duration and the frame size.
    page.wait_for_function("() => { const v = document.querySelector('#output-video video');"
                           " return v && v.readyState >= 1 && v.duration > 0 && v.videoWidth > 0; }")
    src, width, height = page.evaluate("() => { const v = document.querySelector('#output-video video');"
                                       " return [v.currentSrc || v.src, v.videoWidth, v.videoHeight]; }")
    assert (width, height) == (128, 64)
    message = page.inner_text("#message")
    assert "Done: 4 frames at 7 fps, seed 23" in message
    downloads = page.inner_text("#output-files")
    for suffix in (".mp4", ".gif", ".webp", ".json"):
        assert suffix in downloads

    # The served file is the video: 4 decodable H.264 frames of 128x64.
    import av

    served = tmp_path / "served.mp4"
    with urllib.request.urlopen(src, timeout=30) as response:
        served.write_bytes(response.read())
    with av.open(str(served)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 4 and frames[0].shape == (64, 128, 3)

    # The Generate button and the video are in view together, at the top of the page.
    page.evaluate("() => window.scrollTo(0, 0)")
    for selector in ("#generate", "#output-video video", "#message"):
        box = page.locator(selector).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], (selector, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], (selector, box)

    # No absolute server path in the page: not in its text and markup, nor in the config it loads.
    html = page.content()
    config_json = urllib.request.urlopen(app.url + "config", timeout=30).read().decode()
    for private in app.private:
        assert private not in html and private not in config_json, private
    assert "custom config configs/tiny/svd_tiny.yaml: svd_tiny.safetensors" in page.inner_text("#model-status")

    # Settings saved beside the output, recording the crop offset moved above.
    sidecars = sorted(app.output_folder.glob("*_seed23*.json"))
    assert sidecars, list(app.output_folder.iterdir())
    settings = json.loads(sidecars[-1].read_text())
    assert (settings["num_frames"], settings["base_seed"], settings["crop_offset"]) == (4, 23, [0.5, 0.0])

    page.screenshot(path=SCREENSHOT or str(tmp_path / "demo.png"), full_page=True)


def test_non_image_upload_shows_an_error_and_the_app_keeps_serving(app, page, tmp_path):
    # Too large: refused before upload by the page, and by the server for other clients.
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > MAX_UPLOAD_MB * 2**20
    upload(page, big)
    page.wait_for_selector("text=exceed the maximum allowed size")
    import httpx

    response = httpx.post(app.url + "gradio_api/upload", files={"files": ("big.png", big.read_bytes(), "image/png")})
    assert response.status_code == 413

    fake = tmp_path / "holiday.png"
    fake.write_text("this is a text file with an image's name")
    upload(page, fake)
    page.wait_for_function("() => document.querySelector('#message').innerText.includes('Bad upload')")
    assert "holiday.png is not an image" in page.inner_text("#message")

    page.click("#generate")  # generating from it reports the same problem, no video appears
    page.wait_for_function("() => document.querySelector('#message').innerText.includes('No video was made')")
    assert "Bad upload: holiday.png is not an image" in page.inner_text("#message")
    assert page.query_selector("#output-video video") is None

    assert http_status(app.url) == 200
    assert app.process.poll() is None
    page.click("#input-file button[aria-label=Clear]")  # the same page goes on working
    upload(page, landscape(tmp_path / "good.png"))
    page.wait_for_selector("#model-input img")
    page.wait_for_function("() => !document.querySelector('#message').innerText.includes('Bad upload')")


def test_two_users_generations_run_one_after_the_other(app, tmp_path):
    """Two clients submit at once (through Gradio's client, as a second browser would); the queue
    runs them one at a time (--concurrency 1), so they never hold GPU memory together."""
    from concurrent.futures import wait

    from gradio_client import Client, handle_file

    image = handle_file(str(landscape(tmp_path / "queued.png")))
    # By keyword; the settings not given take the page's defaults.
    jobs = [Client(app.url, verbose=False).submit(image=image, formats=[], width=64, height=64, num_frames=2,
                                                  num_steps=1, decoding_t=2, seed=seed, api_name="/generate")
            for seed in (101, 102)]
    wait(jobs, timeout=120)
    for job in jobs:
        mp4, files, message = job.result()
        assert message.startswith("**Done:** 2 frames"), message
    events = re.findall(r"generation (started|finished) \(seed (10[12])", app.log.read_text())
    events = [e for e in events if e[1] in ("101", "102")]
    first = events[0][1]
    second = "102" if first == "101" else "101"
    assert events == [("started", first), ("finished", first), ("started", second), ("finished", second)], events


def test_api_lists_the_sampling_inputs_by_name(app):
    from gradio_client import Client

    api = Client(app.url, verbose=False).view_api(print_info=False, return_format="dict")
    names = [p["parameter_name"] for p in api["named_endpoints"]["/generate"]["parameters"]]
    assert names == ["image", "formats", "crop_x", "crop_y", "width", "height", "num_frames", "num_steps", "fps_id",
                     "motion_bucket_id", "cond_aug", "min_cfg", "max_cfg", "decoding_t", "total_frames", "seed"]
    assert [p["parameter_name"] for p in api["named_endpoints"]["/preview"]["parameters"]] == [
        "image", "width", "height", "crop_x", "crop_y"]
