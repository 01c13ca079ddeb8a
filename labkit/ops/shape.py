"""Shape ops: reshape, transpose, squeeze, concatenate/stack, split/chunk, pad, flip, tile.

Every op here is linear, so each backward is another shape op (often the same one
with inverted arguments) and double backward works without extra code.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from labkit.backends.registry import array_module
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._util import normalize_axis
from labkit.ops.broadcast import sum_to

__all__ = [
    "reshape", "view", "flatten", "transpose", "permute", "swapaxes", "squeeze", "unsqueeze", "concatenate", "cat",
    "stack", "split", "chunk", "flip", "repeat", "tile",
]  # fmt: skip


# ---- argument helpers (index.py uses them too) -------------------------------------


def _pick_axis(axis: Any, dim: Any, default: Any, op: str) -> Any:
    """Resolve the numpy ``axis`` / PyTorch ``dim`` alias pair."""
    if axis is not None and dim is not None:
        raise TypeError(f"{op}: got both axis={axis!r} and dim={dim!r}; pass one of them")
    return default if axis is None and dim is None else (axis if axis is not None else dim)


def _one_axis(axis: Any, ndim: int, op: str) -> int:
    if isinstance(axis, bool) or (not isinstance(axis, int) and not hasattr(axis, "__index__")):
        raise TypeError(f"{op}: expected an int axis, got {axis!r}")
    return normalize_axis(int(axis), ndim, op)[0]


def _ints(args: tuple[Any, ...], op: str) -> tuple[int, ...]:
    """Varargs ``f(x, 2, 3)`` or one sequence ``f(x, (2, 3))`` as a tuple of ints."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    for a in args:
        if isinstance(a, bool) or not hasattr(a, "__index__"):
            raise TypeError(f"{op}: expected ints, got {args!r}")
    return tuple(int(a) for a in args)


