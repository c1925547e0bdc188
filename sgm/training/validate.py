"""Checking every key of a run config before anything is built: an unknown key in any section, at any
depth where a `target:` names a constructor, is refused with its dotted path and the closest valid
spelling. Constructor errors raised later are mapped back to the dotted key they came from."""
import contextlib
import difflib
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Mapping, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from ..util import get_obj_from_str

# The sections of a run config and the keys each of them may hold (those without a `target`).
SECTIONS = {
    "model": ("target", "params", "base_learning_rate"),
    "data": ("target", "params"),
    "lightning": ("trainer", "modelcheckpoint", "callbacks", "loggers", "scale_lr"),
    "sampling": None,  # read by the sampling script and the demo (scripts/sampling), not by training
}
MODELCHECKPOINT_KEYS = ("params",)
TARGET_NODE_KEYS = ("target", "params")


class ConfigKeyError(ValueError):
    """Unknown keys in a config; the message names each by its dotted path."""


@dataclass
class Node:
    """A `{target, params}` mapping found in the config. path: its dotted path; params: its params."""

    path: str
    target: str
    params: Mapping[str, Any]


def suggest(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def unknown_keys(path: str, given: Sequence[str], valid: Sequence[str]) -> List[str]:
    """One line per key of `given` not in `valid`: its dotted path and a suggestion."""
    prefix = f"{path}." if path else ""
    return [f"`{prefix}{key}`{suggest(key, valid)}" for key in given if key not in valid]


def accepted_names(obj: Callable) -> Optional[List[str]]:
    """The keyword arguments `obj` accepts, or None when it cannot tell (**kwargs, no signature)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _child(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def target_nodes(value: Any, path: str) -> Iterator[Node]:
    """Every `{target, params}` mapping under `value` (a plain container), depth first."""
    if isinstance(value, Mapping):
        if isinstance(value.get("target"), str):
            params = value.get("params") or {}
            yield Node(path, value["target"], params if isinstance(params, Mapping) else {})
            yield from target_nodes(params, f"{path}.params")
            return
        for key, item in value.items():
            yield from target_nodes(item, _child(path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from target_nodes(item, _child(path, i))


def check_node(node: Node) -> List[str]:
    """Problems of one target node: an unimportable target, params its constructor does not take (and,
    for a data module with a `dataset_class`, keys of its `train`/`validation` dataset arguments)."""
    try:
        obj = get_obj_from_str(node.target)
    except ValueError as e:
        return [f"`{node.path}.target`: {e}"]
    problems = []
    names = accepted_names(obj)
    if names is not None:
        problems += unknown_keys(f"{node.path}.params", list(node.params), names)
    dataset_class = getattr(obj, "dataset_class", None)
    if inspect.isclass(dataset_class):
        for split in ("train", "validation"):
            args = node.params.get(split)
            names = accepted_names(dataset_class)
            if isinstance(args, Mapping) and names is not None:
                problems += unknown_keys(f"{node.path}.params.{split}", list(args), names)
    return problems


def _entries(section: Any, path: str) -> List[str]:
    """lightning.callbacks / lightning.loggers: {name: {target, params} or null}."""
    problems = []
    for name, entry in (section or {}).items():
        if entry is None:
            continue
        if not isinstance(entry, Mapping) or "target" not in entry:
            problems.append(f"`{path}.{name}` needs a `target:` (a dotted class path) and optional `params:`")
        else:
            problems += unknown_keys(f"{path}.{name}", list(entry), TARGET_NODE_KEYS)
    return problems


def _lightning(lightning: Mapping) -> List[str]:
    import pytorch_lightning as pl

    problems = unknown_keys("lightning", list(lightning), SECTIONS["lightning"])
    trainer = lightning.get("trainer") or {}
    problems += unknown_keys("lightning.trainer", list(trainer), accepted_names(pl.Trainer) or list(trainer))
    checkpoint = lightning.get("modelcheckpoint") or {}
    problems += unknown_keys("lightning.modelcheckpoint", list(checkpoint), MODELCHECKPOINT_KEYS)
    problems += unknown_keys("lightning.modelcheckpoint.params", list(checkpoint.get("params") or {}),
                             accepted_names(pl.callbacks.ModelCheckpoint) or [])
    problems += _entries(lightning.get("callbacks"), "lightning.callbacks")
    problems += _entries(lightning.get("loggers"), "lightning.loggers")
    return problems


def check_keys(cfg: DictConfig) -> None:
    """ConfigKeyError listing every unknown key of the run config, each with its dotted path."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    problems = unknown_keys("", list(plain), list(SECTIONS))
    for name in ("model", "data"):
        if isinstance(plain.get(name), Mapping):
            problems += unknown_keys(name, list(plain[name]), SECTIONS[name])
    if isinstance(plain.get("lightning"), Mapping):
        problems += _lightning(plain["lightning"])
    for name in ("model", "data", "lightning"):
        for node in target_nodes(plain.get(name), name):
            problems += check_node(node)
    if problems:
        raise ConfigKeyError("the config has unknown keys:\n  " + "\n  ".join(problems)
                             + "\nFix the spelling or remove the key.")


def _mentions(message: str, quoted: set, key: str, value: Any) -> bool:
    """Whether an error message is about `key: value`: the key quoted, or a string value quoted."""
    return key in quoted or (isinstance(value, str) and len(value) > 2 and f"{value!r}" in message)


def locate(message: str, cfg: DictConfig, section: str) -> Optional[str]:
    """The dotted path of the config key a constructor's error `message` is about: a params key quoted
    in it (e.g. "unexpected keyword argument 'num_frams'") or a params value quoted in it (e.g. a shard
    path that does not exist), under a target of `section`."""
    quoted = set(re.findall(r"['\"`]([A-Za-z_][A-Za-z0-9_]*)['\"`]", message))
    plain = OmegaConf.to_container(cfg, resolve=True).get(section)
    for node in target_nodes(plain, section):
        for key, value in node.params.items():
            if _mentions(message, quoted, key, value):
                return f"{node.path}.params.{key}"
            if isinstance(value, Mapping) and not isinstance(value.get("target"), str):
                for sub, sub_value in value.items():
                    if _mentions(message, quoted, sub, sub_value):
                        return f"{node.path}.params.{key}.{sub}"
    return None


@contextlib.contextmanager
def building(cfg: DictConfig, section: str) -> Iterator[None]:
    """Turn a ValueError/TypeError raised while building `section` into a ValueError that names the
    dotted config key at fault (when it can be found) or the section."""
    try:
        yield
    except (ValueError, TypeError) as e:
        if isinstance(e, ConfigKeyError):
            raise
        where = locate(str(e), cfg, section)
        label = f"`{where}`" if where else f"the `{section}:` section"
        raise ValueError(f"{label}: {type(e).__name__}: {e}") from e


