"""Writing and reading diffusers StableVideoDiffusionPipeline folders:

    OUT_DIR/model_index.json
    OUT_DIR/unet/{config.json, diffusion_pytorch_model.safetensors}
    OUT_DIR/vae/{config.json, diffusion_pytorch_model.safetensors}
    OUT_DIR/image_encoder/{config.json, model.safetensors}
    OUT_DIR/feature_extractor/preprocessor_config.json
    OUT_DIR/scheduler/scheduler_config.json
    OUT_DIR/sgm_extras.safetensors   (sgm tensors diffusers has no place for; diffusers ignores it)
"""
import glob
import json
import logging
import os
from typing import Dict, Mapping, Optional

import torch

from . import diffusers_configs as dc
from .convert import StateDict, to_diffusers, to_sgm
from .layout import layout_from_config, layout_from_diffusers

logger = logging.getLogger(__name__)

WEIGHT_FILES = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "image_encoder": "model"}
EXTRAS_FILE = "sgm_extras.safetensors"


def is_diffusers_folder(path) -> bool:
    """Whether `path` is a folder holding a diffusers pipeline (a model_index.json)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "model_index.json"))


def _write_json(path: str, obj: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def _save(tensors: StateDict, path: str) -> None:
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})


def write_diffusers_folder(state_dict: StateDict, model_cfg: Mapping, out_dir: str, num_frames: int = 25) -> Dict[str, int]:
    """Write the full sgm `state_dict` of the model `model_cfg` (the `model:` section) as a diffusers
    folder; returns the number of tensors written per file. num_frames: the UNet config's default."""
    components, extras = to_diffusers(state_dict, layout_from_config(model_cfg))
    missing = [c for c in WEIGHT_FILES if c not in components]
    if missing:
        raise ValueError(f"the checkpoint has no weights for diffusers' {', '.join(missing)}; give a full SVD checkpoint")
    dtype = str(next(iter(components["image_encoder"].values())).dtype).replace("torch.", "")
    vae_cfg = dc.vae_config(model_cfg)
    configs = {"unet": dc.unet_config(model_cfg, num_frames), "vae": vae_cfg,
               "image_encoder": dc.image_encoder_config(model_cfg, dtype)}
    counts = {}
    for name, stem in WEIGHT_FILES.items():
        _write_json(os.path.join(out_dir, name, "config.json"), configs[name])
        _save(components[name], os.path.join(out_dir, name, f"{stem}.safetensors"))
        counts[name] = len(components[name])
    _write_json(os.path.join(out_dir, "feature_extractor", "preprocessor_config.json"), dc.feature_extractor_config())
    _write_json(os.path.join(out_dir, "scheduler", "scheduler_config.json"), dc.scheduler_config(model_cfg))
    _write_json(os.path.join(out_dir, "model_index.json"), dc.model_index(vae_cfg["_class_name"]))
    if extras:
        _save(extras, os.path.join(out_dir, EXTRAS_FILE))
        counts["extras"] = len(extras)
    logger.info("wrote %s: %s", out_dir, counts)
    return counts


def _weight_files(folder: str, stem: str) -> list:
    """The safetensors (or .bin) file(s) of one component: the full-precision file, else a variant
    (e.g. .fp16), else the shards an index names."""
    for pattern in (f"{stem}.safetensors", f"{stem}.*.safetensors", f"{stem}.safetensors.index.json",
                    f"{stem}.*.safetensors.index.json", f"{stem}.bin", "*.safetensors", "*.bin"):
        found = sorted(glob.glob(os.path.join(folder, pattern)))
        if found:
            if found[0].endswith(".index.json"):
                with open(found[0]) as f:
                    shards = sorted(set(json.load(f)["weight_map"].values()))
                return [os.path.join(folder, s) for s in shards]
            return [found[0]]
    raise FileNotFoundError(f"no weights ({stem}.safetensors) in {folder}")


def _read_weights(paths: list) -> StateDict:
    from safetensors.torch import load_file

    out: StateDict = {}
    for p in paths:
        out.update(load_file(p) if p.endswith(".safetensors") else torch.load(p, map_location="cpu", weights_only=True))
    return out


def read_diffusers_folder(folder: str, extras: Optional[bool] = True) -> StateDict:
    """The full sgm state dict of a diffusers SVD folder (written by this project or by others).
    extras: also read sgm_extras.safetensors when present (the tensors diffusers has no place for)."""
    if not is_diffusers_folder(folder):
        raise ValueError(f"{folder} is not a diffusers folder (it has no model_index.json)")
    components = {}
    for name, stem in WEIGHT_FILES.items():
        sub = os.path.join(folder, name)
        if not os.path.isdir(sub):
            raise ValueError(f"{folder} has no {name}/ folder; an SVD pipeline folder has unet/, vae/ and image_encoder/")
        components[name] = _read_weights(_weight_files(sub, stem))
    extra_path = os.path.join(folder, EXTRAS_FILE)
    extra = _read_weights([extra_path]) if extras and os.path.isfile(extra_path) else None
    return to_sgm(components, layout_from_diffusers(folder), extra)
