"""``_target_`` allowlist: a config may only build objects from labkit and installed labkit plugins.

A config is data (``labkit rerun`` reads one from a run's artifacts), and Hydra's
``instantiate`` imports and calls whatever ``_target_`` names. Every ``_target_`` in a
config is checked before anything is imported: its top-level package must be ``labkit``,
a package that registers an entry point in the ``labkit.plugins`` group, or one allowed
in code with :func:`allow_packages` (tests, notebooks). Configs cannot extend the list.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

PLUGIN_GROUP = "labkit.plugins"
_extra_allowed: list[str] = []


class TargetNotAllowedError(ValueError):
    """A ``_target_`` outside labkit and its installed plugins."""


@functools.cache
def plugin_packages() -> frozenset[str]:
    """Top-level packages of the installed ``labkit.plugins`` entry points."""
    roots = set()
    for ep in entry_points(group=PLUGIN_GROUP):
        roots.add(ep.value.split(":", 1)[0].split(".", 1)[0].strip())
    return frozenset(r for r in roots if r)


def allowed_prefixes() -> list[str]:
    """Module prefixes a ``_target_`` may start with."""
    return ["labkit", *sorted(plugin_packages()), *_extra_allowed]


@contextmanager
def allow_packages(*prefixes: str) -> Iterator[None]:
    """Also allow targets under ``prefixes`` (``"tests.runner.toy"``) inside this block."""
    for p in prefixes:
        if not isinstance(p, str) or not p or p.startswith(".") or p.endswith("."):
            raise ValueError(f"allow_packages: expected dotted module names, got {p!r}")
    _extra_allowed.extend(prefixes)
    try:
        yield
    finally:
        for p in prefixes:
            _extra_allowed.remove(p)


def is_allowed(target: str) -> bool:
    return any(target == p or target.startswith(p + ".") for p in allowed_prefixes())


def iter_targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every ``_target_`` in a nested dict/list config."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield where, value
            else:
                yield from iter_targets(value, where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from iter_targets(value, f"{path}.{i}" if path else str(i))


def check_targets(config: Mapping[str, Any]) -> None:
    """Raise ``TargetNotAllowedError`` naming the first refused ``_target_`` (nothing is imported)."""
    for key, target in iter_targets(config):
        if not isinstance(target, str) or not target:
            raise TargetNotAllowedError(f"config key {key!r}: expected a dotted import path, got {target!r}")
        if not is_allowed(target):
            raise TargetNotAllowedError(
                f"config key {key!r}: refused target {target!r}; expected a class or function under "
                f"{allowed_prefixes()} (labkit or an installed labkit plugin)"
            )


def resolve_target(target: str, key: str) -> Callable[..., Any]:
    """Import an allowed ``_target_`` and return the object it names."""
    check_targets({key: {"_target_": target}})
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception as exc:
        raise ValueError(f"config key {key}._target_: cannot import {target!r} ({exc})") from None


def instantiate(node: Mapping[str, Any], key: str, **kwargs: Any) -> Any:
    """Build ``node`` (a config mapping with ``_target_``) after checking its targets.

    ``key`` names the node in messages and in the log line ("Instantiating model <...>").
    """
    from hydra.utils import instantiate as hydra_instantiate
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    check_targets({key: plain})
    log.info("Instantiating %s <%s>", key, plain.get("_target_"))
    try:
        return hydra_instantiate(plain, _convert_="all", **kwargs)
    except Exception as exc:
        # Hydra wraps the target's own error (which names it already) in an InstantiationException
        raise (exc.__cause__ or exc) from None


def call_accepting(factory: Callable[..., Any], **kwargs: Any) -> Any:
    """Call ``factory`` with the ``kwargs`` its signature accepts (all of them with ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory(**kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return factory(**kwargs)
    return factory(**{k: v for k, v in kwargs.items() if k in params})


def accepts(factory: Callable[..., Any], name: str) -> bool:
    """Whether ``factory`` takes a keyword ``name`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
