"""Weight surgery between the stages of the SVD training curriculum (Blattmann et al. 2023, Sec. 3-4).

Stage 1 -> 2 (`inflate_image_unet`): an image UNet (SD 2.1 layout, `UNetModel`) becomes a `VideoUNet`.
The spatial weights are copied one to one; the temporal layers (a temporal ResBlock after every spatial
ResBlock, a temporal transformer after every spatial transformer, each blended in by an AlphaBlender)
are new. Their last layer is zeroed, so every temporal branch starts as the identity of its input:
the blender's `alpha * x_spatial + (1 - alpha) * x_temporal` is then `x_spatial` for any alpha, the
video UNet gives the image UNet's output frame by frame, and gradients still reach the temporal layers
(the zeroed output layers get a gradient at once, the rest after the first step).

Stage 2 -> 3 (`adapt_t2v_to_i2v`): a text-to-video VideoUNet (4 latent input channels, text context)
becomes SVD's image-to-video VideoUNet (8 input channels: noisy latent + conditioning-frame latent;
vector conditioning on fps, motion bucket and cond_aug; CLIP image embedding as context). The new
input channels and the last layer of the new vector embedding start at zero, so the adapted network
computes what the stage-2 network computed from the same latent and context.

`convert_checkpoint` applies either function to a whole DiffusionEngine checkpoint and writes the
next stage's starting checkpoint (its config then loads it with `ckpt_path`).
`convert_ldm_keys` renames an original SD 2.x checkpoint (`cond_stage_model.*`) to sgm's layout.
"""
import logging
import os
import re
import warnings
from typing import Callable, Dict, List, Optional, Union

import torch
import torch.nn as nn

from ..checkpoint import StateDict, read_state_dict
from ..util import get_obj_from_str, instantiate_from_config

logger = logging.getLogger(__name__)

NETWORK_PREFIX = "model.diffusion_model."
TEMPORAL_MARKERS = ("time_stack", "time_mixer", "time_pos_embed")
# Original (ldm) Stable Diffusion 2.x checkpoint prefixes -> sgm DiffusionEngine prefixes.
LDM_TO_SGM_PREFIXES = {"cond_stage_model.": "conditioner.embedders.0."}
Adapter = Callable[[StateDict, nn.Module], nn.Module]
AE_PREFIX = "first_stage_model."
# The conditioning-frame encoder of SVD (VideoPredictionEmbedderWithEncoder): a whole KL autoencoder.
FRAME_ENCODER = re.compile(r"^(conditioner\.embedders\.\d+\.encoder\.)(.+)$")
QUANT_KEYS = ("quant_conv.weight", "quant_conv.bias", "post_quant_conv.weight", "post_quant_conv.bias")


def is_temporal_key(key: str) -> bool:
    """Whether a VideoUNet state-dict key belongs to a temporal layer (absent from the image UNet)."""
    return any(marker in key.split(".") for marker in TEMPORAL_MARKERS)


def _zero_(module: Optional[nn.Module]) -> None:
    if module is not None:
        with torch.no_grad():
            for p in module.parameters():
                p.zero_()


def init_temporal_as_identity_(video_unet: nn.Module) -> nn.Module:
    """Zero the output layer of every temporal branch of `video_unet` so each branch returns its input.

    Temporal ResBlock: the last conv of `out_layers` (the block is `skip(x) + h`, skip the identity).
    Temporal transformer: the frame-index embedding's last linear (`time_pos_embed`), and in each
    VideoTransformerBlock the last linear of `ff_in`, the output projections of `attn1`/`attn2` and
    the last linear of `ff` (all residual). Returns `video_unet`.
    """
    from ..modules.diffusionmodules.video_model import VideoResBlock
    from ..modules.video_attention import SpatialVideoTransformer

    found = 0
    for module in video_unet.modules():
        if isinstance(module, VideoResBlock):
            _zero_(module.time_stack.out_layers[-1])
            found += 1
        elif isinstance(module, SpatialVideoTransformer):
            _zero_(module.time_pos_embed[-1])
            for block in module.time_stack:
                assert block.is_res, "identity init needs residual temporal blocks (inner_dim == dim)"
                if block.ff_in:
                    _zero_(block.ff_in.net[-1])
                _zero_(block.attn1.to_out[0])
                if block.attn2 is not None:
                    _zero_(block.attn2.to_out[0])
                _zero_(block.ff.net[-1])
            found += 1
    if not found:
        raise ValueError(f"{type(video_unet).__name__} has no temporal layers (expected a VideoUNet)")
    return video_unet


def _set_mix_factor_(video_unet: nn.Module, value: float) -> None:
    from ..modules.diffusionmodules.util import AlphaBlender

    with torch.no_grad():
        for module in video_unet.modules():
            if isinstance(module, AlphaBlender):
                module.mix_factor.fill_(value)


