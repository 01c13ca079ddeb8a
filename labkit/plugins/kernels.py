"""Selecting plugin kernels: replacement forwards of built-in ops, off until a run asks for them.

A run selects them with ``backend.kernels: [fastkernels]`` (every kernel of plugin
``fastkernels``) or names single ones (``fastkernels.conv@numpy``); code uses
``with use_kernels([...]):``. Leaving the block restores what was active before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from labkit.plugins.registry import Entry, Registry
from labkit.plugins.registry import registry as default_registry


def selected_kernels(names: Sequence[str], registry: Registry = default_registry) -> list[Entry]:
    """The kernel entries ``names`` select (plugin names or full kernel names); errors name what is missing."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"backend.kernels: expected a list of plugin or kernel names, got {names!r}")
    registry.load_plugins()
    kernels = [e for e in registry.entries("kernel") if e.meta.get("selectable")]
    chosen: list[Entry] = []
    for name in names:
        matches = [e for e in kernels if e.owner == name or e.name == name]
        if not matches:
            offered = sorted({e.owner for e in kernels} | {e.name for e in kernels}) or ["none installed"]
            raise ValueError(f"backend.kernels: no plugin kernels named {name!r}; available: {', '.join(offered)}")
        chosen.extend(m for m in matches if m not in chosen)
    slots: dict[tuple[str, str], Entry] = {}
    for e in chosen:
        slot = (e.meta["function"], e.meta["backend"])
        if slot in slots:
            raise ValueError(
                f"backend.kernels: {slot[0]!r} on {slot[1]!r} is provided by both {slots[slot].name!r} "
                f"(plugin {slots[slot].owner!r}) and {e.name!r} (plugin {e.owner!r}); select one of them"
            )
        slots[slot] = e
    return chosen


@contextmanager
def use_kernels(names: Sequence[str], registry: Registry = default_registry) -> Iterator[list[str]]:
    """Activate the selected kernels inside the block; yields their names."""
    chosen = selected_kernels(names, registry)
    saved = []
    try:
        for e in chosen:
            function_cls = registry.get("function", e.meta["function"])
            forward = registry.get("kernel", e.name)
            backend = e.meta["backend"]
            saved.append((function_cls, backend, function_cls._kernels.get(backend)))
            function_cls.register_kernel(backend, forward)
        yield [e.name for e in chosen]
    finally:
        for function_cls, backend, previous in reversed(saved):
            if previous is None:
                function_cls._kernels.pop(backend, None)
            else:
                function_cls._kernels[backend] = previous
