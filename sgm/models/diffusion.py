"""DiffusionEngine: conditioner + denoiser(network) + sampler + first stage, trained with Lightning."""
import contextlib
import functools
import logging
import math
import re
from contextlib import contextmanager
from typing import Callable, ContextManager, Dict, List, Optional, Sequence, Tuple, Union

import pytorch_lightning as pl
import torch
import torch.nn as nn

from ..modules import UNCONDITIONAL_CONFIG
from ..modules.autoencoding.temporal_ae import VideoDecoder
from ..modules.diffusionmodules.sampling import StepCallback
from ..modules.diffusionmodules.video_frames import expand_cond_per_frame, video_model_inputs
from ..modules.diffusionmodules.wrappers import OPENAIUNETWRAPPER
from ..modules.ema import LitEma
from ..util import default, disabled_train, get_obj_from_str, instantiate_from_config
from .video_sampling import build_sampler, guidance_conditioning

logger = logging.getLogger(__name__)
OnDevice = Callable[[nn.Module, str], ContextManager]


class DiffusionEngine(pl.LightningModule):
    """A latent diffusion model and its training step.

    network_config: the denoiser network (VideoUNet for SVD). denoiser_config: preconditioning
    (Denoiser + scaling). first_stage_config: the autoencoder (frozen). conditioner_config: the
    GeneralConditioner (default: no conditioning). sampler_config: sampler with discretization and
    guider, used by `sample` and the logging callback. optimizer_config: optimizer target and params
    (default AdamW); the learning rate is `base_learning_rate` from the config (set by main.py as
    `learning_rate`). scheduler_config: an LR schedule object with a `schedule(step)` method
    (e.g. sgm.lr_scheduler.LambdaLinearScheduler), applied per step. loss_fn_config: the training loss
    (StandardDiffusionLoss). network_wrapper: adapter from the denoiser call to the network
    (default OpenAIWrapper). ckpt_path: weights to load after building. use_ema: keep an EMA of the
    network. ema_decay_rate: its decay. scale_factor: latent scale (0.18215 for the SD VAE).
    disable_first_stage_autocast: run the autoencoder in full precision. input_key: batch key of
    the training images/videos. log_keys, no_cond_log: accepted for sgm configs and ignored (the
    VideoLogger callback does the logging).
    compile_model: torch.compile the network. en_and_decode_n_samples_a_time: frames per autoencoder
    call. trainable_parameters: which network parameters train: "all" (default), "temporal"
    (the temporal layers of a video UNet: time_stack, time_mixer, time_pos_embed) or a list of
    regular expressions matched against names in `model.diffusion_model`; the EMA averages only those.
    lora_config: train low-rank adapters instead ({targets, rank, alpha, name}, see
    sgm.lora.training): the network's own weights are frozen and only the adapters train.
    """

    def __init__(self, network_config: Dict, denoiser_config: Dict, first_stage_config: Dict,
                 conditioner_config: Optional[Dict] = None, sampler_config: Optional[Dict] = None,
                 optimizer_config: Optional[Dict] = None, scheduler_config: Optional[Dict] = None,
                 loss_fn_config: Optional[Dict] = None, network_wrapper: Optional[str] = None,
                 ckpt_path: Optional[str] = None, use_ema: bool = False, ema_decay_rate: float = 0.9999,
                 scale_factor: float = 1.0, disable_first_stage_autocast: bool = False, input_key: str = "jpg",
                 log_keys: Optional[List] = None, no_cond_log: bool = False, compile_model: bool = False,
                 en_and_decode_n_samples_a_time: Optional[int] = None,
                 trainable_parameters: Union[str, Sequence[str]] = "all", lora_config: Optional[Dict] = None):
        super().__init__()
        self.log_keys = log_keys
        self.input_key = input_key
        self.optimizer_config = default(optimizer_config, {"target": "torch.optim.AdamW"})
        network = instantiate_from_config(network_config)
        self.model = get_obj_from_str(default(network_wrapper, OPENAIUNETWRAPPER))(network, compile_model=compile_model)
        if lora_config is not None:
            from ..lora.training import attach_training_lora

            trainable_parameters = attach_training_lora(self.model.diffusion_model, lora_config, trainable_parameters)
        self.lora_config = lora_config
        self.denoiser = instantiate_from_config(denoiser_config)
        self.sampler_config = sampler_config
        self.sampler = instantiate_from_config(sampler_config) if sampler_config is not None else None
        self.conditioner = instantiate_from_config(default(conditioner_config, UNCONDITIONAL_CONFIG))
        self.scheduler_config = scheduler_config
        self._init_first_stage(first_stage_config)
        self.loss_fn = instantiate_from_config(loss_fn_config) if loss_fn_config is not None else None
        self.trainable_parameters = trainable_parameters
        self.use_ema = use_ema
        self.ema_decay_rate = ema_decay_rate
        self._network_trainable()  # before the EMA, which then averages only the parameters that train
        if use_ema:
            self._new_ema()
        self.scale_factor = scale_factor
        self.disable_first_stage_autocast = disable_first_stage_autocast
        self.no_cond_log = no_cond_log
        self.en_and_decode_n_samples_a_time = en_and_decode_n_samples_a_time
        self.learning_rate = 1e-4  # overwritten by main.py from base_learning_rate
        if ckpt_path is not None:
            self.init_from_ckpt(ckpt_path)

    # ----------------------------------------------------------------------------------- weights
    def init_from_ckpt(self, path: str, dtype: Optional[torch.dtype] = None) -> None:
        """Load weights (.safetensors / .ckpt / .pt). Fails if weights the model uses are missing."""
        from ..checkpoint import load_checkpoint

        missing, unexpected = load_checkpoint(self, path, dtype=dtype)
        logger.info("restored from %s (%d missing unused, %d unexpected keys)", path, len(missing), len(unexpected))
        if self.use_ema and any(k.startswith("model_ema.") for k in missing):
            logger.info("%s has no EMA weights: the EMA starts from the loaded network weights", path)
            self._new_ema()

    def _new_ema(self) -> None:
        """An EMA of the network's current weights, of the parameters that train (requires_grad)."""
        self.model_ema = LitEma(self.model, decay=self.ema_decay_rate)
        # An EMA is optional in a checkpoint (the released ones have none): loading does not require it.
        self.model_ema.inference_unused_keys = [""]

    def _init_first_stage(self, config: Dict) -> None:
        model = instantiate_from_config(config).eval()
        model.train = disabled_train.__get__(model)
        for param in model.parameters():
            param.requires_grad = False
        self.first_stage_model = model

    def _autoencoder_context(self, device: torch.device):
        if self.disable_first_stage_autocast:
            return torch.autocast(device.type, enabled=False)
        return contextlib.nullcontext()

    def _first_stage_dtype(self) -> torch.dtype:
        p = next(self.first_stage_model.parameters(), None)
        return torch.float32 if p is None else p.dtype

    # ------------------------------------------------------------------------------ first stage
    @torch.no_grad()
    def decode_first_stage(self, z: torch.Tensor, n_samples_a_time: Optional[int] = None) -> torch.Tensor:
        """Latents (N, C, h, w), scaled -> images (N, 3, 8h, 8w) in about [-1, 1].

        The video decoder sees `n_samples_a_time` frames at a time as one clip (default
        `en_and_decode_n_samples_a_time`, else all). For decoding long clips in overlapping chunks
        see `sgm.inference.decoding`.
        """
        z = (z / self.scale_factor).to(self._first_stage_dtype())
        n = n_samples_a_time or self.en_and_decode_n_samples_a_time or z.shape[0]
        out = []
        with self._autoencoder_context(z.device):
            for i in range(math.ceil(z.shape[0] / n)):
                chunk = z[i * n:(i + 1) * n]
                kwargs = {"timesteps": len(chunk)} if isinstance(getattr(self.first_stage_model, "decoder", None), VideoDecoder) else {}
                out.append(self.first_stage_model.decode(chunk, **kwargs))
        return torch.cat(out, dim=0)

    @torch.no_grad()
    def encode_first_stage(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [-1, 1] -> scaled latents (N, C, H/8, W/8)."""
        n = default(self.en_and_decode_n_samples_a_time, x.shape[0])
        x = x.to(self._first_stage_dtype())
        out = []
        with self._autoencoder_context(x.device):
            for i in range(math.ceil(x.shape[0] / n)):
                out.append(self.first_stage_model.encode(x[i * n:(i + 1) * n]))
        return self.scale_factor * torch.cat(out, dim=0)

    # ---------------------------------------------------------------------------------- training
    def get_input(self, batch: Dict) -> torch.Tensor:
        """The training images (B, 3, H, W) or videos (B, T, 3, H, W), flattened to (B*T, 3, H, W)."""
        x = batch[self.input_key]
        return x.flatten(0, 1) if x.ndim == 5 else x

    def forward(self, x: torch.Tensor, batch: Dict) -> Tuple[torch.Tensor, Dict]:
        loss = self.loss_fn(self.model, self.denoiser, self.conditioner, x, batch)
        loss_mean = loss.mean()
        return loss_mean, {"loss": loss_mean}

    def shared_step(self, batch: Dict) -> Tuple[torch.Tensor, Dict]:
        x = self.encode_first_stage(self.get_input(batch))
        batch["global_step"] = self.global_step
        return self(x, batch)

    def training_step(self, batch: Dict, batch_idx: int) -> torch.Tensor:
        loss, loss_dict = self.shared_step(batch)
        self.check_finite(loss)
        self.log_dict(loss_dict, prog_bar=True, logger=True, on_step=True, on_epoch=False)
        self.log("global_step", float(self.global_step), prog_bar=True, logger=True, on_step=True, on_epoch=False)
        if self.scheduler_config is not None:
            self.log("lr_abs", self.optimizers().param_groups[0]["lr"], prog_bar=True, logger=True, on_step=True, on_epoch=False)
        return loss

    def check_finite(self, loss: torch.Tensor) -> None:
        """Raise FloatingPointError when the loss is not finite on this rank or on any other (all ranks
        decide together, so a multi-GPU run stops instead of waiting on the rank that stopped)."""
        finite = bool(torch.isfinite(loss))
        anywhere = not finite
        if self._trainer is not None:
            anywhere = self.trainer.strategy.reduce_boolean_decision(anywhere, all=False)
        if anywhere:
            where = f"is {loss.item()}" if not finite else "is not finite on another rank"
            raise FloatingPointError(
                f"training loss {where} at global step {self.global_step}; lower the learning rate, "
                f"use bf16 instead of fp16, or resume from the last good checkpoint")

    def on_train_start(self, *args, **kwargs):
        if self.loss_fn is None:
            raise ValueError("training needs model.params.loss_fn_config (e.g. StandardDiffusionLoss)")
        if self.use_ema:
            self.check_ema_follows_network()

    def check_ema_follows_network(self) -> None:
        """ValueError when the network's trained parameters no longer match the EMA's copies by name and
        shape, as after a strategy that shards or flattens parameters (FSDP, DeepSpeed stage 3): the
        EMA update would then fail or silently skip them."""
        params = dict(self.model.named_parameters())
        shadows = dict(self.model_ema.named_buffers())
        lost = [name for name, s_name in self.model_ema.m_name2s_name.items()
                if name not in params or params[name].shape != shadows[s_name].shape]
        if lost:
            strategy = type(self._trainer.strategy).__name__ if self._trainer is not None else "this strategy"
            raise ValueError(f"the EMA cannot follow the network under {strategy}: {len(lost)} trained parameter(s) "
                             f"are renamed or sharded (e.g. {lost[0]}); use strategy ddp or deepspeed_stage_2, or "
                             f"set model.params.use_ema=false")

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        self.update_ema()

    def update_ema(self) -> None:
        """One EMA update of the network weights, after each optimizer step.

        NOTE: sgm updated the EMA in on_train_batch_end, which Lightning runs after the checkpoint
        callback of the same step, so checkpoints lacked that step's update (and a resumed run's EMA
        differed from an uninterrupted one's); with gradient accumulation it also updated per batch.
        """
        if self.use_ema:
            self.model_ema(self.model)

    @contextmanager
    def ema_scope(self, context: Optional[str] = None):
        """Swap in the EMA weights of the network for the duration of the block."""
        if self.use_ema:
            self.model_ema.store(self.model.parameters())
            self.model_ema.copy_to(self.model)
            if context is not None:
                logger.info("%s: switched to EMA weights", context)
        try:
            yield None
        finally:
            if self.use_ema:
                self.model_ema.restore(self.model.parameters())
                if context is not None:
                    logger.info("%s: restored training weights", context)

    def instantiate_optimizer_from_config(self, params, lr: float, cfg: Dict):
        return get_obj_from_str(cfg["target"])(params, lr=lr, **cfg.get("params", dict()))

    def _network_trainable(self) -> List[Tuple[str, nn.Parameter, bool]]:
        """(name, parameter, trains) for the network, by `trainable_parameters`; requires_grad set to match."""
        spec = self.trainable_parameters
        if spec == "temporal":
            patterns = [r"(^|\.)time_stack\.", r"(^|\.)time_mixer\.", r"(^|\.)time_pos_embed\."]
        elif spec == "all":
            patterns = None
        elif isinstance(spec, str):
            patterns = [spec]
        else:
            patterns = list(spec)
        out = []
        for name, p in self.model.diffusion_model.named_parameters():
            keep = patterns is None or any(re.search(pat, name) for pat in patterns)
            p.requires_grad_(keep)
            out.append((name, p, keep))
        if not any(keep for _, _, keep in out):
            raise ValueError(f"trainable_parameters={spec!r} matches no parameter of the network")
        return out

    def select_trainable_parameters(self) -> List[nn.Parameter]:
        """Set requires_grad on the network by `trainable_parameters` and return the trainable ones
        (plus those of trainable embedders)."""
        named = self._network_trainable()
        chosen = [p for _, p, keep in named if keep]
        n_train, n_all = sum(p.numel() for p in chosen), sum(p.numel() for _, p, _ in named)
        logger.info("training %.1fM of %.1fM network parameters (%s)", n_train / 1e6, n_all / 1e6, self.trainable_parameters)
        for embedder in self.conditioner.embedders:
            if embedder.is_trainable:
                chosen += [p for p in embedder.parameters() if p.requires_grad]
        return chosen

    def configure_optimizers(self):
        params = self.select_trainable_parameters()
        opt = self.instantiate_optimizer_from_config(params, self.learning_rate, self.optimizer_config)
        if self.scheduler_config is None:
            return opt
        scheduler = instantiate_from_config(self.scheduler_config)
        lr_scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=scheduler.schedule)
        return [opt], [{"scheduler": lr_scheduler, "interval": "step", "frequency": 1}]

    # ---------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, cond: Dict, uc: Optional[Dict] = None, batch_size: int = 16, shape: Optional[Sequence[int]] = None,
               generator: Optional[torch.Generator] = None, num_steps: Optional[int] = None, **kwargs) -> torch.Tensor:
        """Latent samples (batch_size, *shape) from `model.sampler` (the sgm surface; num_steps: its
        step count, default the sampler's own); kwargs go to the network. For videos use `sample_video`."""
        if self.sampler is None:
            raise ValueError("this model has no sampler_config")
        randn = torch.randn(batch_size, *shape, generator=generator,
                            device=generator.device if generator is not None else self.device).to(self.device)
        denoiser = functools.partial(self.denoiser, self.model, **kwargs)
        return self.sampler(denoiser, randn, cond, uc=uc, num_steps=num_steps, generator=generator)

    def sample_video(self, batch: Dict, num_frames: int, noise: torch.Tensor, *, sampler: Optional[str] = None,
                     num_steps: Optional[int] = None, min_cfg: Optional[float] = None, max_cfg: Optional[float] = None,
                     uc_keys: Optional[Sequence[str]] = None, generator: Optional[torch.Generator] = None,
                     callback: Optional[StepCallback] = None, wrap_denoiser: Optional[Callable[[Callable], Callable]] = None,
                     on_device: Optional[OnDevice] = None) -> torch.Tensor:
        """Latents (B*T, C, h, w) of B videos of T = num_frames frames, sampled with guidance.

        batch: the conditioner's inputs for the B videos (per-video entries have B rows; per-frame
        ones, like SVD's scalar conditions, B*T). noise: the unit starting noise (B*T, C, h, w)
        (see `latent_shape`). sampler: a name of `sgm.models.video_sampling.SAMPLERS` (default the
        config's). num_steps: default the config's. min_cfg, max_cfg: the low and high end of the
        guider's per-frame scale curve (see `guider_config_for_call`; default the config's).
        uc_keys: input keys zeroed in the unconditional branch (see `guidance_conditioning`).
        generator: source of the noise drawn while sampling (ancestral / churn). callback: called
        with a `SamplerStep` after every step; a tensor it returns replaces x. wrap_denoiser: given
        this call's denoiser `(x, sigma, cond) -> x0`, returns the one to sample with (e.g. one that
        puts known frames into the prediction). on_device(module,
        name): a context manager placing a part of the model for its use (offloading).

        Steps: 1. (c, uc) from the conditioner, dropout off. 2. Repeated to one row per frame.
        3. A sampler and guider for this call (nothing is changed on `self`). 4. The denoiser with
        the video inputs (`num_video_frames`, `image_only_indicator`). 5. The sampling loop.
        """
        if self.sampler_config is None:
            raise ValueError("this model has no sampler_config (model.params.sampler_config)")
        t = num_frames
        if noise.ndim != 4 or noise.shape[0] % t:
            raise ValueError(f"noise must be (B*T, C, h, w) with T={t} frames per video, got shape {tuple(noise.shape)}")
        place = on_device or _in_place
        with torch.no_grad(), place(self.conditioner, "conditioner"):
            c, uc = guidance_conditioning(self.conditioner, batch, uc_keys)  # 1.
        b = noise.shape[0] // t
        c, uc = expand_cond_per_frame(c, b, t), expand_cond_per_frame(uc, b, t)  # 2. (B*T, ...)
        run = build_sampler(self.sampler_config, sampler, t, min_cfg, max_cfg)  # 3.
        noise = noise.to(self.device)
        with torch.no_grad():
            copies = run.guider.prepare_inputs(noise, noise.new_ones(noise.shape[0]), c, uc)[0].shape[0] // noise.shape[0]
        denoiser = functools.partial(self.denoiser, self.model, **video_model_inputs(copies * b, t, noise.device))  # 4.
        if wrap_denoiser is not None:
            denoiser = wrap_denoiser(denoiser)
        with torch.no_grad(), place(self.model, "network"):
            return run(denoiser, noise, c, uc=uc, num_steps=num_steps, callback=callback, generator=generator)  # 5.

    def latent_shape(self, height: int, width: int) -> Tuple[int, int, int]:
        """(C, h, w) of the latents of height x width pixel frames."""
        f = 2 ** (self.first_stage_model.decoder.num_resolutions - 1)
        return self.model.diffusion_model.out_channels, height // f, width // f


@contextmanager
def _in_place(module: nn.Module, name: str):
    yield module
