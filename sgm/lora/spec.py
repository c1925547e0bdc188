"""`--lora file.safetensors[:strength]`: which adapter file, at which strength."""
import os
from typing import Tuple


def parse_lora_spec(text: str) -> Tuple[str, float]:
    """(path, strength) from 'file.safetensors' (strength 1) or 'file.safetensors:0.7'. A colon that
    is part of an existing path (e.g. C:\\loras\\x.safetensors) is kept in the path."""
    path, sep, tail = text.rpartition(":")
    if sep and path and not os.path.exists(text):
        try:
            return path, float(tail)
        except ValueError:
            raise ValueError(f"--lora {text!r}: the part after the last ':' must be a strength (a number), "
                             f"e.g. {path}:0.8") from None
    return text, 1.0
