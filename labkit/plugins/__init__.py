"""Plugin registry (entry-point discovery comes with the plugins work)."""

from labkit.plugins.registry import KINDS, Entry, Registry, registry

__all__ = ["KINDS", "Entry", "Registry", "registry"]
