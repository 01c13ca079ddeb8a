"""Binds Tensor's operators and methods to the ops (one table, so the map is visible).

``Tensor`` itself (``labkit.core.tensor``) holds only the data model; calling
``install()`` once at import gives it ``+``, ``@``, ``x.sum()``, ``x.reshape()``...
"""

from __future__ import annotations

from types import ModuleType

from labkit.core.tensor import Tensor

# Tensor attribute -> functional name (same name where omitted)
DUNDERS = {
    "__add__": "add",
    "__radd__": "add",
    "__sub__": "sub",
    "__rsub__": "rsub",
    "__mul__": "mul",
    "__rmul__": "mul",
    "__truediv__": "div",
    "__rtruediv__": "rdiv",
    "__pow__": "pow",
    "__rpow__": "rpow",
    "__neg__": "neg",
    "__abs__": "abs",
    "__matmul__": "matmul",
    "__rmatmul__": "rmatmul",
    "__getitem__": "getitem",
    "__eq__": "eq",
    "__ne__": "ne",
    "__lt__": "lt",
    "__le__": "le",
    "__gt__": "gt",
    "__ge__": "ge",
}

METHODS = (
    "add sub mul div pow neg matmul "
    "exp log log1p sqrt rsqrt abs sign sin cos clamp clip maximum minimum "
    "eq ne lt le gt ge isnan isfinite "
    "tanh sigmoid relu leaky_relu elu gelu silu softplus softmax log_softmax "
    "sum mean var std max min argmax argmin logsumexp prod any all "
    "reshape view flatten transpose permute swapaxes squeeze unsqueeze expand broadcast_to "
    "split chunk flip repeat tile "
    "gather index_select scatter_add masked_fill"
).split()


def install(functional: ModuleType) -> list[str]:
    """Attach the ops to Tensor; return the names that ``functional`` does not provide."""
    missing = []
    for attr, name in DUNDERS.items():
        fn = getattr(functional, name, None)
        if fn is None:
            missing.append(name)
            continue
        setattr(Tensor, attr, fn)
    for name in METHODS:
        fn = getattr(functional, name, None)
        if fn is None:
            missing.append(name)
            continue
        setattr(Tensor, name, fn)
    transpose = getattr(functional, "transpose", None)
    if transpose is not None:
        Tensor.T = property(lambda self: transpose(self))  # type: ignore[attr-defined]
        Tensor.mT = property(lambda self: transpose(self, -2, -1))  # type: ignore[attr-defined]
    Tensor.__hash__ = lambda self: id(self)  # type: ignore[method-assign]  # __eq__ is elementwise
    return sorted(set(missing))


def tensor_method_names() -> list[str]:
    return sorted(set(METHODS) | set(DUNDERS))
