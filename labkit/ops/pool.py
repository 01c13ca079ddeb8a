"""Pooling over (N, C, H, W): ``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``.

Max and average pooling are separable: reduce along each window row (a loop over
the KW column offsets), then across the rows (a loop over the KH row offsets).
Each offset is one strided slice covering every window at once, so the work is a
few whole-array ops per offset, and the first stage runs over long strided rows.
Results and gradients keep the input's memory layout, so an input laid out
(C, N, H, W) in memory, as conv2d's output is, needs no transposing copy.

Each op's gradient is a Function whose own backward is the op again (average
pooling and its scatter are adjoint linear maps; max pooling's scatter to the argmax
and the gather from it likewise), so double backward works.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.backends.registry import array_module
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._im2col import Window, int_tuple

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]


def _padded(x: Any, win: Window, value: float) -> Any:
    """The input as a padded (N, C, Hp, Wp) grid: ``x`` itself when there is no padding."""
    return win.grid(win.pad(x, value)) if any(win.pads) else x


def _interior(xp: Any, grid: Any, win: Window) -> Any:
    """The unpadded (N, C, H, W) part of a padded gradient grid (the grid itself without padding)."""
    if not any(win.pads):
        return grid
    pt, _, pl, _ = win.pads
    return xp.ascontiguousarray(grid[:, :, pt : pt + win.h, pl : pl + win.w])


def _row_slices(win: Window) -> list[slice]:
    return [win.offset_slices(i, 0)[0] for i in range(win.kh)]


def _col_slices(win: Window) -> list[slice]:
    return [win.offset_slices(0, j)[1] for j in range(win.kw)]


# ---- max pooling -------------------------------------------------------------------------


class MaxPool2d(Function):
    """x (N, C, H, W) -> y (N, C, OH, OW), the maximum of each window (padding counts as -inf).

    The max is separable: first along each window row, (N, C, Hp, OW) with argmax
    ``j_idx``, then across the rows, (N, C, OH, OW) with argmax ``i_idx``. Row slices
    of a contiguous input are one long strided run, so the first stage is cheap.
    """

    op_name = "max_pool2d"

    def __init__(self, win: Window) -> None:
        self.win = win

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        win = self.win
        grid = _padded(x, win, float("-inf"))
        track = self.needs_input_grad[0]
        m, j_idx = _running_max(xp, [grid[:, :, :, c] for c in _col_slices(win)], track)
        y, i_idx = _running_max(xp, [m[:, :, r] for r in _row_slices(win)], track)
        if win.kh * win.kw == 1:
            y = y.copy(order="K")
        self.x_shape = x.shape
        self.layout = _layout(grid)
        self.save_for_backward(i_idx, j_idx)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        i_idx, j_idx = (t.data if t is not None else None for t in self.saved_tensors)
        return _MaxPoolScatter(self.win, i_idx, j_idx, self.x_shape, self.layout)(gy)


def _running_max(xp: Any, views: list[Any], track: bool) -> tuple[Any, Any]:
    """Elementwise max of same-shaped views and (if ``track``) the index of the first maximum."""
    m, idx = views[0], None
    for k in range(1, len(views)):
        v = views[k]
        if track:
            better = v > m  # strictly greater: ties keep the first maximum, as PyTorch does
            if idx is None:
                idx = better.view(xp.uint8) if len(views) < 256 else better.astype(xp.int32)
            else:
                # k exceeds every earlier index, so "set to k where better" is a maximum
                xp.maximum(idx, better.astype(idx.dtype) * k, out=idx)
        m = xp.maximum(m, v) if k == 1 else xp.maximum(m, v, out=m)
    return m, idx


def _layout(a: Any) -> tuple[int, ...]:
    """The axes of ``a`` from the largest stride to the smallest (its memory order)."""
    return tuple(sorted(range(a.ndim), key=lambda k: -a.strides[k]))


def _zeros(xp: Any, shape: tuple[int, ...], dtype: Any, layout: tuple[int, ...]) -> Any:
    """Zeros of ``shape`` laid out in memory in the axis order ``layout``."""
    buf = xp.zeros(tuple(shape[k] for k in layout), dtype=dtype)
    return buf.transpose(tuple(int(k) for k in np.argsort(layout)))


def _scatter(xp: Any, views: list[Any], g: Any, idx: Any, disjoint: bool, long_rows: bool) -> None:
    """Add ``g`` into ``views[idx]`` elementwise (views of one zeroed buffer).

    Multiplying by the 0/1 mask is several times faster in numpy than ``copyto(where=)``
    or ``where``; the price is that an inf or NaN gradient also lands off the argmax.
    Views with short rows (row slices) are faster to assign a product to than to pass
    as ``out=``; views with long rows (column slices) the other way round.
    """
    if idx is None:
        views[0][...] = g
        return
    for k, v in enumerate(views):
        if not disjoint:
            v += g * (idx == k)
        elif long_rows:
            xp.multiply(g, idx == k, out=v)
        else:
            v[...] = g * (idx == k)


def _gather(xp: Any, views: list[Any], idx: Any) -> Any:
    """``views[idx]`` elementwise (the adjoint of ``_scatter``)."""
    out = views[0].copy(order="K")
    for k in range(1, len(views)):
        xp.copyto(out, views[k], where=idx == k)
    return out


class _MaxPoolScatter(Function):
    """gy (N, C, OH, OW) -> gx (N, C, H, W): each gradient added at its window's first maximum."""

    op_name = "max_pool2d_backward"

    def __init__(self, win: Window, i_idx: Any, j_idx: Any, x_shape: tuple[int, ...], layout: tuple[int, ...]) -> None:
        self.win = win
        self.i_idx = i_idx
        self.j_idx = j_idx
        self.x_shape = x_shape
        self.layout = layout

    def forward(self, gy: Any) -> Any:
        xp = array_module(gy)
        win = self.win
        n, c = self.x_shape[:2]
        if _layout(gy) != self.layout:
            # one copy into the input's memory order beats mixing orders in every pass below
            gy = _zeros(xp, gy.shape, gy.dtype, self.layout) + gy
        g1 = _zeros(xp, (n, c, win.hp, win.ow), gy.dtype, self.layout)
        rows = [g1[:, :, r] for r in _row_slices(win)]
        _scatter(xp, rows, gy, self.i_idx, win.sh >= win.dh * (win.kh - 1) + 1, long_rows=False)
        gx = _zeros(xp, (n, c, win.hp, win.wp), gy.dtype, self.layout)
        cols = [gx[:, :, :, c] for c in _col_slices(win)]
        _scatter(xp, cols, g1, self.j_idx, win.sw >= win.dw * (win.kw - 1) + 1, long_rows=True)
        return _interior(xp, gx, win)

    def backward(self, ggx: Tensor) -> Tensor:
        return _MaxPoolGather(self)(ggx)


