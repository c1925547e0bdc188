"""Adapters from the denoiser's `network(x, c_noise, cond, **kw)` call to the UNet's signature."""
import torch
import torch.nn as nn

from ..compile import compile_module

OPENAIUNETWRAPPER = "sgm.modules.diffusionmodules.wrappers.OpenAIWrapper"


class IdentityWrapper(nn.Module):
    """Holds the network as `diffusion_model` (the checkpoints' key prefix).

    diffusion_model: the network. compile_model: torch.compile its forward in place (the config key
    `model.params.compile_model`; state-dict keys stay those of the checkpoints, see sgm.modules.compile).
    """

    def __init__(self, diffusion_model: nn.Module, compile_model: bool = False):
        super().__init__()
        self.diffusion_model = compile_module(diffusion_model) if compile_model else diffusion_model

    def forward(self, *args, **kwargs):
        return self.diffusion_model(*args, **kwargs)


class OpenAIWrapper(IdentityWrapper):
    """Routes the conditioning dict: `concat` joins the input channels, `crossattn` is the context,
    `vector` is `y`; other keyword inputs (num_video_frames, image_only_indicator) pass through."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: dict, **kwargs) -> torch.Tensor:
        if "concat" in c:
            x = torch.cat((x, c["concat"].to(x.dtype)), dim=1)
        return self.diffusion_model(x, timesteps=t, context=c.get("crossattn"), y=c.get("vector"), **kwargs)
