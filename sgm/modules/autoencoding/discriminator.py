"""The patch discriminator of autoencoder training (PatchGAN, Isola et al. 2017, "Image-to-Image
Translation with Conditional Adversarial Networks"), in 2-d for images and 3-d for clips (the temporal
discriminator of Video LDM, Blattmann et al. 2023, Sec. 3.1.1), and the GAN losses on its logits."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def weights_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02) with zero shifts."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class NLayerDiscriminator(nn.Module):
    """Strided convolutions mapping an image (B, C, H, W) to a map of real/fake logits (B, 1, h, w), one per
    overlapping patch (70x70 pixels for n_layers=3), or a clip (B, C, T, H, W) to (B, 1, t, h, w) when dims=3.

    input_nc: input channels (3 for RGB). ndf: width of the first layer (doubled per layer, at most 8x).
    n_layers: strided layers after the first. use_actnorm: accepted for sgm configs; only False (BatchNorm)
    is supported. dims: 2 (images) or 3 (clips: kernels span 3 frames, frames are never strided).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, use_actnorm: bool = False, dims: int = 2):
        super().__init__()
        if use_actnorm:
            raise ValueError("use_actnorm=True is not supported; set discriminator params.use_actnorm: false (BatchNorm)")
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 (images) or 3 (clips), got {dims}")
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        kernel, pad = (4, 1) if dims == 2 else ((3, 4, 4), (1, 1, 1))

        def stride(s: int):
            return s if dims == 2 else (1, s, s)

        layers = [conv(input_nc, ndf, kernel, stride(2), pad), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2 ** n, 8)
            layers += [conv(width, out, kernel, stride(2 if n < n_layers else 1), pad, bias=False), norm(out),
                       nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(conv(width, 1, kernel, stride(1), pad))
        self.main = nn.Sequential(*layers)
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator: mean(relu(1 - real)) and mean(relu(1 + fake)), averaged."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss of the discriminator (softplus form of the cross-entropy)."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


D_LOSSES = {"hinge": hinge_d_loss, "vanilla": vanilla_d_loss}