class _MaxPoolGather(Function):
    """gx (N, C, H, W) -> (N, C, OH, OW): the value at each window's first maximum (adjoint of the scatter)."""

    op_name = "max_pool2d_backward_backward"

    def __init__(self, scatter: _MaxPoolScatter) -> None:
        self.scatter = scatter

    def forward(self, g: Any) -> Any:
        xp = array_module(g)
        sc = self.scatter
        grid = _padded(g, sc.win, 0.0)
        g1 = _gather(xp, [grid[:, :, :, c] for c in _col_slices(sc.win)], sc.j_idx)
        return _gather(xp, [g1[:, :, r] for r in _row_slices(sc.win)], sc.i_idx)

    def backward(self, gy: Tensor) -> Tensor:
        sc = self.scatter
        return _MaxPoolScatter(sc.win, sc.i_idx, sc.j_idx, sc.x_shape, sc.layout)(gy)


# ---- average pooling ---------------------------------------------------------------------


def _divisor(win: Window, count_include_pad: bool, xp: Any, dtype: Any) -> Any:
    """Window sizes: an int, or (OH, OW) counts of non-padding elements."""
    if count_include_pad or not any(win.pads):
        return win.kh * win.kw
    pt, _, pl, _ = win.pads

    def counts(n_out: int, stride: int, pad: int, k: int, size: int) -> np.ndarray:
        start = np.arange(n_out) * stride - pad
        return np.minimum(start + k, size) - np.maximum(start, 0)

    ch = counts(win.oh, win.sh, pt, win.kh, win.h)
    cw = counts(win.ow, win.sw, pl, win.kw, win.w)
    return xp.asarray(np.outer(ch, cw).astype(dtype))


class AvgPool2d(Function):
    """x (N, C, H, W) -> y (N, C, OH, OW), the mean of each window (padding counts as 0).

    Separable like ``MaxPool2d``: sums along window rows, then across rows.
    """

    op_name = "avg_pool2d"

    def __init__(self, win: Window, count_include_pad: bool) -> None:
        self.win = win
        self.count_include_pad = count_include_pad

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        win = self.win
        grid = _padded(x, win, 0.0)
        m = _sum(xp, [grid[:, :, :, c] for c in _col_slices(win)])  # (N, C, Hp, OW)
        y = _sum(xp, [m[:, :, r] for r in _row_slices(win)])
        if win.kh == 1:  # y is a view of m (or of the input): make it its own array
            y = y.copy(order="K")
        y /= _divisor(win, self.count_include_pad, xp, x.dtype)
        self.x_shape = x.shape
        self.layout = _layout(grid)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        return _AvgPoolScatter(self.win, self.count_include_pad, self.x_shape, self.layout)(gy)


def _sum(xp: Any, views: list[Any]) -> Any:
    """Elementwise sum of same-shaped views (the first view itself when there is one)."""
    if len(views) == 1:
        return views[0]
    out = xp.add(views[0], views[1])
    for v in views[2:]:
        out += v
    return out


