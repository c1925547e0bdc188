#!/usr/bin/env python
"""Turn photos into videos with an SVD model.

    python scripts/sampling/simple_video_sample.py --input_path photo.jpg --version svd_xt
    python scripts/sampling/simple_video_sample.py --input_path 'photos/*.png' --format mp4,gif --num_videos 2

The original script's flags keep working. --input_path takes a file, a folder or a glob. Every video
gets <name>.<format> files, a settings sidecar <name>.json and the input frame <name>_input.png.
Progress bars for the sampling steps and the decoding go to stderr (-q hides them). Exit status: 0
when every video was written, 1 when some input failed, 2 for usage/config errors. See docs/sampling.md.
"""
import argparse
import logging
import re
import sys
import time
from pathlib import Path
from typing import List, Optional

logger = logging.getLogger("simple_video_sample")


def parse_crop_offset(text: str):
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"crop offset must be 'x,y' (or one number for both) in [0, 1], got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    from sgm.inference.checkpoints import VERSIONS
    from sgm.inference.samplers import SAMPLER_NAMES
    from sgm.inference.writers import FORMATS
    from sgm.modules.compile import add_compile_arguments

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("input and output")
    g.add_argument("--input_path", required=True, help="an image file, a folder of images or a glob")
    g.add_argument("--output_folder", default=None, help="default: outputs/simple_video_sample/<version or config name>")
    g.add_argument("--format", action="append", default=None,
                   help=f"output format(s): {', '.join(FORMATS)}; repeat or comma-separate (default mp4)")
    g.add_argument("--watermark", action="store_true", help="embed the original's invisible DWT-DCT watermark")
    g = p.add_argument_group("model")
    g.add_argument("--version", default="svd", choices=sorted(VERSIONS), help="official model version (default svd)")
    g.add_argument("--config", default=None, help="any model config (wins over --version); its sampling: section sets defaults")
    g.add_argument("--ckpt", default=None, help="checkpoint file or diffusers folder (default: the config's sampling.checkpoint)")
    g.add_argument("--download", action="store_true",
                   help="fetch the official checkpoint from the Hugging Face Hub if it is not found (never otherwise)")
    g.add_argument("--download_dir", default=None, help="with --download: put the file here (e.g. checkpoints) instead of the HF cache")
    g.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="apply a LoRA adapter (ours or diffusers/peft names) at STRENGTH (default 1); repeatable")
    g.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default cuda when available)")
    g.add_argument("--dtype", default=None, choices=["fp16", "bf16", "fp32"], help="weights dtype (default fp16 on cuda, fp32 on cpu)")
    g.add_argument("--offload", action="store_true", help="keep the model in CPU memory; each part visits the GPU only while it runs")
    g.add_argument("--ff_chunk", type=int, default=None,
                   help="run transformer MLPs over this many tokens at a time (less memory, same output)")
    g.add_argument("--random_weights", action="store_true", help="no checkpoint: random weights (for tests and timing only)")
    add_compile_arguments(g)
    g = p.add_argument_group("sampling (default: the model config's sampling: section)")
    g.add_argument("--num_frames", type=int, default=None)
    g.add_argument("--num_steps", type=int, default=None)
    g.add_argument("--fps_id", type=int, default=None, help="frame-rate conditioning; videos play at fps_id + 1")
    g.add_argument("--motion_bucket_id", type=int, default=None, help="0..255, more motion when higher")
    g.add_argument("--cond_aug", type=float, default=None, help="noise added to the input frame")
    g.add_argument("--seed", type=int, default=23, help="base seed; each image and video derives its own")
    g.add_argument("--num_videos", type=int, default=1, help="videos per input image")
    g.add_argument("--decoding_t", type=int, default=None, help="frames decoded at once (lower: less memory)")
    g.add_argument("--decoding_overlap", type=int, default=None, help="context frames on each side of a decoding chunk")
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--min_cfg", type=float, default=None,
                   help="lowest per-frame guidance scale: on the first frame (SVD's linear guider), at both ends for a "
                        "triangle or trapezoid guider")
    g.add_argument("--max_cfg", type=float, default=None,
                   help="highest per-frame guidance scale: on the last frame (SVD's linear guider), at the peak for a "
                        "triangle or trapezoid guider; a VanillaCFG model's one scale")
    g.add_argument("--sampler", default=None, choices=SAMPLER_NAMES)
    g.add_argument("--crop_offset", type=parse_crop_offset, default=(0.5, 0.5),
                   help="'x,y' in [0, 1]: where to crop after resizing to cover (0 left/top, 0.5 centre)")
    g = p.add_argument_group("longer videos (docs/sampling.md, \"Longer videos\")")
    g.add_argument("--total_frames", type=int, default=None,
                   help="frames of the whole video; above --num_frames it is made of chained clips (default: one clip)")
    g.add_argument("--chain_overlap", type=int, default=None,
                   help="frames each chained clip shares with the previous one (default num_frames // 4, at least 1)")
    g.add_argument("--color_match", action="store_true", help="hold each chained clip's colours to the first clip's")
    g = p.add_argument_group("logging")
    g.add_argument("-v", "--verbose", action="store_true")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no info lines (errors and the summary only)")
    return p


