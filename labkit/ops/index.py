"""Indexing: ``x[idx]`` (basic, advanced, boolean), gather, index_select, scatter_add, masked_fill.

The gradient of reading is writing: ``getitem``'s backward scatter-adds into zeros
(``GetItemGrad``), whose own backward reads again, so double backward works.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.backends.registry import array_module, backends
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._util import broadcast_shapes
from labkit.ops.broadcast import broadcast_to
from labkit.ops.pad import pad
from labkit.ops.shape import _check_tensor, _one_axis, _pick_axis

__all__ = ["getitem", "gather", "index_select", "scatter_add", "masked_fill"]


# ---- index preparation ---------------------------------------------------------------------


def _index_array(value: Any, x: Tensor, op: str) -> Any:
    """An int or bool index (Tensor, array, list) as an array on ``x``'s backend."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
        if value.size == 0:
            value = value.astype(np.intp)
    kind = value.dtype.kind
    if kind not in "iub":
        raise TypeError(f"{op}: index arrays must hold integers or bools, got {value.dtype}")
    backend = backends.for_array(x.data)
    if backends.for_array(value) is not backend:
        value = backend.asarray(backends.for_array(value).to_numpy(value), value.dtype, x.device)
    return value


def _range_error(op: str, lo: int, hi: int, dim: int, n: int, shape: tuple[int, ...], negative: bool) -> None:
    bad = lo if lo < (-n if negative else 0) else hi
    valid = f"[{-n}, {n})" if negative else f"[0, {n})"
    raise IndexError(
        f"{op}: index {bad} is out of range for dimension {dim} of size {n} (shape {shape}; valid {valid})"
    )


def _check_range(op: str, a: Any, dim: int, n: int, shape: tuple[int, ...], negative: bool = True) -> None:
    if a.size == 0:
        return
    lo, hi = int(a.min()), int(a.max())
    if lo < (-n if negative else 0) or hi >= n:
        _range_error(op, lo, hi, dim, n, shape, negative)


def _prepare(x: Tensor, idx: Any) -> tuple[tuple[Any, ...], bool]:
    """``idx`` as a tuple numpy/cupy understand, checked against ``x.shape``; masks become
    ``nonzero()`` integer arrays. Also returns whether integer arrays may repeat (scatter must add).
    """
    items = idx if isinstance(idx, tuple) else (idx,)
    out: list[Any] = []
    for item in items:
        if item is None or item is Ellipsis or isinstance(item, (slice, bool, np.bool_)):
            out.append(item)
        elif isinstance(item, (int, np.integer)):
            out.append(int(item))
        elif isinstance(item, (Tensor, list, tuple)) or hasattr(item, "dtype"):
            out.append(_index_array(item, x, "getitem"))
        else:
            raise TypeError(
                f"getitem: indices must be ints, slices, None, Ellipsis, or int/bool tensors, got {type(item).__name__}"
            )
    if sum(item is Ellipsis for item in out) > 1:
        raise IndexError("getitem: an index can only have a single ellipsis ('...')")

    def width(item: Any) -> int:
        if item is None or item is Ellipsis or isinstance(item, (bool, np.bool_)):
            return 0
        return item.ndim if hasattr(item, "dtype") and item.dtype.kind == "b" else 1

    shape, used = x.shape, sum(width(item) for item in out)
    if used > len(shape):
        raise IndexError(f"getitem: too many indices for a tensor of shape {shape}: {used} dimensions indexed")
    final: list[Any] = []
    accumulate = False
    d = 0
    for item in out:
        if item is Ellipsis:
            d += len(shape) - used
        elif item is None or isinstance(item, (bool, np.bool_, slice)):
            pass
        elif isinstance(item, int):
            if not -shape[d] <= item < shape[d]:
                _range_error("getitem", item, item, d, shape[d], shape, True)
        elif item.dtype.kind == "b" and item.ndim > 0:
            if item.shape != shape[d : d + item.ndim]:
                raise IndexError(
                    f"getitem: boolean mask of shape {tuple(item.shape)} does not match the indexed dimensions "
                    f"{shape[d : d + item.ndim]} of a tensor of shape {shape}"
                )
            final.extend(item.nonzero())
            d += item.ndim
            continue
        elif item.dtype.kind != "b":
            _check_range("getitem", item, d, shape[d], shape)
            accumulate = True
        final.append(item)
        d += width(item)
    return tuple(final), accumulate


# ---- getitem -------------------------------------------------------------------------------


