"""The five official model versions: their configs, official checkpoint files and where a
checkpoint is looked for."""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from ..util import configs_dir
from .errors import MissingCheckpointError

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Version:
    """config: path relative to the configs folder (configs/ in the repository, shipped in the
    package as sgm/configs). filename: the official checkpoint file. source:
    the Hugging Face repository that publishes it."""

    config: str
    filename: str
    source: str


_HF = "https://huggingface.co/stabilityai/"
VERSIONS = {
    "svd": Version("inference/svd.yaml", "svd.safetensors", _HF + "stable-video-diffusion-img2vid"),
    "svd_image_decoder": Version("inference/svd_image_decoder.yaml", "svd_image_decoder.safetensors",
                                 _HF + "stable-video-diffusion-img2vid"),
    "svd_xt": Version("inference/svd_xt.yaml", "svd_xt.safetensors", _HF + "stable-video-diffusion-img2vid-xt"),
    "svd_xt_image_decoder": Version("inference/svd_xt_image_decoder.yaml", "svd_xt_image_decoder.safetensors",
                                    _HF + "stable-video-diffusion-img2vid-xt"),
    "svd_xt_1_1": Version("inference/svd_xt_1_1.yaml", "svd_xt_1_1.safetensors",
                          _HF + "stable-video-diffusion-img2vid-xt-1-1"),
}


def version_config(version: str) -> Path:
    if version not in VERSIONS:
        raise ValueError(f"unknown version {version!r}; choose one of {', '.join(VERSIONS)} or pass a config")
    return configs_dir() / VERSIONS[version].config


def config_checkpoint(cfg: Mapping) -> Optional[str]:
    """The checkpoint a full config names: its `sampling.checkpoint`, else `model.params.ckpt_path`."""
    sampling = cfg.get("sampling") or {}
    params = (cfg.get("model") or {}).get("params") or {}
    return sampling.get("checkpoint") or params.get("ckpt_path")


def official_for(path: Optional[str], version: Optional[str]) -> Optional[Version]:
    """The official file that belongs at `path` (by version, else by the file's name)."""
    if version in VERSIONS:
        return VERSIONS[version]
    name = os.path.basename(path or "")
    return next((v for v in VERSIONS.values() if v.filename == name), None)


def resolve_checkpoint(ckpt: Optional[str], default: Optional[str], version: Optional[str]) -> str:
    """The existing checkpoint to load (a file or a diffusers folder): `ckpt` if given, else the config's default; a relative
    path is looked for in the working directory, then in the repository. MissingCheckpointError
    names the path looked for and the official file to put there."""
    wanted = ckpt if ckpt is not None else default
    if wanted is None:
        official = official_for(None, version)
        raise MissingCheckpointError("(no checkpoint given and the config's sampling.checkpoint is empty)",
                                     official.filename if official else None, official.source if official else None)
    wanted = os.path.expanduser(os.fspath(wanted))
    candidates = [Path(wanted)]
    if not os.path.isabs(wanted) and ckpt is None:
        candidates.append(REPO_ROOT / wanted)
    for c in candidates:
        if c.is_file() or (c / "model_index.json").is_file():
            return str(c)
    official = official_for(wanted, version)
    looked = candidates[-1] if ckpt is None else Path(wanted).absolute()
    raise MissingCheckpointError(str(looked), official.filename if official else None, official.source if official else None)


def training_config(ckpt: Optional[str]) -> Optional[dict]:
    """The run config stored in a checkpoint written by main.py (under the key "config"), or None for
    any other file (official .safetensors, a .ckpt without a config, a missing path). Read with
    weights_only=True and memory-mapped: no code runs and the weights are not read."""
    if not ckpt or not str(ckpt).endswith(".ckpt") or not os.path.isfile(ckpt):
        return None
    import torch

    try:
        obj = torch.load(ckpt, map_location="cpu", mmap=True, weights_only=True)
    except Exception:  # noqa: BLE001 - not a readable torch zip file: loading it later says why
        return None
    config = obj.get("config") if isinstance(obj, dict) else None
    return config if isinstance(config, dict) and isinstance(config.get("model"), dict) else None
