"""Weights in the layouts other tools use: diffusers' StableVideoDiffusionPipeline folders (both
ways) for the UNet, the VAE (video or image decoder) and the CLIP image encoder. See docs/diffusers.md."""
from .folder import is_diffusers_folder, read_diffusers_folder, write_diffusers_folder

__all__ = ["is_diffusers_folder", "read_diffusers_folder", "write_diffusers_folder"]
