"""VideoPipeline: one image in, one video out, with the original SVD sampling procedure."""
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from .. import __version__
from ..models.loading import build_model, load_config
from ..modules.autoencoding.temporal_ae import VideoDecoder
from ..modules.compile import CompileOptions, compile_engine
from .chaining import CHAIN_RELEASE_SIGMA, chain_record, default_overlap, plan_chain, sample_chain
from .checkpoints import config_checkpoint, training_config, version_config
from .conditioning import UC_ZERO_KEYS, video_batch
from .decoding import Progress, decode_chunked, effective_overlap
from .download import find_or_download
from .errors import OutOfMemoryError
from .images import ImageLike, cover_and_crop, load_image, warn_if_off_trained_size
from .memory import release_unused_weights, set_ff_chunk_size
from .offload import Offloader
from .options import SamplingOptions, defaults_from_config
from .result import VideoResult
from .seeds import derive_seed, image_fingerprint, make_generator

logger = logging.getLogger(__name__)

DTYPES = {"fp16": torch.float16, "float16": torch.float16, "half": torch.float16, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32, "float": torch.float32}


def parse_dtype(dtype: Union[None, str, torch.dtype], device: torch.device) -> torch.dtype:
    """torch dtype from 'fp16'/'bf16'/'fp32' (default: fp16 on CUDA, fp32 elsewhere)."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use fp16, bf16 or fp32")
    return DTYPES[dtype]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_device(device: Union[None, str, torch.device]) -> torch.device:
    """torch device from 'cuda', 'cuda:1', 'cpu', ... (default: `default_device()`); ValueError for a
    name torch does not know or a CUDA device this machine does not have."""
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}; use cuda, cuda:<index> or cpu") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} was asked for, but torch finds no CUDA GPU here; use --device cpu "
                             f"(slow) or check the NVIDIA driver and that torch was installed with CUDA")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {device} does not exist; this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def apply_loras(network: torch.nn.Module, specs: Sequence[Union[str, Tuple[str, float]]], merge: bool) -> List[dict]:
    """Load each LoRA of `specs` ("file[:strength]" or (file, strength)) into `network`; their records."""
    if not specs:
        return []
    from ..lora import load_lora, parse_lora_spec

    records = []
    for spec in specs:
        path, strength = parse_lora_spec(spec) if isinstance(spec, str) else (str(spec[0]), float(spec[1]))
        name = load_lora(network, path, strength=strength, do_merge=merge)
        records.append({"name": name, "path": path, "strength": strength, "merged": bool(merge)})
    return records


def read_config(config: Union[str, os.PathLike, dict, DictConfig], name: str) -> DictConfig:
    """The full config `config`; ValueError naming the file when it is not valid YAML or lacks `model:`."""
    import yaml

    try:
        cfg = load_config(config)
    except yaml.YAMLError as e:
        raise ValueError(f"{name} is not a valid YAML config: {e}") from e
    if not isinstance(cfg, DictConfig) or "model" not in cfg:
        raise ValueError(f"{name} has no `model:` section")
    return cfg


def to_model_image(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as the model's input: (1, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


class VideoPipeline:
    """Image-to-video sampling with a DiffusionEngine (SVD family).

    model: the DiffusionEngine, in eval mode, with the weights in place. config: its full config
    (`model:` and optionally `sampling:` defaults). device: where it computes. offload: the model
    lives in CPU memory and each part moves to `device` only while it runs. info: what to record
    about the model in every video's settings (version, config, ckpt, dtype). Use `load` to build one.
    """

    def __init__(self, model: torch.nn.Module, config: DictConfig, device: Union[str, torch.device] = "cpu",
                 offload: bool = False, info: Optional[Dict[str, Any]] = None):
        self.model = model
        self.config = config
        self.device = torch.device(device)
        self.offloader = Offloader(self.device, offload)
        self.info = dict(info or {})
        self.defaults = defaults_from_config(config)
        self.trained_size = (self.defaults.width, self.defaults.height)

    # ------------------------------------------------------------------------------------ building
    @classmethod
    def load(cls, version: Optional[str] = "svd_xt", config: Union[None, str, os.PathLike, dict, DictConfig] = None,
             ckpt: Optional[str] = None, device: Union[None, str, torch.device] = None,
             dtype: Union[None, str, torch.dtype] = None, offload: bool = False, ff_chunk_size: Optional[int] = None,
             release_unused: bool = True, random_weights: bool = False, download: bool = False,
             download_dir: Optional[str] = None, lora: Sequence[Union[str, Tuple[str, float]]] = (),
             merge_lora: bool = True, compile: Union[bool, CompileOptions] = False) -> "VideoPipeline":
        """Build the model of `version` (one of sgm.inference.checkpoints.VERSIONS) or of `config`
        (which wins) and load `ckpt` (default: the config's `sampling.checkpoint`). Without `config`, a
        training checkpoint of main.py (`<run>/checkpoints/*.ckpt`) brings its own run config, which
        then wins over `version`.

        device: default cuda when available, else cpu. dtype: "fp16", "bf16" or "fp32" (default
        fp16 on cuda, fp32 on cpu). offload: see the class. ff_chunk_size: run the transformer MLPs
        over at most this many tokens at a time (same output, less memory). release_unused: drop
        weights sampling never reads (first-stage encoder, CLIP text leftovers, the conditioning
        autoencoder's decoder). random_weights: build with random weights and look for no
        checkpoint (tests, benchmarks, demos without weights). ckpt may also be a diffusers folder.
        download: fetch the official file from the Hugging Face Hub when it is not found locally
        (sgm.inference.download; never otherwise), into `download_dir` (default: the HF cache).
        lora: adapter files to apply, each "file.safetensors[:strength]" or (file, strength) (ours or
        diffusers/peft names; sgm.lora). merge_lora: add them into the weights (no cost per step);
        False keeps them apart, so `set_lora_strength` can change them between videos.
        compile: torch.compile the UNet and the decoder (True, or CompileOptions); the first video then
        takes minutes longer to compile (docs/benchmarks.md: what it buys, which size changes recompile).
        On CPU, CompileOptions(mode="max-autotune", freezing=True) is the setting that is faster than eager;
        freezing cannot be combined with offload or merge_lora=False (ValueError).
        Raises MissingCheckpointError naming the path looked for and the official file to put there.
        """
        embedded = training_config(ckpt) if config is None else None  # a main.py checkpoint holds its config
        if embedded is not None:
            config, version = embedded, None
        if config is None:
            if version is None:
                raise ValueError("pass a version (e.g. 'svd_xt') or a config")
            config = version_config(version)
        config_name = str(config) if isinstance(config, (str, os.PathLike)) else "<in-memory config>"
        if embedded is not None:
            config_name = f"the config stored in {ckpt}"
        if version is not None and Path(config_name).name != f"{version}.yaml":
            version = None  # a custom config: the version names no official file
        cfg = read_config(config, config_name)
        device = parse_device(device)
        torch_dtype = parse_dtype(dtype, device)
        if ff_chunk_size is not None and ff_chunk_size < 1:
            raise ValueError(f"ff_chunk_size must be >= 1 or None, got {ff_chunk_size}")
        if isinstance(compile, CompileOptions) and compile.freezing and (offload or (lora and not merge_lora)):
            raise ValueError("compiling with freezing folds the weights into the compiled graph, so they must not "
                             "change after the first video: drop the frozen weights (CompileOptions.freezing; the sampler's "
                             "--freeze_weights, the demo's --freeze-weights) or "
                             + ("offload" if offload else "merge_lora=False") + ", which "
                             + ("moves the weights between devices" if offload else "keeps the adapters' strength adjustable"))
        ckpt_path = None
        if not random_weights:
            ckpt_path = find_or_download(ckpt, config_checkpoint(cfg), version, download, download_dir)
        storage = torch.device("cpu") if offload else device
        t0 = time.perf_counter()
        model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
        model_cfg.get("params", {}).pop("ckpt_path", None)
        model = build_model(model_cfg, ckpt_path=ckpt_path, device=storage, dtype=torch_dtype)  # random if None
        logger.info("built %s from %s in %.1fs", type(model).__name__, ckpt_path or "random weights", time.perf_counter() - t0)
        if getattr(model, "model_ema", None) is not None:  # a training config (use_ema): sample with the EMA
            model.model_ema.copy_to(model.model)  # weights, as the training VideoLogger does
            logger.info("sampling with the EMA weights of %s", ckpt_path or "the model")
        if release_unused:
            release_unused_weights(model)
        if ff_chunk_size is not None:
            set_ff_chunk_size(model, ff_chunk_size)
        loras = apply_loras(model.model.diffusion_model, lora, merge_lora)
        if compile:  # after the LoRAs: compiling sees the adapters' layers
            compile_engine(model, compile if isinstance(compile, CompileOptions) else None)
        info = {"version": version, "config": config_name,
                "ckpt": ckpt_path, "dtype": str(torch_dtype).replace("torch.", ""), "offload": bool(offload),
                "ff_chunk_size": ff_chunk_size, "compile": bool(compile), **({"lora": loras} if loras else {})}
        return cls(model, cfg, device=device, offload=offload, info=info)

    def set_lora_strength(self, name: str, strength: float) -> None:
        """Change the strength of an adapter loaded with merge_lora=False (0: exactly the base model)."""
        from ..lora import set_strength

        set_strength(self.model.model.diffusion_model, name, strength)
        for entry in self.info.get("lora", []):
            if entry["name"] == name:
                entry["strength"] = float(strength)

    # -------------------------------------------------------------------------------------- inputs
    def prepare_image(self, image: ImageLike, opts: Optional[SamplingOptions] = None) -> Image.Image:
        """The RGB (width x height) crop of `image` that conditions the video. InferenceError if unreadable."""
        opts = (opts or SamplingOptions()).filled(self.defaults)
        return cover_and_crop(load_image(image), opts.width, opts.height, opts.crop_offset)

    # ---------------------------------------------------------------------------------- generation
    def generate(self, image: ImageLike, opts: Optional[SamplingOptions] = None, progress: Progress = None,
                 video_index: int = 0) -> VideoResult:
        """One video from `image` (a path or a PIL image).

        opts: sampling options (None fields take `self.defaults`). progress(step, total, stage)
        with stage "sampling" or "decoding". video_index: which of several videos from the same
        image this is; it enters the derived seed.
        """
        opts = (opts or SamplingOptions()).filled(self.defaults)
        t0 = time.perf_counter()
        z, frame, seed_info = self._latents(image, opts, progress, video_index)
        frames = self.decode_latents(z, opts, progress)
        settings = opts.to_dict()
        if "chain" in seed_info:
            seed_info["chain"].update(chain_record(frames, seed_info["chain"]["clips"]))
        settings.update(seed_info, decoding_overlap=self._overlap(opts, len(z)), fps=opts.fps_id + 1,
                        device=str(self.device), sgm_version=__version__, seconds=round(time.perf_counter() - t0, 3),
                        **self.info)
        if isinstance(image, (str, os.PathLike)):
            settings["input_path"] = str(image)
        return VideoResult(frames=frames, fps=opts.fps_id + 1, settings=settings, input_image=frame)

    def sample_latents(self, image: ImageLike, opts: Optional[SamplingOptions] = None, progress: Progress = None,
                       video_index: int = 0) -> torch.Tensor:
        """The sampled latents (T, C, h, w) of `generate`, before decoding (float32, on the device; a chained
        video's (total_frames, C, h, w) are on the CPU)."""
        opts = (opts or SamplingOptions()).filled(self.defaults)
        return self._latents(image, opts, progress, video_index)[0]

    def decode_latents(self, z: torch.Tensor, opts: Optional[SamplingOptions] = None, progress: Progress = None) -> np.ndarray:
        """Frames (T, H, W, 3) uint8 from latents (T, C, h, w), decoded in overlapping chunks."""
        opts = (opts or SamplingOptions()).filled(self.defaults)
        try:
            with torch.no_grad():
                return self._decode(z, opts, progress)
        except torch.cuda.OutOfMemoryError as e:
            raise OutOfMemoryError("decoding", str(e).splitlines()[0]) from e

    def _latents(self, image: ImageLike, opts: SamplingOptions, progress: Progress, video_index: int):
        source = load_image(image)
        fingerprint = image_fingerprint(source)
        seed = derive_seed(opts.seed, fingerprint, video_index)
        frame = cover_and_crop(source, opts.width, opts.height, opts.crop_offset)
        warn_if_off_trained_size(opts.width, opts.height, self.trained_size)
        seed_info = {"seed": seed, "base_seed": opts.seed, "video_index": video_index, "image_sha256": fingerprint}
        try:
            with torch.no_grad():
                if opts.total_frames is not None and opts.total_frames != opts.num_frames:  # chained, or one cut clip
                    z, seed_info["chain"] = self._chained_latents(frame, opts, seed, progress)
                else:
                    z = self._sample_latents(frame, opts, seed, progress)
        except torch.cuda.OutOfMemoryError as e:
            raise OutOfMemoryError("sampling", str(e).splitlines()[0]) from e
        return z, frame, seed_info

    def _chained_latents(self, frame: Image.Image, opts: SamplingOptions, seed: int, progress: Progress,
                         tie: bool = True, release_sigma: float = CHAIN_RELEASE_SIGMA, anchor: bool = True):
        """Latents (total_frames, C, h, w) on the CPU made clip by clip (`sgm.inference.chaining`),
        and the chain's record for the settings. tie, release_sigma: see `sample_chain`. anchor: every
        clip attends to the CLIP embedding of `frame`, the video's first frame (False: of the frame the
        clip starts on, as naive chaining does). Other values than the defaults are for
        scripts/benchmark/long_video.py."""
        overlap = opts.chain_overlap if opts.chain_overlap is not None else default_overlap(opts.num_frames)
        clips = plan_chain(opts.total_frames, opts.num_frames, overlap, seed)

        def decode_frame(z: torch.Tensor, index: int) -> Image.Image:
            start = max(0, min(index - opts.decoding_t // 2, len(z) - opts.decoding_t))
            window = self._decode(z[start:start + opts.decoding_t], opts, None)  # (t, H, W, 3) uint8
            return Image.fromarray(window[index - start])

        done = []  # clips sampled so far: progress counts the steps of the whole chain

        def chain_progress(step: int, total: int, stage: str) -> None:
            progress(len(done) * total + step, len(clips) * total, stage)

        def sample_clip(image: Image.Image, clip_seed: int, wrap) -> torch.Tensor:
            z = self._sample_latents(image, opts, clip_seed, chain_progress if progress is not None else None, wrap,
                                     clip_image=frame if anchor else None)
            done.append(clip_seed)
            return z

        z = sample_chain(frame, clips, opts.num_frames, sample_clip, decode_frame, tie=tie, release_sigma=release_sigma,
                         colour_match=opts.color_match)
        record = {"total_frames": opts.total_frames, "clip_frames": opts.num_frames, "overlap": overlap, "tie": tie,
                  "release_sigma": release_sigma, "clip_embedding": "first frame" if anchor else "clip start",
                  "color_match": opts.color_match,
                  "clips": [c.to_dict() for c in clips]}
        return z, record

    def _sample_latents(self, frame: Image.Image, opts: SamplingOptions, seed: int, progress: Progress,
                        wrap_denoiser=None, clip_image: Optional[Image.Image] = None) -> torch.Tensor:
        """Latents (T, C, h, w) of one clip conditioned on `frame`, sampled with `seed`; clip_image: the
        image of the CLIP embedding when it is not `frame` (`video_batch`)."""
        generator = make_generator(seed)
        image = to_model_image(frame)  # (1, 3, H, W)
        cond_noise = torch.randn(image.shape, generator=generator)
        noise = torch.randn((opts.num_frames, *self.model.latent_shape(opts.height, opts.width)), generator=generator)  # (T, C, h, w)
        clip = None if clip_image is None else to_model_image(clip_image).to(self.device)
        batch = video_batch(image.to(self.device), cond_noise.to(self.device), opts.num_frames, opts.fps_id,
                            opts.motion_bucket_id, opts.cond_aug, clip_image=clip)

        def callback(step):
            if progress is not None:
                progress(step.i + 1, step.num_steps, "sampling")

        return self.model.sample_video(batch, opts.num_frames, noise, sampler=opts.sampler, num_steps=opts.num_steps,
                                       min_cfg=opts.min_cfg, max_cfg=opts.max_cfg, uc_keys=UC_ZERO_KEYS,
                                       generator=generator, callback=callback, wrap_denoiser=wrap_denoiser,
                                       on_device=self.offloader.on_device)

    def _overlap(self, opts: SamplingOptions, num_frames: int) -> int:
        if not isinstance(getattr(self.model.first_stage_model, "decoder", None), VideoDecoder):
            return 0  # a per-frame decoder has no seams
        return effective_overlap(num_frames, opts.decoding_t, opts.decoding_overlap)

    def _decode(self, z: torch.Tensor, opts: SamplingOptions, progress: Progress) -> np.ndarray:
        model = self.model

        def decode(window: torch.Tensor) -> torch.Tensor:  # one clip for the decoder; a chained video's latents wait on the CPU
            return model.decode_first_stage(window.to(self.device), n_samples_a_time=window.shape[0])

        def to_uint8(x: torch.Tensor) -> torch.Tensor:  # (t, 3, H, W) in [-1, 1] -> (t, H, W, 3) uint8 on the CPU
            x = ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)
            return (x * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu()

        with self.offloader.on_device(model.first_stage_model, "first_stage"):
            frames = decode_chunked(decode, z, opts.decoding_t, self._overlap(opts, len(z)), progress, to_uint8)
        return frames.numpy()
