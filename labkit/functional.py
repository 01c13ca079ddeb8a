"""``labkit.functional`` (imported as ``F``): every op as a function.

The ops live one family per module in ``labkit.ops``; this module gathers them,
registers each with the plugin registry (owner ``labkit``, the same API plugins
use), and gives Tensor its operators and methods.
"""

from __future__ import annotations

import importlib
import inspect

from labkit.core.function import Function
from labkit.ops import methods as _methods
from labkit.ops.activation import *  # noqa: F403
from labkit.ops.arith import *  # noqa: F403
from labkit.ops.attention import *  # noqa: F403
from labkit.ops.broadcast import *  # noqa: F403
from labkit.ops.compare import *  # noqa: F403
from labkit.ops.conv import *  # noqa: F403
from labkit.ops.index import *  # noqa: F403
from labkit.ops.linalg import *  # noqa: F403
from labkit.ops.loss import *  # noqa: F403
from labkit.ops.math import *  # noqa: F403
from labkit.ops.nn import *  # noqa: F403
from labkit.ops.norm import *  # noqa: F403
from labkit.ops.pad import *  # noqa: F403
from labkit.ops.pool import *  # noqa: F403
from labkit.ops.reduce import *  # noqa: F403
from labkit.ops.rnn import *  # noqa: F403
from labkit.ops.rnn_scan import *  # noqa: F403
from labkit.ops.shape import *  # noqa: F403
from labkit.ops.transfer import *  # noqa: F403
from labkit.plugins.registry import registry

FAMILY_NAMES = (
    "arith", "broadcast", "transfer", "math", "compare", "activation", "reduce", "shape", "pad", "index", "linalg", "loss", "nn",
    "conv", "pool", "norm", "attention", "rnn", "rnn_scan",
)  # fmt: skip
FAMILIES = tuple(importlib.import_module(f"labkit.ops.{name}") for name in FAMILY_NAMES)

__all__ = sorted({name for fam in FAMILIES for name in fam.__all__})


def _register_builtins() -> None:
    g = globals()
    for name in __all__:
        registry.register("op", name, g[name], owner="labkit")
    for fam in FAMILIES:
        for _, cls in inspect.getmembers(fam, inspect.isclass):
            if issubclass(cls, Function) and cls.__module__ == fam.__name__ and not cls.__name__.startswith("_"):
                registry.register("function", cls.__name__.lower(), cls, owner="labkit")


_register_builtins()
MISSING_METHODS = _methods.install(__import__(__name__, fromlist=["_"]))
