"""Small helpers shared by the whole package: config instantiation and tensor shape utilities."""
import importlib
import inspect
import re
from inspect import isfunction
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

__all__ = [
    "configs_dir",
    "append_dims",
    "append_zero",
    "count_params",
    "default",
    "disabled_train",
    "exists",
    "expand_dims_like",
    "get_obj_from_str",
    "instantiate_from_config",
]


def configs_dir() -> Path:
    """The shipped configs (`sgm/configs`: in a source checkout a link to the top-level configs/, in an
    installed package a copy of it)."""
    return (Path(__file__).resolve().parent / "configs").resolve()


def exists(x: Any) -> bool:
    return x is not None


def default(val: Any, d: Any) -> Any:
    """`val` unless it is None, else `d` (called if it is a function)."""
    if exists(val):
        return val
    return d() if isfunction(d) else d


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """Append singleton dimensions to `x` until it has `target_dims` dimensions."""
    dims_to_append = target_dims - x.ndim
    assert dims_to_append >= 0, f"input has {x.ndim} dims but target_dims is {target_dims}"
    return x[(...,) + (None,) * dims_to_append]


def append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def expand_dims_like(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return append_dims(x, y.ndim)


def count_params(model: torch.nn.Module, verbose: bool = False) -> int:
    return sum(p.numel() for p in model.parameters())


def disabled_train(self, mode: bool = True):
    """Replacement for `nn.Module.train` on frozen parts, so Lightning cannot flip them to train mode."""
    return self


def get_obj_from_str(string: str, reload: bool = False) -> Any:
    """Import `package.module.Name` and return `Name`.

    Raises ValueError naming the target when the module or the attribute does not exist.
    """
    if not isinstance(string, str) or "." not in string:
        raise ValueError(f"target must be a dotted import path like 'package.module.Class', got {string!r}")
    module_name, cls_name = string.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # Distinguish "the module in the target does not exist" from "it exists but imports something missing".
        if e.name and module_name.startswith(e.name):
            raise ValueError(f"unknown target {string!r}: no module named {e.name!r}") from e
        raise
    if reload:
        module = importlib.reload(module)
    try:
        return getattr(module, cls_name)
    except AttributeError:
        public = sorted(n for n in dir(module) if not n.startswith("_") and n[:1].isupper())
        hint = f" Names available there: {', '.join(public[:30])}" if public else ""
        raise ValueError(f"unknown target {string!r}: module {module_name!r} has no attribute {cls_name!r}.{hint}") from None


def _to_plain(obj: Any) -> Any:
    """OmegaConf containers to plain Python (resolving interpolations); other values unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a hard dependency
        return obj
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    return obj


def _check_params(target: str, obj: Callable, params: Mapping[str, Any]) -> None:
    """Raise ValueError naming any param that `obj` does not accept, or any required one that is missing."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature
        return
    accepted = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        return
    named = {n for n, p in accepted.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(params) - named)
    if unknown:
        raise ValueError(
            f"{target} got unknown parameter(s) {unknown}; it accepts: {', '.join(sorted(named)) or '(none)'}"
        )
    missing = [
        n
        for n, p in accepted.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is p.empty
        and n not in params
        and n != "self"
    ]
    if missing:
        raise ValueError(f"{target} is missing required parameter(s) {missing} in its config 'params'")


def instantiate_from_config(config: Any, **extra_kwargs) -> Any:
    """Build `config.target(**config.params)`.

    `config` is a mapping with a `target` (dotted import path) and optional `params`. The sgm markers
    `__is_first_stage__` and `__is_unconditional__` give None. Errors name the bad target or parameter
    (ValueError), also for a parameter that a constructor taking `**kwargs` passes on to one that
    does not know it.
    """
    if config in ("__is_first_stage__", "__is_unconditional__"):
        return None
    if not isinstance(config, Mapping) and not hasattr(config, "keys"):
        raise ValueError(f"expected a config mapping with a 'target' key, got {type(config).__name__}: {config!r}")
    if "target" not in config:
        raise ValueError(f"config has no 'target' key (keys: {sorted(config.keys())}); add 'target: package.module.Class'")
    target = config["target"]
    params = _to_plain(config.get("params", None)) or {}
    if not isinstance(params, dict):
        raise ValueError(f"'params' of {target} must be a mapping, got {type(params).__name__}")
    params = {**params, **extra_kwargs}
    obj = get_obj_from_str(target)
    _check_params(target, obj, params)
    try:
        return obj(**params)
    except TypeError as e:  # a constructor taking **kwargs passed an unknown name on to one that refuses it
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if unknown is None or unknown.group(1) not in params:
            raise
        raise ValueError(f"{target} got unknown parameter {unknown.group(1)!r} in its config 'params'") from e
