"""Low-rank adapters for the video UNet: train them (model.params.lora_config, configs/lora/),
load one or several for sampling (merged or switchable), and read/write the diffusers/peft and kohya (ComfyUI) names.
See docs/lora.md."""
from .adapters import adapter_names, add_lora, lora_state_dict, merge, remove_lora, set_strength
from .files import export_diffusers, export_kohya, load_lora, read_lora, save_lora
from .spec import parse_lora_spec
from .targets import PRESETS, find_targets, target_patterns

__all__ = ["PRESETS", "adapter_names", "add_lora", "export_diffusers", "export_kohya", "find_targets", "load_lora", "lora_state_dict",
           "merge", "parse_lora_spec", "read_lora", "remove_lora", "save_lora", "set_strength", "target_patterns"]