def inflate_image_unet(image_state: StateDict, video_unet: nn.Module, mix_factor: Optional[float] = None) -> nn.Module:
    """Stage 1 -> 2: load an image UNet's weights into `video_unet` and start its temporal layers as identities.

    image_state: state dict of a `UNetModel` (keys as in `model.diffusion_model.*` without that prefix).
    video_unet: a freshly built `VideoUNet` with the same spatial hyper-parameters (channels, levels,
    heads, context width, in/out channels). mix_factor: optional new initial value of every
    AlphaBlender's `mix_factor` (a logit for the learned strategies); the output at init does not
    depend on it. Returns `video_unet`, changed in place.
    """
    target = video_unet.state_dict()
    spatial = {k for k in target if not is_temporal_key(k)}
    missing = sorted(spatial - set(image_state))
    extra = sorted(set(image_state) - spatial)
    if missing or extra:
        raise ValueError(f"the image UNet does not match the video UNet's spatial layers: {len(missing)} missing "
                         f"(e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]}); build the VideoUNet with "
                         f"the image UNet's channels, levels, heads and context_dim")
    for key in sorted(spatial):
        if image_state[key].shape != target[key].shape:
            raise ValueError(f"{key}: image UNet shape {tuple(image_state[key].shape)} != video UNet shape "
                             f"{tuple(target[key].shape)}")
    init_temporal_as_identity_(video_unet)
    video_unet.load_state_dict({k: image_state[k] for k in spatial}, strict=False)
    if mix_factor is not None:
        _set_mix_factor_(video_unet, mix_factor)
    logger.info("inflated %d spatial tensors into a video UNet; %d temporal tensors start as identities",
                len(spatial), len(target) - len(spatial))
    return video_unet


def _zero_vector_embedding_(unet: nn.Module) -> None:
    """Zero the last linear of the label embedding, so the vector conditioning adds nothing at first."""
    last = [m for m in unet.label_emb.modules() if isinstance(m, (nn.Linear, nn.Embedding))][-1]
    _zero_(last)


def adapt_t2v_to_i2v(t2v_state: StateDict, i2v_unet: nn.Module) -> nn.Module:
    """Stage 2 -> 3: load a text-to-video VideoUNet's weights into an image-to-video VideoUNet.

    t2v_state: state dict of the stage-2 VideoUNet (4 input channels, no or a matching vector
    embedding). i2v_unet: a freshly built stage-3 VideoUNet (e.g. 8 input channels, `num_classes:
    sequential`) with the same widths, levels and context width. The first conv's extra input
    channels (the conditioning-frame latent) start at zero; a vector embedding (`label_emb`) absent
    from stage 2 keeps its random first layer and gets a zero last layer. Every other tensor must be
    in `t2v_state` with the same shape. Returns `i2v_unet`, changed in place.
    """
    target = i2v_unet.state_dict()
    new_state: Dict[str, torch.Tensor] = {}
    fresh: List[str] = []
    for key, value in target.items():
        source = t2v_state.get(key)
        if source is not None and source.shape == value.shape:
            new_state[key] = source
        elif key == "input_blocks.0.0.weight" and source is not None and source.shape[1] < value.shape[1] \
                and source.shape[0] == value.shape[0] and source.shape[2:] == value.shape[2:]:
            widened = torch.zeros_like(value)
            widened[:, : source.shape[1]] = source  # (C_out, C_in_new, k, k); new channels zero
            new_state[key] = widened
        elif source is None and key.startswith("label_emb."):
            fresh.append(key)
        else:
            found = "absent" if source is None else f"shape {tuple(source.shape)}"
            raise ValueError(f"{key}: stage-2 weight is {found}, stage 3 needs {tuple(value.shape)}; only the input "
                             f"channels and a new vector embedding may differ between the two configs")
    extra = sorted(set(t2v_state) - set(target))
    if extra:
        raise ValueError(f"stage-2 weights with no place in the stage-3 network: {extra[:3]} ... ({len(extra)})")
    i2v_unet.load_state_dict(new_state, strict=False)
    if fresh:
        _zero_vector_embedding_(i2v_unet)
    logger.info("adapted a text-to-video UNet: %d tensors copied, input conv widened to %d channels, %d new "
                "vector-embedding tensors", len(new_state), target["input_blocks.0.0.weight"].shape[1], len(fresh))
    return i2v_unet


def copy_network(state: StateDict, unet: nn.Module) -> nn.Module:
    """Same architecture: load `state` into `unet` as is (e.g. SD 2.1 -> stage 1). Every key must match."""
    result = unet.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"the network weights do not match the config: {len(result.missing_keys)} missing "
                         f"(e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected "
                         f"(e.g. {result.unexpected_keys[:3]})")
    return unet


