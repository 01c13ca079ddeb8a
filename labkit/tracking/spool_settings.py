"""``tracking.spool.*`` as a checked value (:class:`SpoolSettings`), and where spools go by default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SpoolSettings:
    """``tracking.spool.*``: spool operations on local disk and send them when the store answers.

    Attributes:
        enabled: journal every operation and send it from a background thread.
        dir: the spool folder; None -> ``mlflow-spool/`` next to a SQLite store, else in the current directory.
        offline: never contact the store during the run (``tracking=offline``); ``labkit sync`` sends later.
        max_wait_s: ``finish()`` waits at most this long for the backlog to be sent; the rest stays spooled.
        request_timeout_s: the bound on one HTTP request (connect and each read), in whole seconds.
        backoff_min_s, backoff_max_s: after a failure the next try waits min, 2 min, 4 min ... up to max.
    """

    enabled: bool = False
    dir: str | None = None
    offline: bool = False
    max_wait_s: float = 30.0
    request_timeout_s: int = 5
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0

    @classmethod
    def parse(cls, value: Any, key: str = "tracking.spool") -> SpoolSettings | None:
        """Settings from None/bool/mapping/SpoolSettings; None when spooling is off.

        Raises:
            ValueError, TypeError: an unknown key or a value out of range, naming ``key.<name>``.
        """
        if value is None or value is False:
            return None
        if value is True:
            return cls(enabled=True)
        if isinstance(value, SpoolSettings):
            settings = value
        elif isinstance(value, Mapping):
            names = {f.name for f in fields(cls)}
            unknown = sorted(str(k) for k in value if k not in names)
            if unknown:
                raise ValueError(f"{key}: unknown key(s) {unknown}; expected keys among {sorted(names)}")
            settings = cls(**dict(value))
        else:
            raise TypeError(f"{key}: expected a mapping of settings, true/false or null, got {value!r}")
        settings._check(key)
        return settings if settings.enabled or settings.offline else None

    def _check(self, key: str) -> None:
        for name in ("max_wait_s", "backoff_min_s", "backoff_max_s"):
            number = getattr(self, name)
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
                raise ValueError(f"{key}.{name}: expected a number >= 0, got {number!r}")
        timeout = self.request_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"{key}.request_timeout_s: expected a whole number of seconds >= 1, got {timeout!r}")
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError(
                f"{key}.backoff_max_s: expected >= backoff_min_s ({self.backoff_min_s}), got {self.backoff_max_s}"
            )
        if self.dir is not None and not isinstance(self.dir, (str, os.PathLike)):
            raise TypeError(f"{key}.dir: expected a path or null, got {self.dir!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_spool_dir(uri: str | None) -> Path:
    """``<db folder>/mlflow-spool`` for ``sqlite:///`` stores, else ``<cwd>/mlflow-spool``."""
    if uri and uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent / "mlflow-spool"
    return Path.cwd().resolve() / "mlflow-spool"
