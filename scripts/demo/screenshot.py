#!/usr/bin/env python
"""The README's picture: the web demo, at 1280x800, after it made a video from the toy curriculum's checkpoint.

    python scripts/toy_curriculum.py                      # first: runs/toy/stage3 and runs/toy/inputs
    python scripts/demo/screenshot.py [--workdir runs/toy] [--out docs/images/demo.png]

1. Starts scripts/demo/app.py on a free local port with the stage-3 run's config and checkpoint (paths relative
   to the repository, so the page names no temporary folder; outputs go to a temporary folder).
2. Drives Debian's /usr/bin/chromium through Playwright: uploads the first held-out clip's first frame
   (<workdir>/inputs/clip0.png), presses Generate, waits until the browser has loaded the video, pauses it
   on its last frame (the shape has moved from where the input shows it) and takes the screenshot.
Exit status 0 when the picture was written.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 800}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the demo did not start (exit status {process.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(process: subprocess.Popen, grace: float = 15) -> None:
    """Stop the demo server: terminate, and kill it if it is still up after `grace` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def relative(path: Path) -> str:
    """`path` relative to the repository when it is inside it (what the page shows), else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def screenshot(workdir: Path, out: Path) -> Path:
    from playwright.sync_api import sync_playwright

    config, ckpt = workdir / "stage3" / "configs" / "config.yaml", workdir / "stage3" / "checkpoints" / "last.ckpt"
    image = workdir / "inputs" / "clip0.png"
    for path in (config, ckpt, image):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `python scripts/toy_curriculum.py --workdir {workdir}` first")
    with tempfile.TemporaryDirectory() as tmp:
        port, log = free_port(), Path(tmp) / "app.log"
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(Path(tmp) / "gradio"),
                   HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        cmd = [sys.executable, str(REPO / "scripts" / "demo" / "app.py"), "--config", relative(config),
               "--ckpt", relative(ckpt), "--device", "cpu", "--port", str(port), "--output-folder", str(Path(tmp) / "out")]
        with open(log, "w") as log_file:
            process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_for(url, process, log)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.set_default_timeout(180_000)
                page.goto(url, wait_until="domcontentloaded")
                page.wait_for_selector("#generate")
                page.set_input_files("#input-file input[type=file]", str(image))
                page.wait_for_selector("#model-input img")
                page.click("#generate")
                page.wait_for_selector("#output-video video")
                page.wait_for_function("() => { const v = document.querySelector('#output-video video');"
                                       " return v && v.readyState >= 2 && v.duration > 0; }")
                page.evaluate("() => { const v = document.querySelector('#output-video video'); v.pause();"
                              " v.currentTime = v.duration; }")
                page.wait_for_timeout(500)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
                browser.close()
        finally:
            stop(process)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/toy", help="the toy curriculum's work dir (default runs/toy)")
    p.add_argument("--out", default="docs/images/demo.png", help="where to write the PNG (default docs/images/demo.png)")
    args = p.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        print(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        path = screenshot(Path(args.workdir), Path(args.out))
    except (FileNotFoundError, RuntimeError) as e:
        print(f"screenshot failed: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
