"""Model offload: the parts of the model live in CPU memory and each moves to the accelerator only
while it runs (conditioner, then the denoising network, then the first-stage decoder)."""
import contextlib
import logging
from typing import Iterator

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)


class Offloader:
    """Moves modules between `storage` and `device` around their use.

    device: where the computation runs. enabled: offload at all (when False, `on_device` does
    nothing and everything stays where it was put). storage: where modules wait (CPU memory).
    """

    def __init__(self, device: torch.device, enabled: bool, storage: torch.device = torch.device("cpu")):
        self.device = torch.device(device)
        self.enabled = bool(enabled)
        self.storage = torch.device(storage)
        self.moves = []  # (module name, device) in order, for logging and tests

    @contextlib.contextmanager
    def on_device(self, module: nn.Module, name: str) -> Iterator[nn.Module]:
        """`module` on the compute device for the duration of the block, back in storage after."""
        if not self.enabled:
            yield module
            return
        module.to(self.device)
        self.moves.append((name, str(self.device)))
        logger.debug("offload: %s on %s", name, self.device)
        try:
            yield module
        finally:
            module.to(self.storage)
            self.moves.append((name, str(self.storage)))
            logger.debug("offload: %s back on %s", name, self.storage)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
