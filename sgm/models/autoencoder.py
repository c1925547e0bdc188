"""Autoencoders of the first stage and of the conditioning frame, and their training (sgm style)."""
import logging
import re
from contextlib import contextmanager
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import pytorch_lightning as pl
import torch
import torch.nn as nn

from ..modules.autoencoding.temporal_ae import VideoDecoder, init_temporal_as_identity_
from ..modules.ema import LitEma
from ..util import default, get_obj_from_str, instantiate_from_config

logger = logging.getLogger(__name__)

WHOLE_MODEL_PREFIX = "first_stage_model."  # where a DiffusionEngine checkpoint keeps its first stage
TEMPORAL_PARTS = ("time_stack.", "time_mix_conv.", "mix_factor")  # the layers VideoDecoder adds to Decoder


def _is_temporal(key: str) -> bool:
    return any(part in key for part in TEMPORAL_PARTS)


class AutoencodingEngine(pl.LightningModule):
    """Encoder -> regularizer -> decoder, each built from its config, trainable with main.py.

    encoder_config, decoder_config: the networks (e.g. model.Encoder and temporal_ae.VideoDecoder).
    regularizer_config: e.g. DiagonalGaussianRegularizer (its KL enters the loss through the loss's
    regularization_weights). loss_config: the training loss, e.g.
    sgm.modules.autoencoding.losses.GeneralLPIPSWithDiscriminator (torch.nn.Identity, as in the inference
    configs, cannot train). optimizer_config: optimizer target and params for both optimizers (default
    torch.optim.Adam); the learning rate is `base_learning_rate` (main.py sets `learning_rate`).
    lr_g_factor: the autoencoder's learning rate is lr_g_factor x that. scheduler_config: an object with
    `schedule(step)` (e.g. sgm.lr_scheduler.LambdaLinearScheduler) scaling both learning rates per step.
    trainable_ae_params: groups (lists) of regular expressions matched against parameter names
    (`encoder.`, `decoder.`, `regularization.`); the matching parameters train, one optimizer group per
    group, the others are frozen. Default: all of them. E.g. [["^decoder\\."]] finetunes the decoder only.
    ae_optimizer_args: per group, extra optimizer options (e.g. weight_decay). trainable_disc_params,
    disc_optimizer_args: the same for the discriminator (`loss.discriminator.` names). disc_start_iter: the
    discriminator also waits for this step (the loss's disc_start is the main switch). ema_decay: keep an
    EMA of the trained parameters with this decay (None: no EMA). input_key: batch key of the images
    (B, 3, H, W) or clips (B, T, 3, H, W) in [-1, 1]. ckpt_path: weights to load (this module's state
    dict, a Lightning checkpoint of it, or a whole DiffusionEngine checkpoint whose `first_stage_model.*`
    is taken). max_batch_size: encode and decode at most this many items at a time. monitor: stored.
    ckpt_engine, additional_decode_keys, diff_boost_factor: sgm options, accepted for its configs and
    ignored (only None/empty is meaningful here).
    """

    def __init__(self, *, encoder_config: Dict, decoder_config: Dict, regularizer_config: Dict,
                 loss_config: Optional[Dict] = None, optimizer_config: Optional[Dict] = None, lr_g_factor: float = 1.0,
                 scheduler_config: Optional[Dict] = None, trainable_ae_params: Optional[Sequence[Sequence[str]]] = None,
                 ae_optimizer_args: Optional[Sequence[Dict]] = None,
                 trainable_disc_params: Optional[Sequence[Sequence[str]]] = None,
                 disc_optimizer_args: Optional[Sequence[Dict]] = None, disc_start_iter: int = 0,
                 ema_decay: Optional[float] = None, input_key: str = "jpg", ckpt_path: Optional[str] = None,
                 max_batch_size: Optional[int] = None, monitor: Optional[str] = None, ckpt_engine: Any = None,
                 additional_decode_keys: Optional[Sequence[str]] = None, diff_boost_factor: float = 3.0):
        super().__init__()
        self.encoder: nn.Module = instantiate_from_config(encoder_config)
        self.decoder: nn.Module = instantiate_from_config(decoder_config)
        self.loss: nn.Module = instantiate_from_config(default(loss_config, {"target": "torch.nn.Identity"}))
        self.regularization: nn.Module = instantiate_from_config(regularizer_config)
        self.max_batch_size = max_batch_size
        self.input_key = input_key
        self.monitor = monitor
        self.optimizer_config = default(optimizer_config, {"target": "torch.optim.Adam"})
        self.lr_g_factor = lr_g_factor
        self.scheduler_config = scheduler_config
        self.disc_start_iter = disc_start_iter
        self.automatic_optimization = False  # two optimizers (sgm); see training_step
        self.learning_rate = 1e-4  # overwritten by main.py from base_learning_rate
        self.ema_decay = ema_decay
        self.use_ema = ema_decay is not None
        self._trainable = (trainable_ae_params, ae_optimizer_args, trainable_disc_params, disc_optimizer_args)
        self.setup_trainable()
        # Parts an inference checkpoint need not have: the loss (discriminator) and the EMA start afresh.
        self.inference_unused_keys = ["loss.", "model_ema."]
        if ckpt_path is not None:
            self.init_from_ckpt(ckpt_path)

    def setup_trainable(self) -> None:
        """Optimizer groups, requires_grad and a fresh EMA from the trainable_* options (subclasses that add
        layers call it again)."""
        ae_params, ae_args, disc_params, disc_args = self._trainable
        self.ae_groups = self._param_groups(self._ae_named_parameters(), ae_params, ae_args,
                                            "trainable_ae_params", "ae_optimizer_args")
        self.disc_groups = []
        if hasattr(self.loss, "discriminator"):
            named = [(f"loss.discriminator.{n}", p) for n, p in self.loss.discriminator.named_parameters()]
            self.disc_groups = self._param_groups(named, disc_params, disc_args,
                                                  "trainable_disc_params", "disc_optimizer_args")
        if self.use_ema:
            self.model_ema = LitEma(self._ema_view(), decay=self.ema_decay)

    # ----------------------------------------------------------------------------------- weights
    def init_from_ckpt(self, path: str) -> None:
        """Load weights; a whole DiffusionEngine checkpoint gives its `first_stage_model.*`."""
        from ..checkpoint import load_checkpoint, read_state_dict

        state = read_state_dict(path)
        if not any(k.startswith("encoder.") for k in state) and any(k.startswith(WHOLE_MODEL_PREFIX) for k in state):
            state = {k[len(WHOLE_MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(WHOLE_MODEL_PREFIX)}
        temporal = [k for k in self.state_dict() if k.startswith("decoder.") and _is_temporal(k)]
        if temporal and not any(k in state for k in temporal):
            # an image autoencoder's weights: the video decoder starts by decoding frame by frame as it did
            init_temporal_as_identity_(self.decoder)
            own = self.state_dict()
            state.update({k: own[k] for k in temporal})
            logger.info("%s has no temporal decoder layers: they start as identities (%d tensors)", path, len(temporal))
        load_checkpoint(self, state)
        if self.use_ema and not any(k.startswith("model_ema.") for k in state):
            logger.info("%s has no EMA weights: the EMA starts from the loaded weights", path)
            self.model_ema = LitEma(self._ema_view(), decay=self.ema_decay)

    def _ae_named_parameters(self) -> List[Tuple[str, nn.Parameter]]:
        """The autoencoder's own parameters (not the loss's, not the EMA's), plus loss parameters that train
        with it (a learned log-variance)."""
        named = [(n, p) for n, p in self.named_parameters() if not n.startswith(("loss.", "model_ema."))]
        if hasattr(self.loss, "get_trainable_autoencoder_parameters"):
            extra = {id(p) for p in self.loss.get_trainable_autoencoder_parameters()}
            named += [(f"loss.{n}", p) for n, p in self.loss.named_parameters() if id(p) in extra]
        return named

    @staticmethod
    def _param_groups(named: List[Tuple[str, nn.Parameter]], patterns: Optional[Sequence[Sequence[str]]],
                      options: Optional[Sequence[Dict]], key: str, options_key: str) -> List[Dict]:
        """Optimizer groups {params, **options} by regular expressions; requires_grad set to match."""
        if patterns is None:
            groups = [[p for _, p in named if p.requires_grad]]
        else:
            if isinstance(patterns, str) or any(isinstance(g, str) for g in patterns):
                raise ValueError(f"model.params.{key} must be a list of groups, each a list of regular expressions, "
                                 f"e.g. [['^decoder\\.']]; got {patterns!r}")
            taken = set()
            groups = []
            for group in patterns:
                chosen = [p for n, p in named if id(p) not in taken and any(re.search(pat, n) for pat in group)]
                if not chosen:
                    raise ValueError(f"model.params.{key} group {list(group)} matches no parameter")
                taken.update(id(p) for p in chosen)
                groups.append(chosen)
            for _, p in named:
                p.requires_grad_(id(p) in taken)
        options = list(default(options, [{}] * len(groups)))
        if len(options) != len(groups):
            raise ValueError(f"model.params.{options_key} needs one entry per group of {key} ({len(groups)}), "
                             f"got {len(options)}")
        return [{"params": g, **dict(o)} for g, o in zip(groups, options)]

    def _ema_view(self) -> nn.Module:
        """The averaged parts under their own names (the EMA's buffers are named after them)."""
        return nn.ModuleDict({n: m for n, m in self.named_children() if n not in ("loss", "model_ema")})

    @contextmanager
    def ema_scope(self, context: Optional[str] = None):
        """Swap in the EMA weights for the duration of the block."""
        if not self.use_ema:
            yield None
            return
        view = self._ema_view()
        with self.model_ema.average_parameters(view):
            if context is not None:
                logger.info("%s: switched to EMA weights", context)
            yield None

    # ---------------------------------------------------------------------------- encode / decode
    def _in_batches(self, fn, x: torch.Tensor) -> torch.Tensor:
        if self.max_batch_size is None or x.shape[0] <= self.max_batch_size:
            return fn(x)
        return torch.cat([fn(part) for part in x.split(self.max_batch_size)], dim=0)

    def _encode_moments(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def encode(self, x: torch.Tensor, return_reg_log: bool = False, unregularized: bool = False
               ) -> Union[torch.Tensor, Tuple[torch.Tensor, dict]]:
        """(B, 3, H, W) in [-1, 1] -> latents (B, z, H/f, W/f), unscaled (f = 2**(len(ch_mult) - 1))."""
        z = self._in_batches(self._encode_moments, x)
        if unregularized:
            return z, {}
        z, reg_log = self.regularization(z)
        return (z, reg_log) if return_reg_log else z

    def _decode(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.decoder(z, **kwargs)

    def decode(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        """latents (B, z, h, w), unscaled -> images (B, 3, f*h, f*w) in about [-1, 1]; a video decoder needs
        `timesteps=T` (frames per clip)."""
        if kwargs:  # a video decoder needs whole clips; do not split them
            return self._decode(z, **kwargs)
        return self._in_batches(self._decode, z)

    def forward(self, x: torch.Tensor, **decode_kwargs) -> Tuple[torch.Tensor, torch.Tensor, dict]:
        z, reg_log = self.encode(x, return_reg_log=True)
        return z, self.decode(z, **decode_kwargs), reg_log

    def get_last_layer(self):
        return self.decoder.get_last_layer()

    # ---------------------------------------------------------------------------------- training
    def get_input(self, batch: Dict) -> Tuple[torch.Tensor, Optional[int]]:
        """(frames (N, 3, H, W), frames per clip or None) from images (B, 3, H, W) or clips (B, T, 3, H, W)."""
        x = batch[self.input_key]
        if x.ndim == 5:
            return x.flatten(0, 1), x.shape[1]
        if isinstance(self.decoder, VideoDecoder):
            raise ValueError(f"a video decoder trains on clips: batch[{self.input_key!r}] must be (B, T, 3, H, W), got "
                             f"{tuple(x.shape)}; use a video data module (e.g. sgm.data.video.VideoDataModule)")
        return x, None

    def _decode_kwargs(self, timesteps: Optional[int]) -> Dict:
        return {"timesteps": timesteps} if isinstance(self.decoder, VideoDecoder) else {}

    def discriminator_on(self, step: int) -> bool:
        return bool(self.disc_groups) and step >= max(self.disc_start_iter, getattr(self.loss, "disc_start", 0))

    def on_train_start(self) -> None:
        if not callable(getattr(self.loss, "get_trainable_parameters", None)):
            raise ValueError("training an autoencoder needs model.params.loss_config, e.g. "
                             "sgm.modules.autoencoding.losses.GeneralLPIPSWithDiscriminator (see "
                             "configs/curriculum/toy/stage0_autoencoder.yaml)")

    def training_step(self, batch: Dict, batch_idx: int) -> torch.Tensor:
        """One autoencoder step, then (once it is on) one discriminator step on the same batch.

        NOTE: Lightning counts each LightningOptimizer.step() as a global step under manual optimization;
        the discriminator steps through the strategy directly, so global_step counts batches as in the
        UNet's training (max_steps, checkpoint intervals and disc_start mean the same thing).
        """
        step = self.global_step
        x, timesteps = self.get_input(batch)
        z, xrec, reg_log = self(x, **self._decode_kwargs(timesteps))
        opts = self.optimizers()
        opt_g, opt_d = (opts[0], opts[1]) if isinstance(opts, list) else (opts, None)
        kwargs = dict(regularization_log=reg_log, global_step=step, split="train", timesteps=timesteps)
        loss, log = self.loss(x, xrec, optimizer_idx=0, last_layer=self.get_last_layer(), **kwargs)
        self._check_finite(loss, step)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        if opt_d is not None and self.discriminator_on(step):
            d_loss, d_log = self.loss(x, xrec, optimizer_idx=1, **kwargs)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            self.trainer.strategy.optimizer_step(opt_d.optimizer, closure=lambda: None)
            log.update(d_log)
        for scheduler in self._schedulers():
            scheduler.step()
        if self.use_ema:
            self.model_ema(self._ema_view())
        log["train/disc_on"] = torch.tensor(float(self.discriminator_on(step)))
        self.log_dict(log, prog_bar=False, logger=True, on_step=True, on_epoch=False)
        self.log("loss", log["train/loss/total"], prog_bar=True, logger=True, on_step=True, on_epoch=False)
        return loss.detach()

    def _schedulers(self) -> List:
        schedulers = self.lr_schedulers()
        return [] if schedulers is None else schedulers if isinstance(schedulers, list) else [schedulers]

    def _check_finite(self, loss: torch.Tensor, step: int) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"autoencoder loss is {loss.item()} at global step {step}; lower the learning "
                                     f"rate or resume from the last good checkpoint")

    def _optimizer(self, groups: List[Dict], lr: float) -> torch.optim.Optimizer:
        cfg = self.optimizer_config
        return get_obj_from_str(cfg["target"])(groups, lr=lr, **cfg.get("params", dict()))

    def configure_optimizers(self):
        lr = self.learning_rate
        opts = [self._optimizer(self.ae_groups, self.lr_g_factor * lr)]
        if self.disc_groups:
            opts.append(self._optimizer(self.disc_groups, lr))
        n = sum(p.numel() for g in self.ae_groups for p in g["params"])
        logger.info("training %.2fM autoencoder parameters%s", n / 1e6,
                    f" and a discriminator from step {max(self.disc_start_iter, self.loss.disc_start)}"
                    if self.disc_groups else "")
        if self.scheduler_config is None:
            return opts
        schedule = instantiate_from_config(self.scheduler_config).schedule
        return opts, [torch.optim.lr_scheduler.LambdaLR(o, lr_lambda=schedule) for o in opts]


class AutoencodingEngineLegacy(AutoencodingEngine):
    """The SD-style KL autoencoder, configured by one `ddconfig` shared by encoder and decoder, with
    1x1 quant convs around the latent.

    embed_dim: latent channels. ddconfig: Encoder/Decoder arguments. Other arguments as in
    AutoencodingEngine.
    """

    def __init__(self, embed_dim: int, ddconfig: Dict, ckpt_path: Optional[str] = None, **kwargs):
        kwargs.pop("ckpt_engine", None)
        super().__init__(
            encoder_config={"target": "sgm.modules.diffusionmodules.model.Encoder", "params": ddconfig},
            decoder_config={"target": "sgm.modules.diffusionmodules.model.Decoder", "params": ddconfig},
            **kwargs,
        )
        moments = (1 + int(ddconfig["double_z"])) * ddconfig["z_channels"]
        self.quant_conv = nn.Conv2d(moments, (1 + int(ddconfig["double_z"])) * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)
        self.embed_dim = embed_dim
        self.setup_trainable()
        if ckpt_path is not None:
            from ..checkpoint import load_checkpoint

            load_checkpoint(self, ckpt_path)

    def _encode_moments(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def _decode(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z), **kwargs)


class AutoencoderKL(AutoencodingEngineLegacy):
    """KL autoencoder sampling its posterior. `lossconfig` is the sgm spelling of loss_config."""

    def __init__(self, **kwargs):
        if "lossconfig" in kwargs:
            kwargs["loss_config"] = kwargs.pop("lossconfig")
        super().__init__(regularizer_config={"target": "sgm.modules.autoencoding.regularizers.DiagonalGaussianRegularizer"}, **kwargs)


class AutoencoderKLModeOnly(AutoencodingEngineLegacy):
    """KL autoencoder returning its posterior's mean (SVD's conditioning-frame encoder)."""

    def __init__(self, **kwargs):
        if "lossconfig" in kwargs:
            kwargs["loss_config"] = kwargs.pop("lossconfig")
        super().__init__(
            regularizer_config={"target": "sgm.modules.autoencoding.regularizers.DiagonalGaussianRegularizer",
                                "params": {"sample": False}},
            **kwargs,
        )


class IdentityFirstStage(nn.Module):
    """No autoencoder: diffusion in pixel space."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def encode(self, x: Any, *args, **kwargs) -> Any:
        return x

    def decode(self, x: Any, *args, **kwargs) -> Any:
        return x


def trained_weights(state: Dict[str, torch.Tensor], ema: bool = True) -> Dict[str, torch.Tensor]:
    """The autoencoder of a training checkpoint's state dict, as an inference state dict: the loss
    (discriminator) and EMA entries dropped, and with `ema` the EMA's averages in place of the trained
    weights (LitEma names its copies after the parameters with the dots removed)."""
    out = {k: v for k, v in state.items() if not k.startswith(("loss.", "model_ema."))}
    if ema:
        for key in out:
            shadow = state.get("model_ema." + key.replace(".", ""))
            if shadow is not None:
                out[key] = shadow.to(out[key].dtype)
    return out
