"""Stable Video Diffusion in the style of Stability AI's sgm: checkpoint-exact inference and training."""
__version__ = "0.1.0"
