"""Which module of the official sgm layout is which module of diffusers' StableVideoDiffusionPipeline.

The map is a list of `Rule`s: a module prefix on each side plus a table that renames the parameters
below it. Diffusers keys carry their component as the first part ("unet.", "vae.", "image_encoder.").
Several sgm prefixes may name the same diffusers module (the conditioning encoder and the first-stage
encoder are both diffusers' `vae.encoder`); the first rule that names it is its source on export.
"""
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from .layout import CLIP_PREFIX, COND_AE_PREFIX, FIRST_STAGE_PREFIX, UNET_PREFIX, Layout

# sgm VideoResBlock (UNet) -> diffusers SpatioTemporalResBlock
UNET_RES = {"in_layers.0": "spatial_res_block.norm1", "in_layers.2": "spatial_res_block.conv1",
            "emb_layers.1": "spatial_res_block.time_emb_proj", "out_layers.0": "spatial_res_block.norm2",
            "out_layers.3": "spatial_res_block.conv2", "skip_connection": "spatial_res_block.conv_shortcut",
            "time_stack.in_layers.0": "temporal_res_block.norm1", "time_stack.in_layers.2": "temporal_res_block.conv1",
            "time_stack.emb_layers.1": "temporal_res_block.time_emb_proj",
            "time_stack.out_layers.0": "temporal_res_block.norm2", "time_stack.out_layers.3": "temporal_res_block.conv2",
            "time_mixer": "time_mixer"}
# sgm SpatialVideoTransformer -> diffusers TransformerSpatioTemporalModel (other names are equal)
UNET_TRANSFORMER = {"time_stack": "temporal_transformer_blocks", "time_pos_embed.0": "time_pos_embed.linear_1",
                    "time_pos_embed.2": "time_pos_embed.linear_2"}
# sgm ResnetBlock (VAE) -> diffusers ResnetBlock2D
VAE_RES = {"nin_shortcut": "conv_shortcut"}
# sgm VideoResBlock (VAE decoder) -> diffusers SpatioTemporalResBlock
VAE_VIDEO_RES = {"norm1": "spatial_res_block.norm1", "conv1": "spatial_res_block.conv1", "norm2": "spatial_res_block.norm2",
                 "conv2": "spatial_res_block.conv2", "nin_shortcut": "spatial_res_block.conv_shortcut",
                 "time_stack.in_layers.0": "temporal_res_block.norm1", "time_stack.in_layers.2": "temporal_res_block.conv1",
                 "time_stack.out_layers.0": "temporal_res_block.norm2", "time_stack.out_layers.3": "temporal_res_block.conv2",
                 "mix_factor": "time_mixer.mix_factor"}
# sgm AttnBlock (1x1 convs) -> diffusers Attention (linear layers; weights reshaped in convert.py)
VAE_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
# OpenCLIP ResidualAttentionBlock -> transformers CLIPEncoderLayer; the packed q/k/v projection is
# named `qkv_proj` here and split into q_proj/k_proj/v_proj by convert.py.
CLIP_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.in_proj_weight": "self_attn.qkv_proj.weight",
              "attn.in_proj_bias": "self_attn.qkv_proj.bias", "attn.out_proj": "self_attn.out_proj",
              "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}


@dataclass(frozen=True)
class Rule:
    """sgm: module (or parameter) prefix in the sgm layout. diffusers: the same in diffusers, led by
    the component name. names: renames of the parameters below the prefixes (dotted prefixes)."""

    sgm: str
    diffusers: str
    names: Dict[str, str] = field(default_factory=dict)


def _rename(rest: str, names: Dict[str, str]) -> Optional[str]:
    """`rest` with its longest dotted prefix found in `names` replaced (unchanged when none matches)."""
    for src in sorted(names, key=len, reverse=True):
        if rest == src or rest.startswith(src + "."):
            return names[src] + rest[len(src):]
    return rest


