"""The config.json of each diffusers component, derived from one of our model configs.

Written by hand (no diffusers import needed to convert); diffusers fills any field left out with
its default. The scheduler and image processor are SVD's published ones.
"""
from typing import Mapping

from .layout import _clip_vision_cfg, sgm_parts

DIFFUSERS_VERSION = "0.25.0"  # the oldest diffusers with StableVideoDiffusionPipeline


def unet_config(model_cfg: Mapping, num_frames: int) -> dict:
    """UNetSpatioTemporalConditionModel's config for our VideoUNet params."""
    unet = sgm_parts(model_cfg)[0]
    levels = len(unet["channel_mult"])
    channels = [int(unet["model_channels"]) * int(m) for m in unet["channel_mult"]]
    attention = [2 ** i in set(unet["attention_resolutions"]) for i in range(levels)]
    head_dim = int(unet.get("num_head_channels", -1))
    heads = [c // head_dim for c in channels] if head_dim > 0 else [int(unet["num_heads"])] * levels
    time_dims = {e["params"].get("outdim") for e in model_cfg["params"]["conditioner_config"]["params"]["emb_models"]
                 if e["target"].endswith("ConcatTimestepEmbedderND")}
    if len(time_dims) != 1:
        raise ValueError("the diffusers UNet needs the fps/motion/cond_aug embedders to share one outdim")
    return {"_class_name": "UNetSpatioTemporalConditionModel", "_diffusers_version": DIFFUSERS_VERSION,
            "sample_size": None, "in_channels": int(unet["in_channels"]), "out_channels": int(unet["out_channels"]),
            "down_block_types": ["CrossAttnDownBlockSpatioTemporal" if a else "DownBlockSpatioTemporal" for a in attention],
            "up_block_types": ["CrossAttnUpBlockSpatioTemporal" if a else "UpBlockSpatioTemporal" for a in reversed(attention)],
            "block_out_channels": channels, "addition_time_embed_dim": int(time_dims.pop()),
            "projection_class_embeddings_input_dim": int(unet["adm_in_channels"]),
            "layers_per_block": int(unet["num_res_blocks"]), "cross_attention_dim": int(unet["context_dim"]),
            "transformer_layers_per_block": int(unet.get("transformer_depth", 1)), "num_attention_heads": heads,
            "num_frames": int(num_frames)}


def vae_config(model_cfg: Mapping) -> dict:
    """AutoencoderKLTemporalDecoder's config (or AutoencoderKL's for the image-decoder variant)."""
    _, decoder, encoder, _ = sgm_parts(model_cfg)
    channels = [int(encoder["ch"]) * int(m) for m in encoder["ch_mult"]]
    common = {"_diffusers_version": DIFFUSERS_VERSION, "in_channels": int(encoder["in_channels"]),
              "out_channels": int(encoder["out_ch"]), "block_out_channels": channels,
              "down_block_types": ["DownEncoderBlock2D"] * len(channels), "layers_per_block": int(encoder["num_res_blocks"]),
              "latent_channels": int(encoder["z_channels"]), "sample_size": int(encoder["resolution"]),
              "scaling_factor": float(model_cfg["params"].get("scale_factor", 0.18215)), "force_upcast": True}
    if decoder["target"].endswith("VideoDecoder"):
        if int(encoder["num_res_blocks"]) != 2:
            # NOTE: diffusers' TemporalDecoder gives its mid block `layers_per_block` residual blocks,
            # while sgm's always has two; the layouts agree only for SVD's num_res_blocks 2.
            raise ValueError(f"diffusers' temporal VAE decoder can only hold num_res_blocks 2 (SVD's); this config has "
                             f"model.params.first_stage_config.params.encoder_config.params.num_res_blocks "
                             f"{encoder['num_res_blocks']}")
        return {"_class_name": "AutoencoderKLTemporalDecoder", **common}
    return {"_class_name": "AutoencoderKL", **common, "up_block_types": ["UpDecoderBlock2D"] * len(channels),
            "act_fn": "silu", "norm_num_groups": 32}


def clip_vision_kwargs(model_cfg: Mapping) -> dict:
    """transformers.CLIPVisionConfig arguments for our OpenCLIP image tower."""
    clip = sgm_parts(model_cfg)[3]
    v = _clip_vision_cfg(clip.get("arch", "ViT-H-14"))
    width, head_width = int(v["width"]), int(v.get("head_width", 64))
    return {"hidden_size": width, "intermediate_size": int(width * float(v.get("mlp_ratio", 4.0))),
            "num_attention_heads": width // head_width, "num_hidden_layers": int(v["layers"]),
            "patch_size": int(v["patch_size"]), "image_size": int(v["image_size"]), "num_channels": 3,
            "projection_dim": int(v["embed_dim"]), "hidden_act": "gelu", "layer_norm_eps": 1e-5}


def image_encoder_config(model_cfg: Mapping, dtype: str = "float32") -> dict:
    """transformers' CLIPVisionModelWithProjection config.json for our OpenCLIP image tower."""
    return {"architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model",
            **clip_vision_kwargs(model_cfg), "torch_dtype": dtype}


def feature_extractor_config() -> dict:
    """CLIPImageProcessor as published with SVD (the pipeline resizes with antialiasing itself)."""
    return {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
            "do_normalize": True, "do_rescale": True, "do_resize": True, "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "rescale_factor": 1 / 255,
            "size": {"shortest_edge": 224}}


def scheduler_config(model_cfg: Mapping) -> dict:
    """EulerDiscreteScheduler with SVD's EDM (Karras) sigmas and v-prediction."""
    disc = model_cfg["params"]["sampler_config"]["params"]["discretization_config"].get("params", {}) or {}
    return {"_class_name": "EulerDiscreteScheduler", "_diffusers_version": DIFFUSERS_VERSION, "beta_start": 0.00085,
            "beta_end": 0.012, "beta_schedule": "scaled_linear", "interpolation_type": "linear", "num_train_timesteps": 1000,
            "prediction_type": "v_prediction", "sigma_max": float(disc.get("sigma_max", 700.0)),
            "sigma_min": float(disc.get("sigma_min", 0.002)), "steps_offset": 1, "timestep_spacing": "leading",
            "timestep_type": "continuous", "use_karras_sigmas": True, "set_alpha_to_one": False, "skip_prk_steps": True,
            "clip_sample": False, "trained_betas": None}


MODEL_INDEX_PARTS = {"feature_extractor": ["transformers", "CLIPImageProcessor"],
                     "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
                     "scheduler": ["diffusers", "EulerDiscreteScheduler"],
                     "unet": ["diffusers", "UNetSpatioTemporalConditionModel"]}


def model_index(vae_class: str) -> dict:
    return {"_class_name": "StableVideoDiffusionPipeline", "_diffusers_version": DIFFUSERS_VERSION,
            **MODEL_INDEX_PARTS, "vae": ["diffusers", vae_class]}