def _check_tensor(x: Any, op: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")


# ---- reshape and friends -----------------------------------------------------------


class Reshape(Function):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy: Tensor) -> Tensor:
        return reshape(gy, self.x_shape)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """``x`` with a new shape of the same size; one entry may be -1. Varargs or one tuple."""
    _check_tensor(x, "reshape")
    target = _ints(shape, "reshape")
    size = x.data.size
    if target.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {target}")
    if any(s < -1 for s in target):
        raise ValueError(f"reshape: invalid shape {target}: sizes must be non-negative or -1")
    known = math.prod(s for s in target if s != -1)
    if -1 in target:
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape {x.shape} ({size} elements) into {target}")
        target = tuple(size // known if s == -1 else s for s in target)
    elif known != size:
        raise ValueError(f"reshape: cannot reshape {x.shape} ({size} elements) into {target} ({known} elements)")
    if target == x.shape:
        return x
    return Reshape(target)(x)


def view(x: Tensor, *shape: Any) -> Tensor:
    """Alias of ``reshape`` (labkit does not track memory views)."""
    return reshape(x, *shape)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` (inclusive) into one; a 0-d tensor becomes (1,)."""
    _check_tensor(x, "flatten")
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = _one_axis(start_dim, x.ndim, "flatten"), _one_axis(end_dim, x.ndim, "flatten")
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    shape = x.shape
    return reshape(x, (*shape[:s], math.prod(shape[s : e + 1]), *shape[e + 1 :]))


def squeeze(x: Tensor, axis: int | Sequence[int] | None = None, *, dim: Any = None) -> Tensor:
    """Drop size-1 dimensions: all of them, or the given ones.

    Like numpy (and unlike PyTorch, which ignores it), naming an axis whose size is
    not 1 raises ValueError.
    """
    _check_tensor(x, "squeeze")
    axis = _pick_axis(axis, dim, None, "squeeze")
    if axis is None:
        axes = tuple(i for i, s in enumerate(x.shape) if s == 1)
    else:
        axes = normalize_axis(axis, x.ndim, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(
                    f"squeeze: cannot squeeze axis {a} of size {x.shape[a]} (shape {x.shape}); expected size 1"
                )
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def unsqueeze(x: Tensor, axis: int | None = None, *, dim: Any = None) -> Tensor:
    """Insert a size-1 dimension at ``axis`` (in ``-ndim-1 .. ndim``)."""
    _check_tensor(x, "unsqueeze")
    axis = _pick_axis(axis, dim, None, "unsqueeze")
    if axis is None:
        raise TypeError("unsqueeze: missing the axis (or dim) argument")
    a = _one_axis(axis, x.ndim + 1, "unsqueeze")
    return reshape(x, (*x.shape[:a], 1, *x.shape[a:]))


# ---- axis permutations ---------------------------------------------------------------


class Transpose(Function):
    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def forward(self, x: Any) -> Any:
        return x.transpose(self.axes)

    def backward(self, gy: Tensor) -> Tensor:
        return Transpose(tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__)))(gy)  # inverse permutation


def permute(x: Tensor, *dims: Any) -> Tensor:
    """Reorder the axes: output axis ``i`` is input axis ``dims[i]`` (a full permutation)."""
    _check_tensor(x, "permute")
    axes = _ints(dims, "permute")
    if len(axes) != x.ndim:
        raise ValueError(f"permute: expected {x.ndim} axes for shape {x.shape}, got {axes}")
    norm = tuple(_one_axis(a, x.ndim, "permute") for a in axes)
    if len(set(norm)) != len(norm):
        raise ValueError(f"permute: repeated axis in {axes}")
    if norm == tuple(range(x.ndim)):
        return x
    return Transpose(norm)(x)


def swapaxes(x: Tensor, axis0: int, axis1: int) -> Tensor:
    """Exchange two axes."""
    _check_tensor(x, "swapaxes")
    a, b = _one_axis(axis0, x.ndim, "swapaxes"), _one_axis(axis1, x.ndim, "swapaxes")
    axes = list(range(x.ndim))
    axes[a], axes[b] = b, a
    return permute(x, axes)


def transpose(x: Tensor, *dims: Any, axes: Any = None, dim0: Any = None, dim1: Any = None) -> Tensor:
    """Three conventions in one: no axes reverses them all (numpy, ``x.T``); two ints swap
    those two axes (PyTorch, also for 2-d input); a full permutation (tuple or 3+ ints) permutes.
    """
    _check_tensor(x, "transpose")
    if dim0 is not None or dim1 is not None:
        dims = (dim0, dim1)
    elif axes is not None:
        dims = (axes,)
    if not dims:
        return permute(x, tuple(reversed(range(x.ndim))))
    if len(dims) == 2 and not isinstance(dims[0], (tuple, list)):
        return swapaxes(x, *dims)
    return permute(x, *dims)


# ---- joining and splitting -------------------------------------------------------------


class Concatenate(Function):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        self.sizes = [x.shape[self.axis] for x in xs]
        self.dtypes = [x.dtype for x in xs]
        return array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        gxs = Split(self.sizes, self.axis)(gy)
        return tuple(
            (g if g.dtype == dt else g.to(dtype=dt)) if need else None
            for g, dt, need in zip(gxs, self.dtypes, self.needs_input_grad, strict=True)
        )


def _check_join(tensors: Any, op: str) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of Tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected at least one tensor, got an empty sequence")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: input {i} is a {type(t).__name__}, expected a Tensor")
    return list(tensors)


def concatenate(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis (default 0; `dim=` alias); other dimensions must match."""
    xs = _check_join(tensors, "concatenate")
    ax = _pick_axis(axis, dim, 0, "concatenate")
    first = xs[0]
    if first.ndim == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated; use stack")
    a = _one_axis(ax, first.ndim, "concatenate")
    for i, t in enumerate(xs[1:], 1):
        if t.ndim != first.ndim:
            raise ValueError(
                f"concatenate: input {i} has {t.ndim} dimensions (shape {t.shape}) but input 0 has "
                f"{first.ndim} (shape {first.shape})"
            )
        for d, (p, q) in enumerate(zip(first.shape, t.shape, strict=True)):
            if d != a and p != q:
                raise ValueError(
                    f"concatenate: input {i} has shape {t.shape} but input 0 has {first.shape}; all dimensions "
                    f"except axis {a} must match (dimension {d}: {q} != {p})"
                )
    if len(xs) == 1:
        return xs[0]
    return Concatenate(a)(*xs)


def cat(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """PyTorch's name for ``concatenate``."""
    return concatenate(tensors, _pick_axis(axis, dim, 0, "cat"))


class Stack(Function):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        self.dtypes = [x.dtype for x in xs]
        return array_module(*xs).stack(xs, axis=self.axis)

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        pieces = Split([1] * len(self.dtypes), self.axis)(gy)
        shape = gy.shape[: self.axis] + gy.shape[self.axis + 1 :]
        return tuple(
            (reshape(g, shape) if g.dtype == dt else reshape(g, shape).to(dtype=dt)) if need else None
            for g, dt, need in zip(pieces, self.dtypes, self.needs_input_grad, strict=True)
        )


def stack(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join same-shaped tensors along a new axis (default 0, in ``-ndim-1 .. ndim``; `dim=` alias)."""
    xs = _check_join(tensors, "stack")
    ax = _pick_axis(axis, dim, 0, "stack")
    for i, t in enumerate(xs[1:], 1):
        if t.shape != xs[0].shape:
            raise ValueError(f"stack: input {i} has shape {t.shape}, expected {xs[0].shape} like input 0")
    return Stack(_one_axis(ax, xs[0].ndim + 1, "stack"))(*xs)


class Split(Function):
    def __init__(self, sizes: Sequence[int], axis: int) -> None:
        self.sizes = list(sizes)
        self.axis = axis

    def forward(self, x: Any) -> tuple[Any, ...]:
        # saved only so the engine makes zero gradients of unused pieces on x's device
        self.save_for_backward(x)
        bounds = [0]
        for s in self.sizes:
            bounds.append(bounds[-1] + s)
        lead = (slice(None),) * self.axis
        return tuple(x[(*lead, slice(b, e))] for b, e in itertools.pairwise(bounds))

    def backward(self, *gys: Tensor) -> Tensor:
        return gys[0] if len(gys) == 1 else Concatenate(self.axis)(*gys)


def split(
    x: Tensor, split_size_or_sections: int | Sequence[int], axis: int | None = None, *, dim: int | None = None
) -> tuple[Tensor, ...]:
    """Cut ``x`` along ``axis`` (default 0; PyTorch semantics): an int is the piece size (the last piece
    may be smaller); a list gives every piece's size and must sum to the axis length.
    """
    _check_tensor(x, "split")
    if x.ndim == 0:
        raise ValueError("split: cannot split a zero-dimensional tensor")
    a = _one_axis(_pick_axis(axis, dim, 0, "split"), x.ndim, "split")
    n = x.shape[a]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = _ints(tuple(split_size_or_sections), "split")
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(
                f"split: sections {list(sizes)} must be non-negative and sum to {n} (axis {a} of {x.shape})"
            )
    else:
        (size,) = _ints((split_size_or_sections,), "split")
        if size <= 0:
            raise ValueError(f"split: expected a positive split size, got {size}")
        sizes = (size,) * (n // size) + ((n % size,) if n % size or n == 0 else ())
    return Split(sizes, a)(x)


def chunk(x: Tensor, chunks: int, axis: int | None = None, *, dim: int | None = None) -> tuple[Tensor, ...]:
    """Cut ``x`` into pieces of ``ceil(n / chunks)`` along ``axis`` (PyTorch: may give fewer pieces)."""
    _check_tensor(x, "chunk")
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks <= 0:
        raise ValueError(f"chunk: expected a positive number of chunks, got {chunks!r}")
    if x.ndim == 0:
        raise ValueError("chunk: cannot chunk a zero-dimensional tensor")
    a = _one_axis(_pick_axis(axis, dim, 0, "chunk"), x.ndim, "chunk")
    n = x.shape[a]
    if n == 0:
        return Split([0] * chunks, a)(x)
    return split(x, -(-n // chunks), a)


# ---- flip and tile ---------------------------------------------------------------------


class Flip(Function):
    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def forward(self, x: Any) -> Any:
        return array_module(x).flip(x, axis=self.axes)

    def backward(self, gy: Tensor) -> Tensor:
        return Flip(self.axes)(gy)


def flip(x: Tensor, *dims: Any, axis: Any = None) -> Tensor:
    """Reverse the order of elements along ``dims`` (ints or one tuple); none given: all axes."""
    _check_tensor(x, "flip")
    if axis is not None:
        dims = (axis,)
    axes = normalize_axis(_ints(dims, "flip"), x.ndim, "flip") if dims else tuple(range(x.ndim))
    if not axes:
        return x
    return Flip(axes)(x)


class Tile(Function):
    def __init__(self, reps: tuple[int, ...]) -> None:
        self.reps = reps

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return array_module(x).tile(x, self.reps)

    def backward(self, gy: Tensor) -> Tensor:
        # gy is (r0*s0, r1*s1, ...): view it as (r0, s0, r1, s1, ...) and sum the r axes
        shape = (1,) * (len(self.reps) - len(self.x_shape)) + tuple(self.x_shape)
        interleaved = tuple(v for r, s in zip(self.reps, shape, strict=True) for v in (r, s))
        summed = sum_to(reshape(gy, interleaved), tuple(v for s in shape for v in (1, s)))
        return reshape(summed, self.x_shape)


def tile(x: Tensor, reps: int | Sequence[int]) -> Tensor:
    """numpy's ``tile``: repeat the whole tensor ``reps`` times along each axis; a shorter
    ``reps`` is padded with leading ones, a longer one adds leading axes.
    """
    _check_tensor(x, "tile")
    r = _ints((reps,) if not isinstance(reps, (tuple, list)) else tuple(reps), "tile")
    if any(v < 0 for v in r):
        raise ValueError(f"tile: repetitions must be non-negative, got {r}")
    r = (1,) * (x.ndim - len(r)) + r
    if all(v == 1 for v in r) and len(r) == x.ndim:
        return x
    return Tile(r)(x)


def repeat(x: Tensor, *sizes: Any) -> Tensor:
    """PyTorch's ``Tensor.repeat``: like ``tile``, but ``sizes`` needs at least ``ndim`` entries."""
    _check_tensor(x, "repeat")
    r = _ints(sizes, "repeat")
    if len(r) < x.ndim:
        raise ValueError(f"repeat: got {len(r)} repetitions {r} for a tensor of {x.ndim} dimensions {x.shape}")
    return tile(x, r)