def _under(key: str, prefix: str) -> Optional[str]:
    if key == prefix:
        return ""
    return key[len(prefix) + 1:] if key.startswith(prefix + ".") else None


def translate(key: str, rules: List[Rule], to_diffusers: bool) -> List[str]:
    """Every key that `key` corresponds to on the other side (several when sgm holds copies)."""
    out = []
    for rule in rules:
        src, dst = (rule.sgm, rule.diffusers) if to_diffusers else (rule.diffusers, rule.sgm)
        rest = _under(key, src)
        if rest is None:
            continue
        names = rule.names if to_diffusers else {v: k for k, v in rule.names.items()}
        rest = _rename(rest, names) if rest else rest
        out.append(f"{dst}.{rest}" if rest else dst)
        if to_diffusers:
            break  # the first rule is the source; later ones are copies
    return out


def unet_rules(layout: Layout) -> Iterator[Rule]:
    u = UNET_PREFIX
    yield from (Rule(u + "time_embed.0", "unet.time_embedding.linear_1"), Rule(u + "time_embed.2", "unet.time_embedding.linear_2"),
                Rule(u + "label_emb.0.0", "unet.add_embedding.linear_1"), Rule(u + "label_emb.0.2", "unet.add_embedding.linear_2"),
                Rule(u + "input_blocks.0.0", "unet.conv_in"), Rule(u + "out.0", "unet.conv_norm_out"), Rule(u + "out.2", "unet.conv_out"))
    levels, n = len(layout.unet_attention), layout.unet_res_blocks
    idx = 1
    for level, attn in enumerate(layout.unet_attention):
        for j in range(n):
            yield Rule(f"{u}input_blocks.{idx}.0", f"unet.down_blocks.{level}.resnets.{j}", UNET_RES)
            if attn:
                yield Rule(f"{u}input_blocks.{idx}.1", f"unet.down_blocks.{level}.attentions.{j}", UNET_TRANSFORMER)
            idx += 1
        if level < levels - 1:
            yield Rule(f"{u}input_blocks.{idx}.0.op", f"unet.down_blocks.{level}.downsamplers.0.conv")
            idx += 1
    yield from (Rule(u + "middle_block.0", "unet.mid_block.resnets.0", UNET_RES),
                Rule(u + "middle_block.1", "unet.mid_block.attentions.0", UNET_TRANSFORMER),
                Rule(u + "middle_block.2", "unet.mid_block.resnets.1", UNET_RES))
    idx = 0
    for up, level in enumerate(reversed(range(levels))):
        attn = layout.unet_attention[level]
        for j in range(n + 1):
            yield Rule(f"{u}output_blocks.{idx}.0", f"unet.up_blocks.{up}.resnets.{j}", UNET_RES)
            if attn:
                yield Rule(f"{u}output_blocks.{idx}.1", f"unet.up_blocks.{up}.attentions.{j}", UNET_TRANSFORMER)
            if level > 0 and j == n:
                yield Rule(f"{u}output_blocks.{idx}.{2 if attn else 1}.conv", f"unet.up_blocks.{up}.upsamplers.0.conv")
            idx += 1


def _vae_encoder_rules(sgm: str, layout: Layout) -> Iterator[Rule]:
    d = "vae.encoder"
    yield from (Rule(f"{sgm}.conv_in", f"{d}.conv_in"), Rule(f"{sgm}.norm_out", f"{d}.conv_norm_out"),
                Rule(f"{sgm}.conv_out", f"{d}.conv_out"), Rule(f"{sgm}.mid.block_1", f"{d}.mid_block.resnets.0", VAE_RES),
                Rule(f"{sgm}.mid.attn_1", f"{d}.mid_block.attentions.0", VAE_ATTN),
                Rule(f"{sgm}.mid.block_2", f"{d}.mid_block.resnets.1", VAE_RES))
    for i in range(layout.vae_levels):
        for j in range(layout.vae_res_blocks):
            yield Rule(f"{sgm}.down.{i}.block.{j}", f"{d}.down_blocks.{i}.resnets.{j}", VAE_RES)
        if i < layout.vae_levels - 1:
            yield Rule(f"{sgm}.down.{i}.downsample.conv", f"{d}.down_blocks.{i}.downsamplers.0.conv")