def output_stems(files: List[Path], folder: Path, num_videos: int) -> List[List[Path]]:
    """<folder>/<stem>[-<ext>][-<n>]_<k> for each file and video index; the extension joins the name
    only when two inputs share a stem, and a number only when they share stem and extension (same
    names in different folders of a glob), so no output overwrites another."""
    stems = [f.stem for f in files]
    names = [f.stem if stems.count(f.stem) == 1 else f"{f.stem}-{f.suffix.lstrip('.').lower()}" for f in files]
    out = []
    for i, name in enumerate(names):
        if names.count(name) > 1:
            name = f"{name}-{names[:i].count(name) + 1}"
        out.append([folder / (f"{name}_{k:02d}" if num_videos > 1 else name) for k in range(num_videos)])
    return out


class ProgressBars:
    """tqdm bars on stderr for one video: its sampling steps, then its decoding chunks, fed by
    `VideoPipeline.generate`'s progress(step, total, stage) callback. name: shown before the stage."""

    UNITS = {"sampling": "step", "decoding": "chunk"}

    def __init__(self, name: str):
        self.name = name
        self.stage: Optional[str] = None
        self.bar = None

    def __call__(self, step: int, total: int, stage: str) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{self.name}: {stage}", unit=self.UNITS.get(stage, "it"), file=sys.stderr,
                            dynamic_ncols=True)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def in_flags(error: BaseException) -> str:
    """The message of a library error in this command line's terms: flags, not library arguments."""
    from sgm.inference import MissingCheckpointError, OutOfMemoryError
    from sgm.inference.options import SamplingOptions

    if isinstance(error, MissingCheckpointError):
        if error.path.startswith("("):  # no path at all: neither --ckpt nor the config's sampling.checkpoint
            return ("no checkpoint: the config's sampling.checkpoint is empty; pass --ckpt with the weights that belong "
                    "to this --config (or --random_weights to try the pipeline without weights)")
        if error.official_name:
            hint = f"put the official file {error.official_name}" + (f" (from {error.source})" if error.source else "")
            hint += f" at {error.path}, pass --ckpt with its location, or add --download to fetch it"
        else:
            hint = "pass --ckpt with the weights that belong to this --config"
        return f"checkpoint not found: {error.path}; {hint}. Weights are downloaded only when asked."
    if isinstance(error, OutOfMemoryError):
        return (f"out of GPU memory while {error.stage}; lower peak memory with --dtype fp16 (or bf16), --offload, "
                f"a smaller --decoding_t (e.g. 2), --ff_chunk 1024, fewer --num_frames or a smaller --height/--width")
    # SamplingOptions names its fields, which are this script's flags without the dashes.
    fields = "|".join(SamplingOptions.__dataclass_fields__)
    return re.sub(rf"^({fields})\b", r"--\1", str(error))


