"""The registry that labkit's built-ins and outside plugins both register through.

Kinds: ``op`` (a user-facing function), ``function`` (an op's ``Function`` class,
the target of kernels), ``kernel`` (a backend-specific forward for an op),
``backend``, ``module`` (a layer), ``dataset``, ``task``, ``metric``, ``callback``,
``tokenizer``. Every entry records its owner; a second registration of a name
raises an error naming both owners.

An object may be registered as a ``"package.module:attr"`` string: it is imported the
first time it is looked up, so listing plugins never imports their heavy dependencies.
Installed plugins (entry points in the ``labkit.plugins`` group) are discovered the
first time a name is missing, or explicitly with :meth:`Registry.load_plugins`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.plugins.discovery import PluginInfo

KINDS = ("op", "function", "kernel", "backend", "module", "dataset", "task", "metric", "callback", "tokenizer")


@dataclass(frozen=True)
class Lazy:
    """An object named ``"package.module:attr"``, imported when first used."""

    target: str

    def __post_init__(self) -> None:
        module, sep, attr = self.target.partition(":")
        if not sep or not module or not attr or " " in self.target:
            raise ValueError(f"registry: expected 'package.module:attr' for a lazy object, got {self.target!r}")

    @property
    def package(self) -> str:
        return self.target.split(":", 1)[0].split(".", 1)[0]

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: Any  # the object, or a Lazy reference until first looked up
    owner: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def package(self) -> str | None:
        """Top-level package the object comes from (without importing a lazy one)."""
        if isinstance(self.obj, Lazy):
            return self.obj.package
        module = getattr(self.obj, "__module__", None)
        return module.split(".", 1)[0] if isinstance(module, str) else None


def as_lazy(obj: Any) -> Any:
    """``"pkg.mod:attr"`` strings become :class:`Lazy` references; other objects pass through."""
    return Lazy(obj) if isinstance(obj, str) else obj


def resolve(value: Any) -> Any:
    """The object behind a :class:`Lazy` reference (anything else as it is)."""
    return value.load() if isinstance(value, Lazy) else value


class Registry:
    """Named objects by kind, each with the plugin (or ``labkit``) that owns it."""

    def __init__(self, group: str = "labkit.plugins") -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        #: the entry-point group plugins are discovered in
        self.group = group
        self._plugins: dict[str, PluginInfo] | None = None

    def _check_kind(self, kind: str) -> None:
        if kind not in self._entries:
            raise ValueError(f"registry: unknown kind {kind!r}; expected one of {list(KINDS)}")

    def register(self, kind: str, name: str, obj: Any, owner: str = "labkit", **meta: Any) -> Any:
        """Add ``obj`` as ``kind`` ``name``; ``meta`` holds checks and examples for the conformance kit."""
        self._check_kind(kind)
        if not isinstance(name, str) or not name:
            raise TypeError(f"registry: expected a non-empty string name for a {kind}, got {name!r}")
        existing = self._entries[kind].get(name)
        if existing is not None and existing.obj is not obj:
            raise ValueError(
                f"registry: {kind} {name!r} is already registered by {existing.owner!r}; "
                f"{owner!r} cannot register it again (choose a namespaced name like '{owner}.{name}')"
            )
        self._entries[kind][name] = Entry(kind, name, obj, owner, dict(meta))
        if kind == "backend" and not isinstance(obj, Lazy):
            from labkit.backends import backends

            backends.register(obj)
        return obj

    def _entry(self, kind: str, name: str) -> Entry:
        self._check_kind(kind)
        entry = self._entries[kind].get(name)
        if entry is None and self._plugins is None:
            self.load_plugins()  # a plugin's name: discover installed plugins once, then look again
            entry = self._entries[kind].get(name)
        if entry is None:
            valid = ", ".join(sorted(self._entries[kind])) or "none"
            raise KeyError(f"registry: no {kind} named {name!r}; registered {kind}s: {valid}")
        return entry

    def get(self, kind: str, name: str) -> Any:
        """The object (importing it on first use if it was registered lazily)."""
        entry = self._entry(kind, name)
        if isinstance(entry.obj, Lazy):
            try:
                obj = entry.obj.load()
            except Exception as exc:
                raise ImportError(
                    f"registry: {kind} {name!r} of plugin {entry.owner!r} cannot be imported from "
                    f"{entry.obj.target!r}: {type(exc).__name__}: {exc}"
                ) from exc
            entry = replace(entry, obj=obj)
            self._entries[kind][name] = entry
            if kind == "backend":
                from labkit.backends import backends

                backends.register(obj)
        return entry.obj

    def entry(self, kind: str, name: str) -> Entry:
        """The entry (owner, metadata) without importing a lazy object."""
        return self._entry(kind, name)

    def owner(self, kind: str, name: str) -> str:
        return self._entry(kind, name).owner

    def names(self, kind: str) -> list[str]:
        self._check_kind(kind)
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None, owner: str | None = None) -> Iterator[Entry]:
        for k in KINDS if kind is None else (kind,):
            for e in list(self._entries[k].values()):
                if owner is None or e.owner == owner:
                    yield e

    def register_kernel(self, op: str, backend: str, forward: Callable[..., Any], owner: str = "labkit") -> None:
        """Use ``forward(fn_self, *arrays)`` for op ``op``'s forward on arrays of ``backend`` from now on.

        ``op`` is the op's ``Function`` name (``registry.names("function")`` lists them).
        Plugins register kernels that a run selects instead (``PluginRegistry.kernel``).
        """
        function_cls = self.get("function", op)
        key = f"{op}@{backend}"
        self.register("kernel", key, forward, owner=owner)
        function_cls.register_kernel(backend, forward)

    def unregister(self, kind: str, name: str) -> None:
        self._check_kind(kind)
        entry = self._entries[kind].pop(name, None)
        if entry is not None and kind == "kernel" and not entry.meta.get("selectable"):
            op, _, backend = name.partition("@")
            self.get("function", op)._kernels.pop(backend, None)

    def unregister_owner(self, owner: str) -> None:
        """Drop everything ``owner`` registered (a plugin whose ``register`` failed half-way)."""
        for kind in KINDS:
            for name in [n for n, e in self._entries[kind].items() if e.owner == owner]:
                self.unregister(kind, name)

    # ---- installed plugins -------------------------------------------------------

    def load_plugins(self, reload: bool = False) -> dict[str, PluginInfo]:
        """Discover and register the installed plugins (once); see :mod:`labkit.plugins.discovery`."""
        from labkit.plugins.discovery import load_plugins

        if self._plugins is None or reload:
            for name, old in (self._plugins or {}).items():  # reload: drop what the last load added
                if old.ok:
                    self.unregister_owner(name)
            if reload:  # the runner's _target_ allowlist caches the plugins' packages
                import sys

                instantiate = sys.modules.get("labkit.runner.instantiate")
                if instantiate is not None:
                    instantiate.plugin_packages.cache_clear()
            self._plugins = {}  # set first: a lookup inside a plugin's register() must not recurse
            self._plugins = load_plugins(self)
        return self._plugins

    @property
    def plugins(self) -> dict[str, PluginInfo]:
        """Installed plugins by name, with their status (discovers them on first use)."""
        return self.load_plugins()


#: the registry labkit and installed plugins share
registry = Registry()
