"""The registry that labkit's built-ins and outside plugins both register through.

Kinds: ``op`` (a user-facing function), ``function`` (an op's ``Function`` class,
the target of kernels), ``kernel`` (a backend-specific forward for an op),
``backend``, ``module`` (a layer), ``dataset``, ``task``, ``metric``, ``callback``,
``tokenizer``. Every entry records its owner; a second registration of a name
raises an error naming both owners.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

KINDS = ("op", "function", "kernel", "backend", "module", "dataset", "task", "metric", "callback", "tokenizer")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: Any
    owner: str


class Registry:
    """Named objects by kind, each with the plugin (or ``labkit``) that owns it."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}

    def _check_kind(self, kind: str) -> None:
        if kind not in self._entries:
            raise ValueError(f"registry: unknown kind {kind!r}; expected one of {list(KINDS)}")

    def register(self, kind: str, name: str, obj: Any, owner: str = "labkit") -> Any:
        self._check_kind(kind)
        if not isinstance(name, str) or not name:
            raise TypeError(f"registry: expected a non-empty string name for a {kind}, got {name!r}")
        existing = self._entries[kind].get(name)
        if existing is not None and existing.obj is not obj:
            raise ValueError(
                f"registry: {kind} {name!r} is already registered by {existing.owner!r}; "
                f"{owner!r} cannot register it again (choose a namespaced name like '{owner}.{name}')"
            )
        self._entries[kind][name] = Entry(kind, name, obj, owner)
        if kind == "backend":
            from labkit.backends import backends

            backends.register(obj)
        return obj

    def get(self, kind: str, name: str) -> Any:
        self._check_kind(kind)
        entry = self._entries[kind].get(name)
        if entry is None:
            valid = ", ".join(sorted(self._entries[kind])) or "none"
            raise KeyError(f"registry: no {kind} named {name!r}; registered {kind}s: {valid}")
        return entry.obj

    def owner(self, kind: str, name: str) -> str:
        self.get(kind, name)
        return self._entries[kind][name].owner

    def names(self, kind: str) -> list[str]:
        self._check_kind(kind)
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None, owner: str | None = None) -> Iterator[Entry]:
        for k in KINDS if kind is None else (kind,):
            for e in self._entries[k].values():
                if owner is None or e.owner == owner:
                    yield e

    def register_kernel(self, op: str, backend: str, forward: Callable[..., Any], owner: str = "labkit") -> None:
        """Use ``forward(fn_self, *arrays)`` for op ``op``'s forward on arrays of ``backend``.

        ``op`` is the op's ``Function`` name (``registry.names("function")`` lists them).
        """
        function_cls = self.get("function", op)
        key = f"{op}@{backend}"
        self.register("kernel", key, forward, owner=owner)
        function_cls.register_kernel(backend, forward)

    def unregister(self, kind: str, name: str) -> None:
        self._check_kind(kind)
        entry = self._entries[kind].pop(name, None)
        if entry is not None and kind == "kernel":
            op, _, backend = name.partition("@")
            self.get("function", op)._kernels.pop(backend, None)


#: the registry labkit and installed plugins share
registry = Registry()
