"""What a run records about itself, as MLflow strings: params from the config, system tags.

``flatten_config({"optim": {"lr": 1e-3}}) -> {"optim.lr": "0.001"}``; ``system_tags()`` gives
the labkit version, git commit and dirty flag, command line, host and Python version.

MLflow params are flat string pairs with limits on key characters, key length and value
length (``mlflow.utils.validation``; the numbers below are those of MLflow 3.x, and a test
checks them against the installed version). This module does not import mlflow, so the
runner can flatten a config without paying for the import.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import os
import platform
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

#: mlflow.utils.validation.MAX_PARAM_VAL_LENGTH (MLflow 3.x; 500 before 2.x, 6000 since)
MAX_PARAM_VAL_LENGTH = 6000
#: mlflow.utils.validation.MAX_TAG_VAL_LENGTH
MAX_TAG_VAL_LENGTH = 8000
#: mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH (param, metric and tag keys)
MAX_KEY_LENGTH = 250
#: mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
MAX_PARAMS_PER_BATCH = 100
#: mlflow.utils.validation.MAX_METRICS_PER_BATCH
MAX_METRICS_PER_BATCH = 1000

_TRUNCATED = "...[truncated]"
# MLflow accepts [/\w.\- :] in keys; ':' is refused on Windows, so it is replaced too.
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")

T = TypeVar("T")


def format_value(value: Any) -> str:
    """A param value as text, written the way a Hydra override would write it.

    ``None -> "null"``, ``True -> "true"``, ``1e-3 -> "0.001"``, ``[32, 64] -> "[32, 64]"``,
    so a logged value can be pasted back as ``optim.lr=0.001``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / labkit scalars
        return format_value(value.item())
    return str(value)


def truncate_value(text: str, limit: int = MAX_PARAM_VAL_LENGTH) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...[truncated]`` when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_TRUNCATED)] + _TRUNCATED


def sanitize_key(key: str, limit: int = MAX_KEY_LENGTH) -> str:
    """A key MLflow accepts: only ``[/\\w.\\- ]``, no empty/``.``/``..`` path segments, at most ``limit`` chars.

    Other characters become ``_``; a key that has to be shortened keeps its head and gets an
    8-hex-digit hash of the full key, so two long keys stay distinct.
    """
    if not isinstance(key, str):
        key = str(key)
    clean = _BAD_KEY_CHARS.sub("_", key)
    parts = [p for p in clean.split("/") if p != ""]
    clean = "/".join("_" if p in (".", "..") else p for p in parts) or "_"
    if clean.startswith(".."):  # MLflow reads a leading ".." as a path escaping the run
        clean = "_" + clean
    if len(clean) > limit:
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        clean = f"{clean[: limit - 9]}-{digest}"
    return clean


def _is_scalar_list(value: Sequence[Any]) -> bool:
    return all(not isinstance(v, Mapping) and (isinstance(v, str) or not isinstance(v, Sequence)) for v in value)


def _walk(node: Any, prefix: str, sep: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        if not node and prefix:
            yield prefix, {}
        for key, value in node.items():
            yield from _walk(value, f"{prefix}{sep}{key}" if prefix else str(key), sep)
    elif isinstance(node, Sequence) and not isinstance(node, str | bytes | bytearray) and not _is_scalar_list(node):
        # lists holding dicts (layer specs, callback lists) get one key per item: "callbacks.0._target_"
        for index, value in enumerate(node):
            yield from _walk(value, f"{prefix}{sep}{index}" if prefix else str(index), sep)
    else:
        yield prefix, node


def flatten_config(config: Mapping[str, Any], sep: str = ".") -> dict[str, str]:
    """Flatten a nested config into MLflow-ready params.

    Args:
        config: nested dicts/lists of plain values (for an OmegaConf config pass
            ``OmegaConf.to_container(cfg, resolve=True)``).
        sep: the separator between nesting levels.

    Returns:
        ``{"optim.lr": "0.001", "model.channels": "[32, 64]", ...}``: sanitised keys
        (see :func:`sanitize_key`), values as text (:func:`format_value`) truncated to
        ``MAX_PARAM_VAL_LENGTH``. Lists of plain values stay one param; lists holding
        dicts are indexed (``callbacks.0._target_``).

    Raises:
        TypeError: ``config`` is not a mapping.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"flatten_config: expected a mapping (dict), got {type(config).__name__}")
    flat: dict[str, str] = {}
    for key, value in _walk(config, "", sep):
        flat[sanitize_key(key)] = truncate_value(format_value(value))
    return flat


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Successive lists of at most ``size`` items (MLflow caps each batch call)."""
    if size <= 0:
        raise ValueError(f"batched: expected a positive size, got {size}")
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---- system tags -------------------------------------------------------------------------


def _git(args: list[str], cwd: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(cwd: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``{"commit", "branch", "dirty"}`` of the git checkout holding ``cwd``; ``{}`` outside git.

    ``dirty`` is ``"true"`` when tracked files differ from the commit (untracked files do not count).
    """
    where = os.fspath(cwd) if cwd is not None else os.getcwd()
    commit = _git(["rev-parse", "HEAD"], where)
    if not commit:
        return {}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    info = {"commit": commit, "dirty": "true" if status else "false"}
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], where)
    if branch and branch != "HEAD":
        info["branch"] = branch
    return info


def system_tags(cwd: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Tags describing where and how a run was started.

    ``labkit.version``, ``labkit.command`` (the command line), ``labkit.host``, ``labkit.python``,
    MLflow's ``mlflow.source.name``/``mlflow.source.type``/``mlflow.user`` (shown in the UI),
    and in a git checkout ``mlflow.source.git.commit``, ``labkit.git.dirty``, ``mlflow.source.git.branch``.
    """
    from labkit import __version__

    tags = {
        "labkit.version": __version__,
        "labkit.command": shlex.join(sys.argv) if sys.argv and sys.argv[0] else "python",
        "labkit.host": socket.gethostname(),
        "labkit.python": platform.python_version(),
        "mlflow.source.name": sys.argv[0] if sys.argv and sys.argv[0] else "python",
        "mlflow.source.type": "LOCAL",
    }
    try:
        tags["mlflow.user"] = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        pass
    git = git_info(cwd)
    if git:
        tags["mlflow.source.git.commit"] = git["commit"]
        tags["labkit.git.dirty"] = git["dirty"]
        if "branch" in git:
            tags["mlflow.source.git.branch"] = git["branch"]
    return tags


#: MLflow's limit on run names (PostgreSQL enforces it; SQLite does not)
MAX_RUN_NAME_LENGTH = 250


def shorten_name(name: str, limit: int = MAX_RUN_NAME_LENGTH) -> str:
    """``name`` if it fits in ``limit`` characters, else its start, ``~`` and 8 hex digits of its
    SHA-1 (so that long sweep-trial names stay distinct)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{name[: limit - 9]}~{digest}"


def default_run_name() -> str:
    """``run-YYYYmmdd-HHMMSS-xxxx`` from the clock and the OS's randomness (never a seeded stream)."""
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
