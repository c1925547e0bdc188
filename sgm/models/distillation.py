"""ConsistencyDistillationEngine: a DiffusionEngine that trains a few-step student from a frozen teacher.

The student is `model` (the network every DiffusionEngine has, so its checkpoint loads and samples like
any other); the teacher is a frozen copy of the weights the run starts from (`ckpt_path`), and the target
is an EMA of the student (both without gradients). The loss is
sgm.modules.diffusionmodules.consistency_loss.ConsistencyDistillationLoss; the sampler is
sgm.modules.diffusionmodules.consistency.ConsistencySampler. See docs/distillation.md.
"""
import copy
import logging
from typing import Dict, Optional

import torch
import torch.nn as nn

from ..modules.diffusionmodules.consistency_loss import ConsistencyDistillationLoss
from .diffusion import DiffusionEngine

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TEACHER_PREFIX = "teacher_model."


class ConsistencyDistillationEngine(DiffusionEngine):
    """DiffusionEngine arguments, plus:

    target_decay: EMA decay of the target network after each optimizer step (LCM: 0.95; 0 makes the
    target the student itself without gradient, as in improved consistency training). teacher_dtype:
    "float32", "bfloat16" or "float16": the frozen teacher's weights (bfloat16 halves its memory on a GPU).
    The teacher is not saved in checkpoints (it is rebuilt from `ckpt_path` on resume), the target is.
    `loss_fn_config` must be a ConsistencyDistillationLoss; `ckpt_path` names the teacher's weights.
    With `lora_config` (configs/distill/lora.yaml) only low-rank adapters on the student train: the
    result is a small adapter file that turns the teacher's own weights into the student (`--lora`).
    """

    def __init__(self, *args, target_decay: float = 0.95, teacher_dtype: str = "float32", teacher_ema: bool = True,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= target_decay < 1.0:
            raise ValueError(f"target_decay must be in [0, 1), got {target_decay}")
        if teacher_dtype not in DTYPES:
            raise ValueError(f"teacher_dtype must be one of {sorted(DTYPES)}, got {teacher_dtype!r}")
        if self.loss_fn is not None and not isinstance(self.loss_fn, ConsistencyDistillationLoss):
            raise ValueError("model.params.loss_fn_config of a ConsistencyDistillationEngine must be "
                             "sgm.modules.diffusionmodules.consistency_loss.ConsistencyDistillationLoss, "
                             f"got {type(self.loss_fn).__name__}")
        self.target_decay = target_decay
        if teacher_ema and kwargs.get("ckpt_path"):
            self._network_from_ema(kwargs["ckpt_path"])
        self.teacher_model = self._frozen_copy(DTYPES[teacher_dtype], adapters_on=False)
        self.target_model = self._frozen_copy(torch.float32, adapters_on=True)

    @torch.no_grad()
    def _network_from_ema(self, path: str) -> None:
        """Copy the EMA weights of the network stored in `path` (LitEma's `model_ema.<name without dots>`
        buffers), where it has them, into the network."""
        from ..checkpoint import read_state_dict

        state = read_state_dict(path)
        params = dict(self.model.named_parameters())
        ema = {n: state["model_ema." + n.replace(".", "")] for n in params if "model_ema." + n.replace(".", "") in state}
        for name, value in ema.items():
            params[name].copy_(value.to(params[name].dtype))
        if ema:
            logger.info("teacher and student start from the EMA weights of %s (%d tensors)", path, len(ema))

    def _frozen_copy(self, dtype: torch.dtype, adapters_on: bool) -> nn.Module:
        """A copy of the network without gradients. With `lora_config` (LoRA distillation: only adapters
        train) the teacher's copies of the adapters are switched off, so it is exactly the base network."""
        net = copy.deepcopy(self.model).to(dtype).eval()
        net.requires_grad_(False)
        if not adapters_on:
            for module in net.modules():
                for info in getattr(module, "lora_info", {}).values():
                    info.strength = 0.0
        return net

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self, *args, **kwargs):
        """Everything but the teacher (it is the run's `ckpt_path`, loaded again on resume)."""
        state = super().state_dict(*args, **kwargs)
        for key in [k for k in state if k.startswith(TEACHER_PREFIX)]:
            del state[key]
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As nn.Module's; the teacher keeps its weights when `state_dict` has none."""
        own = {k: v for k, v in super().state_dict(keep_vars=True).items() if k.startswith(TEACHER_PREFIX)}
        merged = {**own, **dict(state_dict)}
        return super().load_state_dict(merged, strict=strict, assign=assign)

    # --------------------------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, batch: Dict):
        loss = self.loss_fn(self.model, self.target_model, self.teacher_model, self.denoiser, self.conditioner, x, batch)
        loss_mean = loss.mean()
        return loss_mean, {"loss": loss_mean}

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)  # includes the sampling EMA (use_ema)
        self.update_target()

    @torch.no_grad()
    def update_target(self) -> None:
        """target <- decay * target + (1 - decay) * student, over the parameters that train."""
        student = dict(self.model.named_parameters())
        for name, p in self.target_model.named_parameters():
            s = student[name]
            if s.requires_grad:
                p.lerp_(s.detach().to(p.dtype), 1.0 - self.target_decay)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher_model.eval()
        self.target_model.eval()
        return self

    def init_from_ckpt(self, path: str, dtype: Optional[torch.dtype] = None) -> None:
        """Load the teacher's weights into the student (and, when built, into teacher and target)."""
        super().init_from_ckpt(path, dtype=dtype)
        for name in ("teacher_model", "target_model"):
            if name in self._modules:
                net = self._modules[name]
                own_dtype = next(net.parameters()).dtype
                net.load_state_dict(self.model.state_dict())
                net.to(own_dtype)