def main(argv: Optional[List[str]] = None) -> int:
    t_start = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)

    from sgm.inference import InferenceError, SamplingOptions, VideoPipeline, write_video
    from sgm.inference.inputs import expand_inputs
    from sgm.inference.pipeline import parse_device, parse_dtype
    from sgm.inference.precision import slow_precision_warning
    from sgm.inference.watermark import add_watermark, check_watermark
    from sgm.modules.compile import compile_setting
    from sgm.inference.writers import parse_formats

    try:
        formats = parse_formats(args.format or ["mp4"])
        if args.num_videos < 1:
            raise ValueError(f"--num_videos must be >= 1, got {args.num_videos}")
        if args.ff_chunk is not None and args.ff_chunk < 1:
            raise ValueError(f"--ff_chunk must be >= 1 (tokens per MLP call), got {args.ff_chunk}")
        name = Path(args.config).stem if args.config else args.version
        folder = Path(args.output_folder) if args.output_folder else Path("outputs") / "simple_video_sample" / name
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"--output_folder {folder} exists and is not a folder")
        files = expand_inputs(args.input_path)
        opts = SamplingOptions(num_frames=args.num_frames, num_steps=args.num_steps, fps_id=args.fps_id,
                               motion_bucket_id=args.motion_bucket_id, cond_aug=args.cond_aug, seed=args.seed,
                               decoding_t=args.decoding_t, decoding_overlap=args.decoding_overlap, height=args.height,
                               width=args.width, min_cfg=args.min_cfg, max_cfg=args.max_cfg, sampler=args.sampler,
                               crop_offset=args.crop_offset, total_frames=args.total_frames,
                               chain_overlap=args.chain_overlap, color_match=args.color_match)
        opts.validate()
        device = parse_device(args.device)
        dtype = parse_dtype(args.dtype, device)
        slow = slow_precision_warning(device, dtype)
        if slow:
            logger.warning("%s", slow)
        logger.info("loading %s on %s (%s)...", args.config or args.version, device, str(dtype).replace("torch.", ""))
        t_load = time.perf_counter()
        pipe = VideoPipeline.load(version=args.version, config=args.config, ckpt=args.ckpt, device=device,
                                  dtype=dtype, offload=args.offload, ff_chunk_size=args.ff_chunk,
                                  random_weights=args.random_weights, download=args.download,
                                  download_dir=args.download_dir, lora=args.lora,
                                  compile=compile_setting(args.compile, args.compile_mode, args.freeze_weights))
        load_s = time.perf_counter() - t_load
        logger.info("model loaded in %.1fs", load_s)
        filled = opts.filled(pipe.defaults)  # validate the combination before the first image
        if args.watermark:
            check_watermark(filled.width, filled.height)
    except (ValueError, FileNotFoundError, ImportError) as e:  # MissingCheckpointError is a FileNotFoundError
        logger.error("%s", in_flags(e))
        return 2

    written, failed = [], []
    t_generate = time.perf_counter()
    for file, stems in zip(files, output_stems(files, folder, args.num_videos)):
        for k, stem in enumerate(stems):
            bars = None if args.quiet else ProgressBars(stem.name)
            try:
                try:
                    result = pipe.generate(file, opts, progress=bars, video_index=k)
                finally:
                    if bars is not None:
                        bars.close()
                if args.watermark:
                    result = add_watermark(result)
                paths = write_video(result, stem, formats)
            except (InferenceError, ValueError, OSError) as e:
                msg = in_flags(e)
                logger.error("%s", msg if str(file) in msg else f"{file}: {msg}")
                failed.append(file)
                break  # the other videos of this input would fail the same way
            logger.info("%s -> %s (seed %d, %.1fs)", file, ", ".join(str(p) for p in paths.values()),
                        result.settings["seed"], result.settings["seconds"])
            written.append(paths)
    generate_s = time.perf_counter() - t_generate
    total_s = time.perf_counter() - t_start
    print(f"wrote {len(written)} video(s) to {folder} in {total_s:.1f}s "
          f"(loading the model {load_s:.1f}s, generating {generate_s:.1f}s)")
    if failed:
        print(f"failed: {len(failed)} input(s): {', '.join(str(f) for f in failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
