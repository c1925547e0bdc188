"""The few architecture facts the key mapping between the sgm and diffusers layouts depends on, read
either from one of our model configs or from the config.json files of a diffusers folder."""
import json
import os
from dataclasses import dataclass
from typing import Mapping, Tuple

# The official checkpoints put the CLIP image embedder at index 0 and the conditioning-frame VAE
# encoder at index 3 of the conditioner; every SVD config here does the same.
CLIP_PREFIX = "conditioner.embedders.0.open_clip.model."
COND_AE_PREFIX = "conditioner.embedders.3.encoder."
UNET_PREFIX = "model.diffusion_model."
FIRST_STAGE_PREFIX = "first_stage_model."


@dataclass(frozen=True)
class Layout:
    """unet_attention: for each UNet level (highest resolution first), whether it has transformers.
    unet_res_blocks: residual blocks per down level (up levels have one more). vae_levels: resolution
    levels of the autoencoder. vae_res_blocks: residual blocks per encoder level (decoder levels have
    one more). temporal_decoder: the VAE decoder is SVD's video decoder (else the per-frame image
    decoder). clip_layers: transformer layers of the CLIP image tower."""

    unet_attention: Tuple[bool, ...]
    unet_res_blocks: int
    vae_levels: int
    vae_res_blocks: int
    temporal_decoder: bool
    clip_layers: int


def _clip_vision_cfg(arch: str) -> dict:
    """The open_clip `vision_cfg` (width, layers, head_width, patch_size, image_size) and `embed_dim`."""
    from ..modules.encoders.image_embedders import resolve_config_path

    if arch.endswith(".json") or os.path.sep in arch:
        with open(resolve_config_path(arch)) as f:
            cfg = json.load(f)
    else:
        import open_clip

        cfg = open_clip.get_model_config(arch)
        if cfg is None:
            raise ValueError(f"unknown open_clip architecture {arch!r}")
    return {**cfg["vision_cfg"], "embed_dim": cfg["embed_dim"]}


def sgm_parts(model_cfg: Mapping) -> Tuple[Mapping, Mapping, Mapping, Mapping]:
    """(UNet params, first-stage decoder config, first-stage encoder params, CLIP embedder params) of a
    DiffusionEngine config (the `model:` section)."""
    params = model_cfg["params"]
    unet = params["network_config"]["params"]
    first = params["first_stage_config"]["params"]
    if "ddconfig" in first:  # AutoencoderKL (the image-decoder variants): one ddconfig for both halves
        first = {"encoder_config": {"params": first["ddconfig"]},
                 "decoder_config": {"target": "sgm.modules.diffusionmodules.model.Decoder", "params": first["ddconfig"]}}
    clip = params["conditioner_config"]["params"]["emb_models"][0]["params"]["open_clip_embedding_config"]["params"]
    return unet, first["decoder_config"], first["encoder_config"]["params"], clip


def layout_from_config(model_cfg: Mapping) -> Layout:
    """The Layout of one of our DiffusionEngine configs (the `model:` section)."""
    unet, decoder, encoder, clip = sgm_parts(model_cfg)
    levels = len(unet["channel_mult"])
    attention = tuple(2 ** i in set(unet["attention_resolutions"]) for i in range(levels))
    return Layout(unet_attention=attention, unet_res_blocks=int(unet["num_res_blocks"]),
                  vae_levels=len(encoder["ch_mult"]), vae_res_blocks=int(encoder["num_res_blocks"]),
                  temporal_decoder=decoder["target"].endswith("VideoDecoder"),
                  clip_layers=int(_clip_vision_cfg(clip.get("arch", "ViT-H-14"))["layers"]))


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def layout_from_diffusers(folder: str) -> Layout:
    """The Layout of a diffusers StableVideoDiffusionPipeline folder (from its components' config.json)."""
    unet = read_json(os.path.join(folder, "unet", "config.json"))
    vae = read_json(os.path.join(folder, "vae", "config.json"))
    clip = read_json(os.path.join(folder, "image_encoder", "config.json"))
    clip = clip.get("vision_config", clip)
    return Layout(unet_attention=tuple(t.startswith("CrossAttn") for t in unet["down_block_types"]),
                  unet_res_blocks=int(unet["layers_per_block"]), vae_levels=len(vae["block_out_channels"]),
                  vae_res_blocks=int(vae["layers_per_block"]),
                  temporal_decoder=vae["_class_name"] == "AutoencoderKLTemporalDecoder",
                  clip_layers=int(clip["num_hidden_layers"]))


def layout_of_unet(network) -> Layout:
    """The UNet part of the Layout, read off a built VideoUNet (the VAE and CLIP fields are 0): a level
    ends at each Downsample block; a level has attention when its blocks hold a transformer."""
    levels = [[]]
    for block in network.input_blocks[1:]:
        if type(block[0]).__name__ == "Downsample":
            levels.append([])
        else:
            levels[-1].append(len(block) > 1)
    return Layout(unet_attention=tuple(any(level) for level in levels), unet_res_blocks=len(levels[0]), vae_levels=0,
                  vae_res_blocks=0, temporal_decoder=True, clip_layers=0)
