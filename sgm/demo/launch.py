"""Starting the demo: parse arguments, load the model, build the page, queue and serve it."""
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .cli import DemoSettings, parse_args
from .handlers import DemoHandlers
from .models import ModelChoice, ModelSlot, model_choices

logger = logging.getLogger("sgm.demo")


def prepare(settings: DemoSettings) -> DemoHandlers:
    """Handlers with the launch model loaded when its weights are there.

    A missing checkpoint does not stop the app: the page shows which file to put where and the
    "Load model" button tries again. Any other loading error (weights that do not fit the config,
    a bad device) ends the program with the message, because the command line needs fixing.
    """
    from ..inference import MissingCheckpointError, VideoPipeline
    from ..inference.pipeline import parse_device, parse_dtype
    from ..inference.precision import slow_precision_warning

    launch = ModelChoice(version=settings.version, config=settings.config, ckpt=settings.ckpt,
                         random_weights=settings.random_weights)
    try:
        device = parse_device(settings.device)
        slow = slow_precision_warning(device, parse_dtype(settings.dtype, device))
    except ValueError as e:
        sys.exit(f"error: {e}")
    if slow:
        logger.warning("%s", slow)
    slot = ModelSlot(VideoPipeline.load, device=settings.device, dtype=settings.dtype, offload=settings.offload,
                     download=settings.download, lora=list(settings.lora), compile=settings.compile)
    try:
        slot.load(launch)
    except MissingCheckpointError as e:
        logger.warning("starting without a model: %s", e)
    except (ValueError, RuntimeError) as e:
        sys.exit(f"error: could not load {launch.label}: {e}")
    return DemoHandlers(slot, model_choices(launch), settings.output_folder, settings.concurrency)


def launch(settings: DemoSettings, handlers: Optional[DemoHandlers] = None) -> None:
    """Serve the demo until interrupted."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    from .ui import CSS, build_demo

    handlers = handlers or prepare(settings)
    output_folder = Path(settings.output_folder).resolve()
    output_folder.mkdir(parents=True, exist_ok=True)
    demo = build_demo(handlers, max_queue=settings.max_queue)
    if not settings.is_local_only:
        logger.warning("the demo is reachable from other machines (%s); anyone who reaches it can use "
                       "this machine's GPU and download every output in %s",
                       "public share link" if settings.share else f"--host {settings.host}", output_folder)
    demo.launch(**launch_kwargs(settings), css=CSS)


def launch_kwargs(settings: DemoSettings) -> dict:
    """Keywords for `gr.Blocks.launch`: where to listen, the upload limit, which files may be served."""
    return dict(server_name=settings.host, server_port=settings.port, share=settings.share,
                max_file_size=int(settings.max_upload_mb * 1024 * 1024),  # refused by the page and the server
                allowed_paths=[str(Path(settings.output_folder).resolve())],  # the videos, nothing else
                show_error=False, ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
                inbrowser=False)


def main(argv: Optional[Sequence[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_args(argv)
    launch(settings)
