"""LPIPS, the learned perceptual distance (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric"), VGG16 variant, built from local weights only.

Nothing is downloaded: `load_lpips(path)` returns None when the weights file is absent, and the
autoencoder loss then trains without its perceptual term (and says so). The file holds this module's
state dict (`vgg.<i>.*`: torchvision VGG16 `features.<i>.*`; `lin.<k>.weight`: LPIPS's 1x1 heads);
`lpips_state_from_official` makes it from torchvision's vgg16 weights and LPIPS's `vgg.pth`.
"""
import logging
import os
from typing import Dict, Optional

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

VGG_TAPS = (3, 8, 15, 22, 29)            # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in vgg16.features
VGG_WIDTHS = (64, 128, 256, 512, 512)
# LPIPS's input scaling: ImageNet statistics expressed for inputs in [-1, 1]
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """d(x, y) = sum_k mean_hw || w_k * (phi_k(x) - phi_k(y)) ||^2 over unit-normalised VGG16 features phi_k.

    Inputs (B, 3, H, W) in [-1, 1]; output (B, 1, 1, 1). The weights are frozen.
    """

    def __init__(self):
        super().__init__()
        from torchvision.models import vgg16

        self.vgg = vgg16(weights=None).features[: VGG_TAPS[-1] + 1]
        self.lin = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in VGG_WIDTHS)
        self.register_buffer("shift", torch.tensor(SHIFT)[None, :, None, None], persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE)[None, :, None, None], persistent=False)
        self.requires_grad_(False)

    def features(self, x: torch.Tensor):
        h = (x - self.shift) / self.scale
        taps = []
        for i, layer in enumerate(self.vgg):
            h = layer(h)
            if i in VGG_TAPS:
                taps.append(h / (h.norm(dim=1, keepdim=True) + 1e-10))  # unit length over channels
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = 0.0
        for lin, fx, fy in zip(self.lin, self.features(x), self.features(y)):
            d = d + lin((fx - fy) ** 2).mean(dim=(2, 3), keepdim=True)
        return d


def lpips_state_from_official(vgg16_state: Dict[str, torch.Tensor], lin_state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Our LPIPS state dict from torchvision's vgg16 weights (`features.<i>.*`) and LPIPS's vgg.pth
    (`lin<k>.model.1.weight`)."""
    out = {f"vgg.{k[len('features.'):]}": v for k, v in vgg16_state.items()
           if k.startswith("features.") and int(k.split(".")[1]) <= VGG_TAPS[-1]}
    for k in range(len(VGG_WIDTHS)):
        out[f"lin.{k}.weight"] = lin_state[f"lin{k}.model.1.weight"]
    return out


def load_lpips(path: Optional[str]) -> Optional[LPIPS]:
    """The LPIPS network with the weights in `path`, or None (with a warning) when there is no such file."""
    if not path or not os.path.isfile(path):
        logger.warning("perceptual loss OFF: no LPIPS weights at %r (nothing is downloaded; give a local file with "
                       "model.params.loss_config.params.perceptual_weights=<path>, see sgm.modules.autoencoding.lpips)",
                       path)
        return None
    from ...checkpoint import read_state_dict

    net = LPIPS()
    net.load_state_dict(read_state_dict(path), strict=True)
    logger.info("perceptual loss on: LPIPS weights from %s", path)
    return net.eval()
