"""What a plugin's ``register(registry)`` receives: the shared registry, bound to the plugin.

Every name a plugin registers is namespaced by the plugin (``registry.op("scan", ...)`` in
plugin ``mingru`` is stored as ``mingru.scan``), and every entry records the plugin as its
owner. Objects may be ``"package.module:attr"`` strings, imported only when first used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from labkit.plugins.registry import Lazy, Registry, as_lazy

#: an object, or the ``"package.module:attr"`` that names it
ObjectRef = Any


class PluginRegistry:
    """The registry as one plugin sees it."""

    def __init__(self, registry: Registry, plugin: str) -> None:
        self._registry = registry
        #: the plugin's name (its entry point's name)
        self.plugin = plugin

    def qualified(self, name: str) -> str:
        """``name`` namespaced by this plugin."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"plugin {self.plugin!r}: expected a non-empty string name, got {name!r}")
        return name if name.startswith(self.plugin + ".") else f"{self.plugin}.{name}"

    def register(self, kind: str, name: str, obj: ObjectRef, **meta: Any) -> str:
        """Register ``obj`` as ``kind`` ``<plugin>.<name>``; returns the stored name."""
        full = self.qualified(name)
        self._registry.register(kind, full, as_lazy(obj), owner=self.plugin, **meta)
        return full

    def op(self, name: str, fn: ObjectRef, *, specs: ObjectRef | Sequence[Any] | None = None) -> str:
        """A user-facing op. ``specs``: ``OpSpec`` rows (or a callable/``"mod:attr"`` returning them)
        that the conformance kit checks (forward vs reference, gradcheck, double backward)."""
        return self.register("op", name, fn, specs=_lazy_meta(specs))

    def function(self, name: str, cls: ObjectRef) -> str:
        """An op's ``Function`` class."""
        return self.register("function", name, cls)

    def module(self, name: str, cls: ObjectRef, *, example: ObjectRef | None = None) -> str:
        """A layer. ``example(generator) -> (module, inputs)`` in float64 for the conformance kit."""
        return self.register("module", name, cls, example=_lazy_meta(example))

    def kernel(
        self, function: str, backend: str, forward: ObjectRef, *, specs: ObjectRef | Sequence[Any] | None = None
    ) -> str:
        """A replacement ``forward(fn_self, *arrays)`` of the built-in ``Function`` named ``function``
        on ``backend`` arrays. Inactive until selected (``backend.kernels: [plugin]`` in a run's
        config, or ``labkit.plugins.use_kernels([plugin])``). ``specs``: ``OpSpec`` rows whose ``fn``
        runs that Function (e.g. calls ``F.max_pool2d``); the conformance kit compares outputs and
        gradients with the kernel against the built-in on them."""
        if not isinstance(backend, str) or not backend:
            raise TypeError(f"plugin {self.plugin!r}: kernel backend must be a name like 'numpy', got {backend!r}")
        name = f"{function}@{backend}"
        return self.register(
            "kernel", name, forward, function=function, backend=backend, selectable=True, specs=_lazy_meta(specs)
        )

    def backend(self, name: str, backend: ObjectRef) -> str:
        return self.register("backend", name, backend)

    def dataset(self, name: str, spec: Any) -> str:
        """A ``labkit.data.catalog.DatasetSpec``; its ``name`` is set to the namespaced name."""
        full = self.qualified(name)
        if hasattr(spec, "name") and spec.name != full:
            from dataclasses import replace

            spec = replace(spec, name=full)
        self._registry.register("dataset", full, spec, owner=self.plugin)
        return full

    def task(self, name: str, cls: ObjectRef) -> str:
        return self.register("task", name, cls)

    def metric(self, name: str, fn: ObjectRef) -> str:
        return self.register("metric", name, fn)

    def callback(self, name: str, cls: ObjectRef) -> str:
        return self.register("callback", name, cls)

    def tokenizer(self, name: str, cls: ObjectRef) -> str:
        return self.register("tokenizer", name, cls)


def _lazy_meta(value: Any) -> Any:
    return Lazy(value) if isinstance(value, str) else value


def call_meta(value: Any, *args: Any) -> Any:
    """Resolve a metadata hook (``specs``/``example``): a Lazy reference or callable is called with
    ``args``; a plain sequence is returned as it is."""
    if isinstance(value, Lazy):
        value = value.load()
    if isinstance(value, Callable):  # type: ignore[arg-type]
        return value(*args)
    return value
