"""torch.compile of the denoiser network (the UNet) and of the first-stage decoder, in place.

`nn.Module.compile` is used rather than wrapping the module in `torch.compile(...)`: the module tree and
its state-dict keys stay as they are (no `_orig_mod.` prefix), so checkpoints load and save unchanged and
`model.model.diffusion_model` is still the VideoUNet.

Shapes (docs/benchmarks.md, "Compiled path"; tests/test_compile.py): with the default `dynamic=None`
the first call compiles a graph for its shapes; a first change of frame count recompiles into a graph
generic in it for 2 to 7 frames, and 8 frames or more need one more; a first change of latent height,
and of width, recompiles once each into a graph generic in that size.
"""
import logging
from dataclasses import dataclass
from typing import Optional

import torch.nn as nn

logger = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class CompileOptions:
    """How to compile.

    mode: torch.compile mode (None = "default"); "reduce-overhead" adds CUDA graphs on a GPU.
    dynamic: None = specialise on the first shapes, then recompile once generically when they change;
        True = generic from the start; False = one graph per shape.
    backend: torch.compile backend ("inductor"; "eager"/"aot_eager" only trace, for tests and debugging).
    """

    mode: Optional[str] = None
    dynamic: Optional[bool] = None
    backend: str = "inductor"

    def __post_init__(self):
        if self.mode is not None and self.mode not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {COMPILE_MODES} or None, got {self.mode!r}")

    def kwargs(self) -> dict:
        """Keyword arguments of `torch.compile` / `nn.Module.compile`."""
        kwargs = {"dynamic": self.dynamic, "backend": self.backend}
        if self.mode is not None and self.backend == "inductor":
            kwargs["mode"] = self.mode
        return kwargs


def compile_module(module: nn.Module, options: Optional[CompileOptions] = None) -> nn.Module:
    """Compile `module`'s forward in place and return it (its parameters and state-dict keys unchanged)."""
    module.compile(**(options or CompileOptions()).kwargs())
    return module


def compile_engine(engine: nn.Module, options: Optional[CompileOptions] = None, network: bool = True,
                   decoder: bool = True) -> nn.Module:
    """Compile, in place, a DiffusionEngine's denoiser network (`engine.model.diffusion_model`) and its
    first-stage decoder (`engine.first_stage_model.decoder`); returns `engine`. Compilation happens at
    the first call of each (minutes for a full-size UNet)."""
    options = options or CompileOptions()
    if network:
        compile_module(engine.model.diffusion_model, options)
    first_stage = getattr(engine, "first_stage_model", None)
    if decoder and getattr(first_stage, "decoder", None) is not None:
        compile_module(first_stage.decoder, options)
    logger.info("torch.compile (%s) of the%s%s set up; it runs at the first call", options,
                " network" if network else "", " decoder" if decoder else "")
    return engine


def is_compiled(module: nn.Module) -> bool:
    """Whether `compile_module` (nn.Module.compile) was applied to `module`."""
    return getattr(module, "_compiled_call_impl", None) is not None