def _vae_decoder_rules(layout: Layout) -> Iterator[Rule]:
    s, d = FIRST_STAGE_PREFIX + "decoder", "vae.decoder"
    res = VAE_VIDEO_RES if layout.temporal_decoder else VAE_RES
    if layout.temporal_decoder:  # AE3DConv: a 2D conv followed by a temporal 3D conv
        yield Rule(f"{s}.conv_out.time_mix_conv", f"{d}.time_conv_out")
    yield from (Rule(f"{s}.conv_in", f"{d}.conv_in"), Rule(f"{s}.norm_out", f"{d}.conv_norm_out"),
                Rule(f"{s}.conv_out", f"{d}.conv_out"), Rule(f"{s}.mid.block_1", f"{d}.mid_block.resnets.0", res),
                Rule(f"{s}.mid.attn_1", f"{d}.mid_block.attentions.0", VAE_ATTN),
                Rule(f"{s}.mid.block_2", f"{d}.mid_block.resnets.1", res))
    levels = layout.vae_levels
    for i in range(levels):
        up = levels - 1 - i  # sgm numbers decoder levels by resolution, diffusers in the order they run
        for j in range(layout.vae_res_blocks + 1):
            yield Rule(f"{s}.up.{i}.block.{j}", f"{d}.up_blocks.{up}.resnets.{j}", res)
        if i > 0:
            yield Rule(f"{s}.up.{i}.upsample.conv", f"{d}.up_blocks.{up}.upsamplers.0.conv")


def _vae_rules(layout: Layout) -> Iterator[Rule]:
    # diffusers runs vae.encode only on the conditioning frame, so the conditioning encoder is the
    # source; the first-stage encoder (used in training) is its copy.
    yield from _vae_encoder_rules(COND_AE_PREFIX + "encoder", layout)
    yield from _vae_encoder_rules(FIRST_STAGE_PREFIX + "encoder", layout)
    yield Rule(COND_AE_PREFIX + "quant_conv", "vae.quant_conv")
    if layout.temporal_decoder:
        # NOTE: SVD's first stage has no quant_conv: training encodes without it, diffusers with it.
        yield from _vae_decoder_rules(layout)
    else:
        yield Rule(FIRST_STAGE_PREFIX + "quant_conv", "vae.quant_conv")
        yield Rule(FIRST_STAGE_PREFIX + "post_quant_conv", "vae.post_quant_conv")
        yield from _vae_decoder_rules(layout)


def _clip_rules(layout: Layout) -> Iterator[Rule]:
    v, d = CLIP_PREFIX + "visual", "image_encoder.vision_model"
    yield from (Rule(f"{v}.class_embedding", f"{d}.embeddings.class_embedding"),
                Rule(f"{v}.conv1", f"{d}.embeddings.patch_embedding"),
                Rule(f"{v}.positional_embedding", f"{d}.embeddings.position_embedding.weight"),
                Rule(f"{v}.ln_pre", f"{d}.pre_layrnorm"), Rule(f"{v}.ln_post", f"{d}.post_layernorm"),
                Rule(f"{v}.proj", "image_encoder.visual_projection.weight"))  # transposed in convert.py
    for i in range(layout.clip_layers):
        yield Rule(f"{v}.transformer.resblocks.{i}", f"{d}.encoder.layers.{i}", CLIP_BLOCK)


def rules(layout: Layout) -> List[Rule]:
    """The whole map for one architecture."""
    return [*unet_rules(layout), *_vae_rules(layout), *_clip_rules(layout)]


def split_component(key: str) -> Tuple[str, str]:
    """("unet", "conv_in.weight") from "unet.conv_in.weight"."""
    component, _, rest = key.partition(".")
    return component, rest
