"""Command-line arguments of the web demo and their validation."""
import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..modules.compile import CompileOptions, add_compile_arguments, compile_setting
from .models import DEFAULT_VERSION, available_versions

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class DemoSettings:
    """What `scripts/demo/app.py` was asked to do.

    version: a configs/inference name (used when `config` is None). config: path of any model config
    with a `sampling:` section. ckpt: weights path (None: the config's `sampling.checkpoint`).
    random_weights: build the launch model with random weights, reading no checkpoint (to try the
    page, e.g. on the tiny config; the videos are noise).
    device / dtype / offload / download / compile: passed to `VideoPipeline.load` (compile: False, True or
    CompileOptions, from --compile, --compile-mode and --freeze-weights; download: fetch a missing
    official checkpoint from the Hugging Face Hub, see docs/download.md; lora: adapter files
    "file[:strength]" applied to every model loaded, see docs/lora.md). host, port: where the server listens
    (127.0.0.1 by default: only this machine can reach it). share: ask Gradio for a public link.
    max_upload_mb: largest accepted upload. output_folder: where every video and its settings go.
    concurrency: generations that run at once (each holds a model's activations in GPU memory).
    max_queue: requests that may wait for their turn; later ones are refused with a message.
    """

    version: Optional[str] = DEFAULT_VERSION
    config: Optional[str] = None
    ckpt: Optional[str] = None
    random_weights: bool = False
    device: Optional[str] = None
    dtype: Optional[str] = None
    offload: bool = False
    download: bool = False
    lora: List[str] = field(default_factory=list)
    compile: Union[bool, CompileOptions] = False
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    max_upload_mb: float = 20.0
    output_folder: str = "outputs/demo"
    concurrency: int = 1
    max_queue: int = 16

    @property
    def is_local_only(self) -> bool:
        return self.host in LOCAL_HOSTS and not self.share


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/demo/app.py",
        description="Stable Video Diffusion image-to-video web demo (Gradio). Open the printed URL in a browser.")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--version", choices=available_versions(), default=None,
                       help=f"official model to load from configs/inference (default {DEFAULT_VERSION})")
    model.add_argument("--config", default=None, help="any model config with a `sampling:` section, e.g. configs/tiny/svd_tiny.yaml")
    parser.add_argument("--ckpt", default=None, help="weights file or diffusers folder (default: the config's sampling.checkpoint, "
                                                     "e.g. checkpoints/svd_xt.safetensors)")
    parser.add_argument("--random-weights", action="store_true",
                        help="no checkpoint: build the model with random weights (to try the page; the videos are "
                             "noise), e.g. --config configs/tiny/svd_tiny.yaml --random-weights")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default=None,
                        help="weights/activation precision (default: fp16 on cuda, fp32 on cpu)")
    parser.add_argument("--offload", action="store_true", help="keep each part on the GPU only while it runs (less memory, slower)")
    parser.add_argument("--download", action="store_true", help="fetch a missing official checkpoint from the Hugging Face Hub "
                                                              "(never otherwise; see docs/download.md)")
    parser.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                        help="apply a LoRA adapter at STRENGTH (default 1) to the loaded model; repeatable (docs/lora.md)")
    add_compile_arguments(parser, sep="-")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                                                           "0.0.0.0 exposes the demo to your network)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest accepted upload in MB (default 20)")
    parser.add_argument("--output-folder", default="outputs/demo", help="where videos and their settings are saved")
    parser.add_argument("--concurrency", type=int, default=1, help="generations running at once (default 1; "
                                                                   "more needs memory for several videos)")
    parser.add_argument("--max-queue", type=int, default=16, help="requests that may wait in the queue (default 16)")
    return parser


def validate(settings: DemoSettings) -> List[str]:
    """Problems with `settings`, each saying how to fix it (empty when usable)."""
    problems = []
    if settings.config is not None and not os.path.isfile(settings.config):
        problems.append(f"--config {settings.config}: no such file")
    # An explicit weights path that does not exist is a typo: say so now. The official default
    # location may legitimately be empty at start; the page then says which file to put there.
    if settings.ckpt is not None and settings.random_weights:
        problems.append("--ckpt and --random-weights exclude each other: random weights read no checkpoint")
    elif settings.ckpt is not None and not os.path.exists(settings.ckpt):  # a file or a diffusers folder
        problems.append(f"--ckpt {settings.ckpt}: no such file (leave --ckpt out to use the default location "
                        f"and let the page say which file to put there)")
    for spec in settings.lora:
        from ..lora import parse_lora_spec

        try:
            path, _ = parse_lora_spec(spec)
        except ValueError as e:
            problems.append(str(e))
            continue
        if not os.path.isfile(path):
            problems.append(f"--lora {spec}: no such file {path}")
    if not 1 <= settings.port <= 65535:
        problems.append(f"--port must be in 1..65535, got {settings.port}")
    if not settings.max_upload_mb > 0:
        problems.append(f"--max-upload-mb must be > 0, got {settings.max_upload_mb}")
    if settings.concurrency < 1:
        problems.append(f"--concurrency must be >= 1, got {settings.concurrency}")
    if settings.max_queue < 1:
        problems.append(f"--max-queue must be >= 1, got {settings.max_queue}")
    if settings.device is not None:
        import torch

        try:
            torch.device(settings.device)
        except RuntimeError:
            problems.append(f"--device {settings.device!r} is not a torch device (e.g. cuda, cuda:1, cpu)")
    if Path(settings.output_folder).exists() and not Path(settings.output_folder).is_dir():
        problems.append(f"--output-folder {settings.output_folder} exists and is not a folder")
    return problems


def parse_args(argv: Optional[Sequence[str]] = None) -> DemoSettings:
    """DemoSettings from the command line; exits with a message (status 2) on unusable arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    version = args.version if args.version is not None else (None if args.config else DEFAULT_VERSION)
    settings = DemoSettings(version=version, config=args.config, ckpt=args.ckpt, random_weights=args.random_weights,
                            device=args.device, dtype=args.dtype, offload=args.offload, download=args.download, lora=args.lora,
                            compile=compile_setting(args.compile, args.compile_mode, args.freeze_weights),
                            host=args.host, port=args.port, share=args.share,
                            max_upload_mb=args.max_upload_mb, output_folder=args.output_folder,
                            concurrency=args.concurrency, max_queue=args.max_queue)
    problems = validate(settings)
    if problems:
        parser.error("\n  ".join(problems))
    return settings