ADAPTERS = {"copy": copy_network, "inflate": inflate_image_unet, "i2v": adapt_t2v_to_i2v}


def convert_ldm_keys(state: StateDict) -> StateDict:
    """Rename an original Stable Diffusion 2.x checkpoint's keys to sgm's (`cond_stage_model.` ->
    `conditioner.embedders.0.`); `model.diffusion_model.*` and `first_stage_model.*` already match."""
    out = {}
    for key, value in state.items():
        for old, new in LDM_TO_SGM_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def _identity_conv(like: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv weight (C, C, 1, 1) or bias (C,) that leaves its input unchanged."""
    if like.ndim == 1:
        return torch.zeros_like(like)
    assert like.shape[0] == like.shape[1] and like.shape[2:] == (1, 1)
    return torch.eye(like.shape[0], dtype=like.dtype)[:, :, None, None]


def autoencoder_weights(src: StateDict, target: StateDict) -> StateDict:
    """Weights for the target's autoencoders taken from the source's first stage, in the same latent space.

    The SD 2.1 autoencoder (stages 1-2, `AutoencoderKL`) has 1x1 `quant_conv`/`post_quant_conv` around the
    latent; SVD's first stage (`AutoencodingEngine` with the temporal decoder) has none, and its
    conditioning-frame encoder (`conditioner.embedders.N.encoder.*`) is a whole `AutoencoderKL`.
    1. Source with quant convs -> target without: `quant_conv` is folded into `encoder.conv_out` (exact)
       and `post_quant_conv` into `decoder.conv_in` (exact except on the one-pixel border, where the
       convolution's zero padding meets the folded bias; a warning says so).
    2. Target frame encoder missing from the source: its weights come from the source's first stage
       (`encoder.*`, `decoder.*`, quant convs), a quant conv the source lacks being the identity.
    Returns only the entries it sets; shapes must match the target's.
    """
    out: StateDict = {}
    has_quant = AE_PREFIX + "quant_conv.weight" in src
    if has_quant and AE_PREFIX + "quant_conv.weight" not in target and AE_PREFIX + "encoder.conv_out.weight" in target:
        q = src[AE_PREFIX + "quant_conv.weight"][:, :, 0, 0]  # (moments, moments)
        w, b = src[AE_PREFIX + "encoder.conv_out.weight"], src[AE_PREFIX + "encoder.conv_out.bias"]
        out[AE_PREFIX + "encoder.conv_out.weight"] = torch.einsum("oc,cikl->oikl", q, w)
        out[AE_PREFIX + "encoder.conv_out.bias"] = q @ b + src[AE_PREFIX + "quant_conv.bias"]
        if AE_PREFIX + "decoder.conv_in.weight" in target:
            p = src[AE_PREFIX + "post_quant_conv.weight"][:, :, 0, 0]  # (z_channels, embed_dim)
            w, b = src[AE_PREFIX + "decoder.conv_in.weight"], src[AE_PREFIX + "decoder.conv_in.bias"]
            out[AE_PREFIX + "decoder.conv_in.weight"] = torch.einsum("ockl,cj->ojkl", w, p)
            out[AE_PREFIX + "decoder.conv_in.bias"] = b + torch.einsum("ockl,c->o", w, src[AE_PREFIX + "post_quant_conv.bias"])
            warnings.warn("folded the source autoencoder's post_quant_conv into decoder.conv_in: exact except on the "
                          "latent's one-pixel border; finetune the decoder or use the official SVD autoencoder")
    for key, value in target.items():
        match = FRAME_ENCODER.match(key)
        if match is None or key in src:
            continue
        source = src.get(AE_PREFIX + match.group(2))
        if source is not None and source.shape == value.shape:
            out[key] = source
        elif source is None and match.group(2) in QUANT_KEYS:
            out[key] = _identity_conv(value)
    for key, value in out.items():
        if value.shape != target[key].shape:
            raise ValueError(f"{key}: cannot carry the autoencoder over: shape {tuple(value.shape)} != {tuple(target[key].shape)}")
    return out


def without_ckpt_path(config):
    """The `model:` section of a config (DictConfig), resolved, without `params.ckpt_path`: for building
    a model whose weights are set afterwards."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    model_cfg = cfg.model if "model" in cfg else cfg
    if "params" in model_cfg and "ckpt_path" in model_cfg.params:
        model_cfg.params.pop("ckpt_path")
    return model_cfg


def network_weights(state: StateDict, ema: bool = False) -> StateDict:
    """The network's weights in an engine state dict, without the `model.diffusion_model.` prefix.

    ema: take each parameter from the EMA copy (`model_ema.*`, sgm's LitEma layout: the parameter name
    with its dots removed) where it has one; buffers and untracked parameters come from the network.
    """
    network = {k[len(NETWORK_PREFIX):]: v for k, v in state.items() if k.startswith(NETWORK_PREFIX)}
    if not network:
        raise ValueError(f"the source checkpoint has no '{NETWORK_PREFIX}*' weights")
    if ema:
        if not any(k.startswith("model_ema.") for k in state):
            raise ValueError("the source checkpoint has no EMA weights (model_ema.*): it was trained with use_ema: false; "
                             "convert without the EMA option")
        for key in network:
            shadow = state.get("model_ema." + ("diffusion_model." + key).replace(".", ""))
            if shadow is not None:
                network[key] = shadow.to(network[key].dtype)
    return network


def resolve_adapter(adapter: Union[str, Adapter]) -> Adapter:
    """The adapter function: one of `ADAPTERS` by name, a dotted function path, or the function itself."""
    if not isinstance(adapter, str):
        return adapter
    if adapter in ADAPTERS:
        return ADAPTERS[adapter]
    if "." not in adapter:
        raise ValueError(f"unknown adapter {adapter!r}: use one of {sorted(ADAPTERS)} or a dotted function path")
    return get_obj_from_str(adapter)


def convert_state(src_state: StateDict, dst_engine: nn.Module, adapter: Union[str, Adapter], ema: bool = False) -> StateDict:
    """A full state dict for `dst_engine` (a DiffusionEngine) made from a previous stage's `src_state`.

    The network (`model.diffusion_model.*`) goes through `adapter`: a function, its dotted name, or
    one of the names in `ADAPTERS` ("copy", "inflate", "i2v"). Every other tensor (autoencoder, conditioner) is
    copied where the key and shape match and otherwise keeps `dst_engine`'s own initialisation (e.g. a
    new CLIP image embedder, the temporal layers of a video decoder); autoencoders are carried over in
    the same latent space by `autoencoder_weights`. The EMA copy, if the engine
    keeps one, is reset to the converted network. ema: start from the source's EMA weights of the
    network (see `network_weights`). `dst_engine` is changed in place.
    """
    fn = resolve_adapter(adapter)
    src_state = convert_ldm_keys(src_state)
    fn(network_weights(src_state, ema), dst_engine.model.diffusion_model)
    target = dst_engine.state_dict()
    others = {}
    for key, value in target.items():
        if key.startswith(NETWORK_PREFIX) or key.startswith("model_ema."):
            continue
        source = src_state.get(key)
        if source is not None and source.shape == value.shape:
            others[key] = source
    others.update(autoencoder_weights(src_state, target))
    kept = [k for k in target if k not in others and not k.startswith((NETWORK_PREFIX, "model_ema."))]
    copied = len(others)
    dst_engine.load_state_dict(others, strict=False)
    if getattr(dst_engine, "model_ema", None) is not None:
        from ..modules.ema import LitEma

        dst_engine.model_ema = LitEma(dst_engine.model, decay=float(dst_engine.model_ema.decay))
    if kept:
        from ..checkpoint import summarize_keys

        logger.info("%d tensors copied; %d keep their new initialisation:\n%s", copied, len(kept), summarize_keys(kept))
    return dst_engine.state_dict()


def convert_checkpoint(src_ckpt: str, dst_config, out_path: str, adapter: Union[str, Adapter], seed: int = 0,
                       ema: bool = False) -> str:
    """Write the starting checkpoint of the next curriculum stage.

    src_ckpt: the previous stage's checkpoint (.ckpt from main.py, or .safetensors; an original SD 2.x
    file is renamed with `convert_ldm_keys`). dst_config: the next stage's config (path, dict or
    DictConfig; its `ckpt_path` is ignored while building). out_path: where to write (.safetensors).
    adapter: "copy" (same network, e.g. SD 2.1 -> stage 1), "inflate" (`inflate_image_unet`, stage
    1 -> 2), "i2v" (`adapt_t2v_to_i2v`, stage 2 -> 3), or a function or its dotted name. seed: seeds
    the new layers' random initialisation. ema: start from the source's EMA weights. Returns `out_path`.
    """
    from safetensors.torch import save_file

    from .loading import load_config

    resolve_adapter(adapter)  # fail before building anything
    if not os.path.isfile(src_ckpt):
        raise FileNotFoundError(f"source checkpoint not found: {os.path.abspath(src_ckpt)}")
    torch.manual_seed(seed)
    engine = instantiate_from_config(without_ckpt_path(load_config(dst_config)))
    state = convert_state(read_state_dict(src_ckpt), engine, adapter, ema=ema)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, out_path)
    logger.info("wrote %s (%d tensors) from %s", out_path, len(state), src_ckpt)
    return out_path
