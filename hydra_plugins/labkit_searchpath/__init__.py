"""Hydra SearchPathPlugin: the ``conf/`` folder of every installed labkit plugin joins labkit's configs.

A plugin package ships ``<package>/conf/<group>/<option>.yaml``; once it is installed (an entry
point in the ``labkit.plugins`` group), ``labkit train model=<option>`` or
``experiment=<option>`` finds it. Each plugin's folder is appended after labkit's own configs as
``file://<abs conf dir>`` with provider ``labkit-plugin-<name>``, so a plugin adds options and
never shadows labkit's.

Hydra imports this module in every Hydra app of the environment, so it stays light: it reads
entry points and locates packages (``importlib.util.find_spec`` on a top-level package imports
nothing), never importing labkit or a plugin, and it only touches search paths that contain
labkit's own configs. A plugin that fails to import still contributes its configs; the error
shows when a config instantiates its target (and in ``labkit plugins list``).
"""

from __future__ import annotations

import importlib.util
import logging
from importlib.metadata import entry_points
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

log = logging.getLogger(__name__)

GROUP = "labkit.plugins"


def _package_dir(package: str) -> list[Path]:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def plugin_config_dirs() -> list[tuple[str, Path]]:
    """``(plugin name, absolute conf dir)`` of each installed plugin that ships configs, in name order."""
    found: dict[Path, str] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        package = ep.value.split(":", 1)[0].split(".", 1)[0].strip()
        for location in _package_dir(package):
            conf = (location / "conf").resolve()
            if conf.is_dir() and conf not in found:
                found[conf] = ep.name
    return [(name, conf) for conf, name in found.items()]


def _labkit_conf() -> Path | None:
    dirs = _package_dir("labkit")
    return (dirs[0] / "conf").resolve() if dirs else None


def _is_labkit_app(search_path: ConfigSearchPath) -> bool:
    """Whether the app composes labkit's configs (``labkit train``, ``labkit.runner.hydra_app.compose``)."""
    conf = _labkit_conf()
    for element in search_path.get_path():
        path = element.path or ""
        if path in ("pkg://labkit.conf", "pkg://labkit/conf"):
            return True
        if path.startswith("file://"):
            path = path[len("file://") :]
        elif "://" in path:
            continue
        try:  # hydra.main(config_path=ABS) gives the bare path, initialize_config_dir a file:// one
            if conf is not None and Path(path).resolve() == conf:
                return True
        except OSError:
            continue
    return False


class LabkitPluginSearchPath(SearchPathPlugin):
    """Appends ``file://<plugin package>/conf`` (provider ``labkit-plugin-<name>``) for each plugin."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not _is_labkit_app(search_path):
            return
        for name, conf in plugin_config_dirs():
            search_path.append(provider=f"labkit-plugin-{name}", path=f"file://{conf}")
            log.debug("labkit plugin %r contributes configs from %s", name, conf)
