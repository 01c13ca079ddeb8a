"""Finding installed plugins: entry points in the ``labkit.plugins`` group.

Each entry point names a module with a ``register(registry)`` function, e.g. in a plugin's
``pyproject.toml``::

    [project.entry-points."labkit.plugins"]
    mingru = "labkit_mingru.plugin"

The entry point's name is the plugin's name and namespace. A plugin that fails to import or
to register is reported by name with its error (``labkit plugins list``, a log warning), its
partial registrations are removed, and labkit goes on without it. A plugin's configs are the
YAML files under ``<its top-level package>/conf/``, found without importing the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import traceback
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.plugins.api import PluginRegistry

if TYPE_CHECKING:
    from labkit.plugins.registry import Registry

log = logging.getLogger("labkit.plugins")


@dataclass
class PluginInfo:
    """One installed plugin: where it comes from, whether it loaded, what it registered."""

    name: str
    module: str
    dist: str | None = None
    version: str | None = None
    error: str | None = None  # "ImportError: No module named 'x'" when it failed
    details: str | None = None  # the traceback of that error
    config_dir: Path | None = None
    registered: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def package(self) -> str:
        return self.module.split(":", 1)[0].split(".", 1)[0]

    @property
    def source(self) -> str:
        """``labkit-mingru 0.1.0`` (or the module when the distribution is unknown)."""
        return f"{self.dist} {self.version}" if self.dist else self.module

    def configs(self) -> list[str]:
        """``group/option`` of every config the plugin ships (``experiment/charlm_mingru``)."""
        if self.config_dir is None:
            return []
        return sorted(
            p.relative_to(self.config_dir).with_suffix("").as_posix() for p in self.config_dir.rglob("*.yaml")
        )


def plugin_entry_points(group: str = "labkit.plugins") -> list[EntryPoint]:
    """The installed entry points, one per (distribution, name), in a stable order."""
    seen: set[tuple[str | None, str, str]] = set()
    eps = []
    for ep in entry_points(group=group):
        key = (ep.dist.name if ep.dist else None, ep.name, ep.value)
        if key not in seen:  # the same distribution on sys.path twice (editable + build dir)
            seen.add(key)
            eps.append(ep)
    return sorted(eps, key=lambda e: (e.name, e.dist.name if e.dist else ""))


def config_dir(module: str) -> Path | None:
    """``<top-level package>/conf`` of a plugin module, located without importing it."""
    package = module.split(":", 1)[0].split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        conf = Path(location) / "conf"
        if conf.is_dir():
            return conf
    return None


def load_plugin(registry: Registry, ep: EntryPoint, taken: dict[str, PluginInfo]) -> PluginInfo:
    """Import one entry point's module and call its ``register`` (errors are recorded, not raised)."""
    info = PluginInfo(
        name=ep.name,
        module=ep.value,
        dist=ep.dist.name if ep.dist else None,
        version=ep.dist.version if ep.dist else None,
        config_dir=config_dir(ep.value),
    )
    other = taken.get(ep.name)
    if other is not None:
        info.error = (
            f"ValueError: plugin name {ep.name!r} is already taken by {other.source} ({other.module}); "
            f"{info.source} ({info.module}) cannot register under it (rename one entry point)"
        )
        return info
    before = {(e.kind, e.name) for e in registry.entries(owner=ep.name)}
    try:
        target = ep.load()
        register = getattr(target, "register", None)
        if not callable(register):
            raise TypeError(f"{ep.value} has no register(registry) function")
        register(PluginRegistry(registry, ep.name))
    except Exception as exc:
        registry.unregister_owner(ep.name)
        info.error = f"{type(exc).__name__}: {exc}"
        info.details = traceback.format_exc()
        return info
    info.registered = sorted({(e.kind, e.name) for e in registry.entries(owner=ep.name)} - before)
    return info


def load_plugins(registry: Registry) -> dict[str, PluginInfo]:
    """Register every installed plugin; failed ones are logged by name and kept out."""
    plugins: dict[str, PluginInfo] = {}
    for name, old in (registry._plugins or {}).items():  # reload: drop what the last load added
        if old.ok:
            registry.unregister_owner(name)
    for ep in plugin_entry_points(registry.group):
        info = load_plugin(registry, ep, plugins)
        if not info.ok:
            log.warning("labkit plugin %r (%s) failed to load and is skipped: %s", info.name, info.source, info.error)
        plugins[info.name if info.name not in plugins else f"{info.name} ({info.source})"] = info
    return plugins
