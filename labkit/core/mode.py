"""Autograd modes: grad recording and anomaly detection, backed by contextvars.

One ContextVar holds both flags so the hot path reads a single value per op.
Context managers work as decorators too (``@labkit.no_grad()``).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Mode(NamedTuple):
    grad_enabled: bool
    anomaly: bool


_DEFAULT_MODE = Mode(grad_enabled=True, anomaly=False)
_MODE: contextvars.ContextVar[Mode] = contextvars.ContextVar("labkit_mode", default=_DEFAULT_MODE)

get_mode = _MODE.get


def is_grad_enabled() -> bool:
    """Whether ops record a graph for backward in the current context."""
    return _MODE.get().grad_enabled


def is_anomaly_enabled() -> bool:
    """Whether ops check their results for NaN/inf in the current context."""
    return _MODE.get().anomaly


class _ModeContext:
    """Sets one field of the mode for a ``with`` block or a decorated function."""

    _field: str = ""
    _value: bool = True

    def __init__(self) -> None:
        self._tokens: list[contextvars.Token[Mode]] = []

    def __enter__(self) -> None:
        self._tokens.append(_MODE.set(_MODE.get()._replace(**{self._field: self._value})))

    def __exit__(self, *exc: object) -> None:
        _MODE.reset(self._tokens.pop())

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_ModeContext):  # noqa: N801 - PyTorch's name
    """Disable graph recording: ``with labkit.no_grad(): ...`` or ``@labkit.no_grad()``."""

    _field = "grad_enabled"
    _value = False


class enable_grad(_ModeContext):  # noqa: N801 - PyTorch's name
    """Re-enable graph recording inside a ``no_grad`` block."""

    _field = "grad_enabled"
    _value = True


class set_grad_enabled(_ModeContext):  # noqa: N801 - PyTorch's name
    """Set graph recording on or off: ``with labkit.set_grad_enabled(training): ...``."""

    _field = "grad_enabled"

    def __init__(self, mode: bool = True) -> None:
        super().__init__()
        self._value = bool(mode)

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(self._value):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class detect_anomaly(_ModeContext):  # noqa: N801 - PyTorch's name
    """Check every op's forward and backward results for NaN/inf and name the op.

    Opt-in because the check reads every result once more.
    """

    _field = "anomaly"
    _value = True
