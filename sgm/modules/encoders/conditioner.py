"""GeneralConditioner: runs every embedder on its batch entry and merges the results by output key."""
import logging
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from ...util import disabled_train, instantiate_from_config
from .base import AbstractEmbModel

logger = logging.getLogger(__name__)

KEY2CATDIM = {"vector": 1, "crossattn": 2, "concat": 1}
# NOTE: only for third-party embedders that do not declare `output_key`; the original routed every
# embedder this way, by the rank of its output.
LEGACY_OUTPUT_DIM2KEYS = {2: "vector", 3: "crossattn", 4: "concat", 5: "concat"}
ENTRY_KEYS = ("target", "params", "is_trainable", "ucg_rate", "ucg_group", "input_key", "input_keys", "legacy_ucg_value",
              "output_key")


class GeneralConditioner(nn.Module):
    """Holds the embedders and builds the conditioning dict `{"vector", "crossattn", "concat"}`.

    emb_models: list of embedder configs. Each entry has `target`/`params` and: `input_key` (or
    `input_keys`) naming its batch entry; `is_trainable` (default False: frozen, always eval);
    `ucg_rate` (probability, per item, of zeroing the embedding in training, for classifier-free
    guidance; applied in training mode or when `forward(..., dropout=True)`, never in eval mode);
    `ucg_group` (a name: embedders of one group are dropped together, for the same items,
    so that training sees the fully unconditional input that guidance uses; they must share `ucg_rate`);
    `legacy_ucg_value` (instead of zeroing, replace the raw input, e.g. a caption by "");
    `output_key` (override of the embedder's declared output key).
    """

    def __init__(self, emb_models: Sequence[Dict]):
        super().__init__()
        embedders, group_rates = [], {}
        for n, entry in enumerate(emb_models):
            unknown = sorted(set(entry) - set(ENTRY_KEYS))
            if unknown:
                raise ValueError(f"embedder #{n} config has unknown key(s) {unknown}; allowed: {', '.join(ENTRY_KEYS)}")
            embedder = instantiate_from_config(entry)
            if not isinstance(embedder, AbstractEmbModel):
                raise ValueError(f"embedder #{n} ({entry['target']}) must subclass sgm.modules.encoders.base.AbstractEmbModel")
            embedder.is_trainable = bool(entry.get("is_trainable", False))
            embedder.ucg_rate = float(entry.get("ucg_rate", 0.0))
            embedder.ucg_group = entry.get("ucg_group", None)
            if embedder.ucg_group is not None:
                rate = group_rates.setdefault(embedder.ucg_group, embedder.ucg_rate)
                if rate != embedder.ucg_rate:
                    raise ValueError(f"embedder #{n}: ucg_group {embedder.ucg_group!r} mixes ucg_rate {rate} and "
                                     f"{embedder.ucg_rate}; give every embedder of a group the same ucg_rate")
            if "input_key" in entry:
                embedder.input_key = entry["input_key"]
            elif "input_keys" in entry:
                embedder.input_keys = list(entry["input_keys"])
            else:
                raise ValueError(f"embedder #{n} ({entry['target']}) needs 'input_key' or 'input_keys'")
            embedder.legacy_ucg_val = entry.get("legacy_ucg_value", None)
            if "output_key" in entry:
                if entry["output_key"] not in KEY2CATDIM:
                    raise ValueError(f"embedder #{n}: output_key must be one of {list(KEY2CATDIM)}")
                embedder.output_key = entry["output_key"]
            if not embedder.is_trainable:
                embedder.train = disabled_train.__get__(embedder)
                for param in embedder.parameters():
                    param.requires_grad = False
                embedder.eval()
            logger.debug("embedder #%d: %s on %r, trainable=%s", n, type(embedder).__name__,
                         embedder.input_key or getattr(embedder, "input_keys", None), embedder.is_trainable)
            embedders.append(embedder)
        self.embedders = nn.ModuleList(embedders)

    @staticmethod
    def _keep_mask(embedder: AbstractEmbModel, n: int, device, masks: Optional[Dict[str, torch.Tensor]]) -> torch.Tensor:
        """(n,) float, 1 = keep this item's conditioning; shared by the embedders of one `ucg_group` in a call."""
        group = getattr(embedder, "ucg_group", None)
        if masks is not None and group is not None and group in masks:
            mask = masks[group]
            if mask.shape[0] != n:
                raise ValueError(f"ucg_group {group!r} joins embedders whose inputs have {mask.shape[0]} and {n} items")
            return mask.to(device)
        mask = torch.bernoulli(torch.full((n,), 1.0 - embedder.ucg_rate, device=device))
        if masks is not None and group is not None:
            masks[group] = mask
        return mask

    def _inputs(self, embedder: AbstractEmbModel, batch: Dict, masks: Optional[Dict[str, torch.Tensor]], dropout: bool):
        if embedder.input_key is not None:
            value = batch[embedder.input_key]
            if dropout and embedder.legacy_ucg_val is not None and embedder.ucg_rate > 0.0:
                keep = self._keep_mask(embedder, len(value), "cpu", masks) > 0
                value = [v if k else embedder.legacy_ucg_val for v, k in zip(value, keep.tolist())]
            return [value]
        return [batch[k] for k in embedder.input_keys]

    @staticmethod
    def _output_key(embedder: AbstractEmbModel, emb: torch.Tensor) -> str:
        if embedder.output_key is not None:
            return embedder.output_key
        return LEGACY_OUTPUT_DIM2KEYS[emb.dim()]

    def _embed(self, embedder: AbstractEmbModel, batch: Dict, zero: bool, like: Optional[List[torch.Tensor]] = None,
               masks: Optional[Dict[str, torch.Tensor]] = None, dropout: bool = False):
        """Outputs of one embedder. With `zero` and `like` (outputs for a same-shaped input), skip the network.
        masks: the keep masks of this call's dropout groups (filled as groups are first met). dropout:
        apply conditioning dropout (`ucg_rate`)."""
        if zero and like is not None:
            return [torch.zeros_like(e) for e in like]
        with torch.set_grad_enabled(embedder.is_trainable and torch.is_grad_enabled()):
            out = embedder(*self._inputs(embedder, batch, masks, dropout))
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        result = []
        for emb in outs:
            if not isinstance(emb, torch.Tensor):
                raise ValueError(f"{type(embedder).__name__} must return tensors, got {type(emb).__name__}")
            if dropout and embedder.ucg_rate > 0.0 and embedder.legacy_ucg_val is None:
                keep = self._keep_mask(embedder, emb.shape[0], emb.device, masks)
                emb = keep.view(-1, *([1] * (emb.ndim - 1))).to(emb.dtype) * emb
            result.append(torch.zeros_like(emb) if zero else emb)
        return result

    @staticmethod
    def _merge(pairs) -> Dict[str, torch.Tensor]:
        output: Dict[str, torch.Tensor] = {}
        for key, emb in pairs:
            output[key] = torch.cat((output[key], emb), KEY2CATDIM[key]) if key in output else emb
        return output

    def _zero(self, embedder: AbstractEmbModel, force_zero: Sequence[str]) -> bool:
        return embedder.input_key is not None and embedder.input_key in force_zero

    def forward(self, batch: Dict, force_zero_embeddings: Optional[List[str]] = None,
                dropout: Optional[bool] = None) -> Dict[str, torch.Tensor]:
        """batch: the embedders' inputs by key. force_zero_embeddings: input keys whose embeddings are zeroed.
        dropout: apply conditioning dropout (`ucg_rate`); default: in training mode only (`self.training`)."""
        force_zero = force_zero_embeddings or []
        dropout = self.training if dropout is None else dropout
        pairs, masks = [], {}
        for embedder in self.embedders:
            for emb in self._embed(embedder, batch, self._zero(embedder, force_zero), masks=masks, dropout=dropout):
                pairs.append((self._output_key(embedder, emb), emb))
        return self._merge(pairs)

    def get_unconditional_conditioning(self, batch_c: Dict, batch_uc: Optional[Dict] = None,
                                       force_uc_zero_embeddings: Optional[List[str]] = None,
                                       force_cond_zero_embeddings: Optional[List[str]] = None):
        """(c, uc) for guidance, with conditioning dropout off. An embedding forced to zero in `uc` is
        not computed a second time when its input has the same shape as in `c`."""
        batch_uc = batch_c if batch_uc is None else batch_uc
        uc_zero, c_zero = force_uc_zero_embeddings or [], force_cond_zero_embeddings or []
        c_pairs, uc_pairs = [], []
        for embedder in self.embedders:
            c_out = self._embed(embedder, batch_c, self._zero(embedder, c_zero))
            same_shape = embedder.input_key is not None and _same_shape(batch_c.get(embedder.input_key), batch_uc.get(embedder.input_key))
            uc_out = self._embed(embedder, batch_uc, self._zero(embedder, uc_zero), like=c_out if same_shape else None)
            c_pairs += [(self._output_key(embedder, e), e) for e in c_out]
            uc_pairs += [(self._output_key(embedder, e), e) for e in uc_out]
        return self._merge(c_pairs), self._merge(uc_pairs)


def _same_shape(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b)
    return False
