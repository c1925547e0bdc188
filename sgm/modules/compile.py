"""torch.compile of the denoiser network (the UNet) and of the first-stage decoder, in place.

`nn.Module.compile` is used rather than wrapping the module in `torch.compile(...)`: the module tree and
its state-dict keys stay as they are (no `_orig_mod.` prefix), so checkpoints load and save unchanged and
`model.model.diffusion_model` is still the VideoUNet.

Shapes (docs/benchmarks.md, "Compiled path"; tests/test_compile.py): with the default `dynamic=None`
the first call compiles a graph for its shapes; a first change of frame count recompiles into a graph
generic in it for 2 to 7 frames, and 8 frames or more need one more; a first change of latent height,
and of width, recompiles once each into a graph generic in that size.
"""
import functools
import logging
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
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
    freezing: inductor's freezing (inference only): the weights become constants of the compiled graph,
        folded and, on CPU, prepacked for oneDNN/MKL. Together with mode "max-autotune" this is the
        setting that makes the UNet faster than eager on CPU (docs/benchmarks.md). It keeps a second copy
        of the weights, and weights changed after the first call are not seen: not with offloading or
        with adapters kept apart (`merge_lora=False`), which VideoPipeline.load refuses.
    """

    mode: Optional[str] = None
    dynamic: Optional[bool] = None
    backend: str = "inductor"
    freezing: bool = False

    def __post_init__(self):
        if self.mode is not None and self.mode not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {COMPILE_MODES} or None, got {self.mode!r}")

    def kwargs(self) -> dict:
        """Keyword arguments of `torch.compile` / `nn.Module.compile`."""
        kwargs = {"dynamic": self.dynamic, "backend": self.backend}
        if self.backend != "inductor":
            return kwargs
        if self.freezing:  # torch.compile takes a mode or options, not both: the mode's options plus freezing
            from torch._inductor import list_mode_options

            kwargs["options"] = {**list_mode_options(self.mode or "default"), "freezing": True}
        elif self.mode is not None:
            kwargs["mode"] = self.mode
        return kwargs


def add_compile_arguments(parser, sep: str = "_") -> None:
    """The compile switches of the sampler (`sep` "_": --compile_mode, --freeze_weights) and of the demo
    (`sep` "-": --compile-mode, --freeze-weights) on `parser` (an argparse parser or argument group); turn
    the parsed values into `VideoPipeline.load`'s `compile` with `compile_setting`."""
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the UNet and the decoder: the first video takes minutes longer to compile "
                             f"(docs/benchmarks.md); on CPU add --compile{sep}mode max-autotune --freeze{sep}weights "
                             "to be faster than eager")
    parser.add_argument(f"--compile{sep}mode", default=None, choices=COMPILE_MODES,
                        help="torch.compile mode (implies --compile; default: torch's default mode)")
    parser.add_argument(f"--freeze{sep}weights", action="store_true",
                        help="compile with the weights folded in as constants (inductor freezing; implies --compile): "
                             "on CPU prepacked for oneDNN/MKL; a second copy of the weights; not with --offload")


def compile_setting(compile: bool, mode: Optional[str] = None, freezing: bool = False) -> Union[bool, CompileOptions]:
    """What `VideoPipeline.load(compile=...)` takes from the command-line switches of the sampler and the
    demo: False, True (torch.compile's defaults) or CompileOptions. A mode or freezing implies compiling."""
    if mode is None and not freezing:
        return bool(compile)
    return CompileOptions(mode=mode, freezing=freezing)


def _traced_with_freezing(fn: Callable, options: CompileOptions) -> Callable:
    """`fn` (a torch.compile'd callable) run with inductor's `freezing` on when `options` ask for it.

    Dynamo reads that setting while it traces (the first call and any recompile) to take the weights as
    constants; torch.compile's options reach only inductor, after tracing. So each call of `fn` sets it
    for its duration, which keeps it out of the rest of the process."""
    if not (options.freezing and options.backend == "inductor"):
        return fn

    import torch._inductor.config  # only here: importing sgm does not load inductor

    @functools.wraps(fn)
    def call_with_freezing(*args, **kwargs):
        with torch._inductor.config.patch(freezing=True):
            return fn(*args, **kwargs)

    return call_with_freezing


def compiled_callable(module: nn.Module, options: Optional[CompileOptions] = None) -> Callable:
    """A compiled callable of `module`, which itself stays eager (benchmarks time both side by side)."""
    options = options or CompileOptions()
    return _traced_with_freezing(torch.compile(module, **options.kwargs()), options)


def compile_module(module: nn.Module, options: Optional[CompileOptions] = None) -> nn.Module:
    """Compile `module`'s forward in place and return it (its parameters and state-dict keys unchanged)."""
    options = options or CompileOptions()
    module.compile(**options.kwargs())
    module._compiled_call_impl = _traced_with_freezing(module._compiled_call_impl, options)
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
