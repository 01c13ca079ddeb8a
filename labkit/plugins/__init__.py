"""Plugins: the registry labkit's built-ins and installed packages register through.

See docs/plugins.md. ``registry.load_plugins()`` discovers the installed plugins
(entry-point group ``labkit.plugins``); ``use_kernels`` selects plugin kernels.
"""

from labkit.plugins.api import PluginRegistry
from labkit.plugins.discovery import PluginInfo
from labkit.plugins.kernels import selected_kernels, use_kernels
from labkit.plugins.registry import KINDS, Entry, Lazy, Registry, registry


def load_plugins(reload: bool = False) -> dict[str, PluginInfo]:
    """Discover and register the installed plugins (once); returns them by name with their status."""
    return registry.load_plugins(reload=reload)


__all__ = [
    "KINDS", "Entry", "Lazy", "PluginInfo", "PluginRegistry", "Registry", "load_plugins", "registry",
    "selected_kernels", "use_kernels",
]  # fmt: skip