def _spread(views: list[Any], g: Any, disjoint: bool) -> None:
    """Add ``g`` into every view (views of one zeroed buffer); the adjoint of ``_sum``."""
    for v in views:
        if disjoint:
            v[...] = g
        else:
            v += g


class _AvgPoolScatter(Function):
    """gy (N, C, OH, OW) -> gx (N, C, H, W): each gradient spread evenly over its window."""

    op_name = "avg_pool2d_backward"

    def __init__(self, win: Window, count_include_pad: bool, x_shape: tuple[int, ...], layout: tuple[int, ...]) -> None:
        self.win = win
        self.count_include_pad = count_include_pad
        self.x_shape = x_shape
        self.layout = layout

    def forward(self, gy: Any) -> Any:
        xp = array_module(gy)
        win = self.win
        g = gy / _divisor(win, self.count_include_pad, xp, gy.dtype)
        n, c = self.x_shape[:2]
        g1 = _zeros(xp, (n, c, win.hp, win.ow), gy.dtype, self.layout)
        _spread([g1[:, :, r] for r in _row_slices(win)], g, win.sh >= win.kh)
        gx = _zeros(xp, (n, c, win.hp, win.wp), gy.dtype, self.layout)
        _spread([gx[:, :, :, c] for c in _col_slices(win)], g1, win.sw >= win.kw)
        return _interior(xp, gx, win)

    def backward(self, ggx: Tensor) -> Tensor:
        return AvgPool2d(self.win, self.count_include_pad)(ggx)


# ---- adaptive average pooling ------------------------------------------------------------


def _adaptive_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) averaging rows over PyTorch's adaptive bins [floor(i*n/m), ceil((i+1)*n/m))."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


class _Separable(Function):
    """x (N, C, H, W) -> a @ x @ b.T (N, C, OH, OW) for fixed a (OH, H), b (OW, W)."""

    op_name = "adaptive_avg_pool2d"

    def __init__(self, a: Any, b: Any) -> None:
        self.a = a
        self.b = b

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        n, c, h, w = x.shape
        t = (xp.ascontiguousarray(x).reshape(-1, w) @ self.b.T).reshape(n, c, h, -1)  # (N, C, H, OW)
        return xp.matmul(self.a, t)

    def backward(self, gy: Tensor) -> Tensor:
        return _Separable(self.a.T, self.b.T)(gy)


# ---- argument checks and public functions ------------------------------------------------


def _window(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> Window:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-d input (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float tensor, got {x.dtype}")
    kernel = int_tuple(kernel_size, 2, "kernel_size", op, 1)
    strides = kernel if stride is None or stride == () or stride == [] else int_tuple(stride, 2, "stride", op, 1)
    pads = int_tuple(padding, 2, "padding", op, 0)
    dilations = int_tuple(dilation, 2, "dilation", op, 1)
    for k, p, d in zip(kernel, pads, dilations):
        if p > (d * (k - 1) + 1) // 2:
            raise ValueError(f"{op}: padding {pads} must be at most half the (dilated) kernel {kernel}")
    win = Window(tuple(x.shape[2:]), kernel, strides, dilations, (pads[0], pads[0], pads[1], pads[1]), garbage=False)  # type: ignore[arg-type]
    if win.oh < 1 or win.ow < 1:
        raise ValueError(
            f"{op}: kernel {kernel} (dilation {dilations}) does not fit the padded input "
            f"{(win.hp, win.wp)}; input {x.shape}"
        )
    return win


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> Tensor:
    """Max over windows: x (N, C, H, W) -> (N, C, OH, OW); ``stride`` defaults to ``kernel_size``.

    Padding is -inf (at most half the kernel); the gradient goes to the first maximum of each window.
    """
    return MaxPool2d(_window("max_pool2d", x, kernel_size, stride, padding, dilation))(x)


def avg_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over windows: x (N, C, H, W) -> (N, C, OH, OW); ``stride`` defaults to ``kernel_size``.

    Padding is 0; ``count_include_pad=False`` divides by the number of real elements instead.
    """
    win = _window("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2d(win, bool(count_include_pad))(x)


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Mean over PyTorch's adaptive bins: x (N, C, H, W) -> (N, C, *output_size); None keeps a size."""
    op = "adaptive_avg_pool2d"
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-d input (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float tensor, got {x.dtype}")
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2 or not all(s is None or (isinstance(s, int) and not isinstance(s, bool)) for s in sizes):
        raise TypeError(f"{op}: output_size must be an int or a pair of ints (or None), got {output_size!r}")
    oh, ow = (x.shape[2 + i] if s is None else s for i, s in enumerate(sizes))
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    xp = array_module(x.data)
    a = xp.asarray(_adaptive_matrix(x.shape[2], oh).astype(x.dtype))
    b = xp.asarray(_adaptive_matrix(x.shape[3], ow).astype(x.dtype))
    return _Separable(a, b)(x)
