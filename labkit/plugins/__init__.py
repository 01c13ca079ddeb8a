"""Plugins: the registry labkit's built-ins and installed packages register through.

See docs/plugins.md. ``registry.load_plugins()`` discovers the installed plugins
(entry-point group ``labkit.plugins``); ``use_kernels`` selects plugin kernels;
``check_plugin(name)`` runs the conformance kit (imported on first use: it needs the
runner, and this package is imported while labkit itself loads).
"""

from typing import Any

from labkit.plugins.api import PluginRegistry
from labkit.plugins.discovery import PluginInfo
from labkit.plugins.kernels import selected_kernels, use_kernels
from labkit.plugins.registry import KINDS, Entry, Lazy, Registry, registry


def load_plugins(reload: bool = False) -> dict[str, PluginInfo]:
    """Discover and register the installed plugins (once); returns them by name with their status."""
    return registry.load_plugins(reload=reload)


#: names served lazily from labkit.plugins.conformance
_CONFORMANCE = ("CheckItem", "Report", "check_plugin")


def __getattr__(name: str) -> Any:
    if name in _CONFORMANCE:
        from labkit.plugins import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module 'labkit.plugins' has no attribute {name!r}")


__all__ = [
    "KINDS", "CheckItem", "Entry", "Lazy", "PluginInfo", "PluginRegistry", "Registry", "Report", "check_plugin",
    "load_plugins", "registry", "selected_kernels", "use_kernels",
]  # fmt: skip