class GetItem(Function):
    def __init__(self, index: tuple[Any, ...], accumulate: bool) -> None:
        self.index = index
        self.accumulate = accumulate

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return x[self.index]

    def backward(self, gy: Tensor) -> Tensor:
        return GetItemGrad(self.index, self.accumulate, self.x_shape)(gy)


class GetItemGrad(Function):
    """Scatter ``gy`` into zeros of the indexed tensor's shape (adding where indices repeat)."""

    op_name = "getitem_grad"

    def __init__(self, index: tuple[Any, ...], accumulate: bool, shape: tuple[int, ...]) -> None:
        self.index = index
        self.accumulate = accumulate
        self.shape = shape

    def forward(self, gy: Any) -> Any:
        xp = array_module(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if self.accumulate:
            xp.add.at(gx, self.index, gy)
        else:
            gx[self.index] = gy
        return gx

    def backward(self, ggx: Tensor) -> Tensor:
        return GetItem(self.index, self.accumulate)(ggx)


def getitem(x: Tensor, idx: Any) -> Tensor:
    """``x[idx]`` with numpy semantics: ints, slices, None, ``...``, integer arrays/lists/Tensors
    (repeats accumulate in the gradient), boolean masks, and mixes of them.
    """
    _check_tensor(x, "getitem")
    index, accumulate = _prepare(x, idx)
    return GetItem(index, accumulate)(x)


# ---- gather / scatter ----------------------------------------------------------------------


def _int_index(index: Any, x: Tensor, op: str) -> Any:
    if not isinstance(index, Tensor) and not hasattr(index, "dtype") and not isinstance(index, (list, tuple)):
        raise TypeError(f"{op}: expected an integer index Tensor, got {type(index).__name__}")
    a = _index_array(index, x, op)
    if a.dtype.kind == "b":
        raise TypeError(f"{op}: expected an integer index, got a bool tensor")
    return a


def _check_gather_index(op: str, x: Tensor, axis: int, index: Any) -> None:
    """torch rules: same ndim as x, no larger outside ``axis``, values in [0, n) (no negatives)."""
    if index.ndim != x.ndim:
        raise ValueError(f"{op}: index has {index.ndim} dimensions {tuple(index.shape)} but x has {x.ndim} {x.shape}")
    for d, (k, n) in enumerate(zip(index.shape, x.shape, strict=True)):
        if d != axis and k > n:
            raise ValueError(
                f"{op}: index shape {tuple(index.shape)} exceeds x shape {x.shape} in dimension {d} ({k} > {n})"
            )
    _check_range(op, index, axis, x.shape[axis], x.shape, negative=False)


def _scatter_index(index: Any, axis: int) -> tuple[Any, ...]:
    """Full advanced index addressing ``[..., index[i, j, k], ...]`` at position (i, j, k)."""
    xp = array_module(index)
    grids = []
    for d, k in enumerate(index.shape):
        if d == axis:
            grids.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = k
            grids.append(xp.arange(k).reshape(shape))
    return tuple(grids)


class Gather(Function):
    def __init__(self, axis: int, index: Any) -> None:
        self.axis = axis
        self.index = index

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        crop = tuple(slice(None) if d == self.axis else slice(0, k) for d, k in enumerate(self.index.shape))
        return array_module(x).take_along_axis(x[crop], self.index, axis=self.axis)

    def backward(self, gy: Tensor) -> Tensor:
        zeros = Tensor._wrap(array_module(gy.data).zeros(self.x_shape, dtype=gy.dtype))
        return ScatterAdd(self.axis, self.index)(zeros, gy)


def gather(x: Tensor, axis: int | None = None, index: Any = None, *, dim: int | None = None) -> Tensor:
    """``torch.gather``: ``out[i][j] = x[index[i][j]][j]`` for axis 0 (likewise for other axes).

    ``index`` is an integer Tensor with ``x``'s number of dimensions, no larger than ``x``
    outside ``axis``; the output has ``index``'s shape.
    """
    _check_tensor(x, "gather")
    ax = _pick_axis(axis, dim, None, "gather")
    if ax is None or index is None:
        raise TypeError("gather: expected gather(x, axis, index)")
    a = _one_axis(ax, x.ndim, "gather")
    idx = _int_index(index, x, "gather")
    _check_gather_index("gather", x, a, idx)
    return Gather(a, idx)(x)


class ScatterAdd(Function):
    def __init__(self, axis: int, index: Any) -> None:
        self.axis = axis
        self.index = index

    def forward(self, x: Any, src: Any) -> Any:
        self.src_shape = src.shape
        out = x.copy()
        part = src[tuple(slice(0, k) for k in self.index.shape)]
        array_module(x).add.at(out, _scatter_index(self.index, self.axis), part)
        return out

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        n_x, n_src = self.needs_input_grad
        gsrc = None
        if n_src:
            gsrc = Gather(self.axis, self.index)(gy)
            if gsrc.shape != self.src_shape:
                widths = [
                    w
                    for s, k in zip(reversed(self.src_shape), reversed(self.index.shape), strict=True)
                    for w in (0, s - k)
                ]
                gsrc = pad(gsrc, widths)
        return (gy if n_x else None, gsrc)


def scatter_add(
    x: Tensor, axis: int | None = None, index: Any = None, src: Tensor | None = None, *, dim: int | None = None
) -> Tensor:
    """``torch.scatter_add`` (out of place): ``out = x`` then ``out[index[i][j]][j] += src[i][j]``
    for axis 0. Repeated indices add up. Differentiable in ``x`` and ``src``.
    """
    _check_tensor(x, "scatter_add")
    ax = _pick_axis(axis, dim, None, "scatter_add")
    if ax is None or index is None or src is None:
        raise TypeError("scatter_add: expected scatter_add(x, axis, index, src)")
    _check_tensor(src, "scatter_add")
    if src.dtype != x.dtype:
        raise TypeError(f"scatter_add: x is {x.dtype} but src is {src.dtype}; expected the same dtype")
    a = _one_axis(ax, x.ndim, "scatter_add")
    idx = _int_index(index, x, "scatter_add")
    if src.ndim != idx.ndim or any(k > s for k, s in zip(idx.shape, src.shape, strict=True)):
        raise ValueError(f"scatter_add: index shape {tuple(idx.shape)} must not exceed src shape {src.shape}")
    _check_gather_index("scatter_add", x, a, idx)
    return ScatterAdd(a, idx)(x, src)


def index_select(x: Tensor, axis: int | None = None, index: Any = None, *, dim: int | None = None) -> Tensor:
    """Pick entries ``index`` (1-d integers, repeats allowed) along ``axis``."""
    _check_tensor(x, "index_select")
    ax = _pick_axis(axis, dim, None, "index_select")
    if ax is None or index is None:
        raise TypeError("index_select: expected index_select(x, axis, index)")
    a = _one_axis(ax, x.ndim, "index_select")
    idx = _int_index(index, x, "index_select")
    if idx.ndim > 1:
        raise ValueError(f"index_select: expected a 1-d index, got shape {tuple(idx.shape)}")
    idx = idx.reshape(-1)
    _check_range("index_select", idx, a, x.shape[a], x.shape, negative=False)
    return GetItem((*(slice(None),) * a, idx), True)(x)


# ---- masked_fill ---------------------------------------------------------------------------


class MaskedFill(Function):
    def __init__(self, mask: Any, value: Any) -> None:
        self.mask = mask
        self.value = value

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        return xp.where(self.mask, xp.asarray(self.value, dtype=x.dtype), x)

    def backward(self, gy: Tensor) -> Tensor:
        return MaskedFill(self.mask, 0)(gy)


def masked_fill(x: Tensor, mask: Any, value: Any) -> Tensor:
    """``x`` with ``value`` where the bool ``mask`` (broadcastable to ``x``) is True; no gradient
    flows to ``x`` there. ``value`` is a number or a 0-d Tensor (which then gets a gradient).
    """
    _check_tensor(x, "masked_fill")
    m = mask.data if isinstance(mask, Tensor) else mask
    if not hasattr(m, "dtype") or m.dtype.kind != "b":
        raise TypeError(f"masked_fill: expected a bool mask, got {getattr(m, 'dtype', type(m).__name__)}")
    m = _index_array(m, x, "masked_fill")
    if broadcast_shapes(tuple(m.shape), x.shape, "masked_fill") != x.shape:
        raise ValueError(
            f"masked_fill: mask of shape {tuple(m.shape)} cannot be broadcast to the tensor's shape {x.shape}"
        )
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
        if not value.requires_grad:
            return MaskedFill(m, value.data)(x)
        filled = Tensor._wrap(m.astype(x.dtype)) * value.to(dtype=x.dtype)
        return MaskedFill(m, 0)(x) + broadcast_to(filled, x.shape)
    return MaskedFill(m, value)(x)
