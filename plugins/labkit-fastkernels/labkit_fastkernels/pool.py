"""Max pooling (``MaxPool2d.forward``) with the strided windows gathered into contiguous arrays first.

The built-in pools separably: a running maximum over the KW column views of each window row,
then over the KH row views. With a horizontal stride above 1 (every non-overlapping pool) the
column views are strided, and numpy's comparison and maximum loops over strided operands are
several times slower than over contiguous ones, while a strided *copy* is cheap. So each
column view is copied once into a contiguous array (in the input's memory order) and the
column stage runs on those. The row stage, the indices and what is saved are the built-in's:
``(i_idx, j_idx)`` as uint8 argmax indices (first maximum wins; a NaN never wins a comparison),
plus ``x_shape`` and ``layout`` on the Function for its backward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from labkit.ops.pool import MaxPool2d


def max_pool2d_forward(fn: MaxPool2d, x: np.ndarray) -> np.ndarray:
    """Kernel for ``MaxPool2d``: x (N, C, H, W) -> y (N, C, OH, OW); falls back to the built-in
    forward when the column views are contiguous already (horizontal stride 1)."""
    win = fn.win
    if win.sw == 1 or win.kw == 1:
        return type(fn).forward(fn, x)
    grid = win.grid(win.pad(x, float("-inf"))) if any(win.pads) else x  # (N, C, Hp, Wp)
    track = fn.needs_input_grad[0]
    columns = [_contiguous(grid[:, :, :, win.offset_slices(0, j)[1]]) for j in range(win.kw)]  # KW x (N, C, Hp, OW)
    m, j_idx = _running_max(columns, track)
    y, i_idx = _running_max([m[:, :, win.offset_slices(i, 0)[0]] for i in range(win.kh)], track)
    fn.x_shape = x.shape
    fn.layout = _layout(grid)
    fn.save_for_backward(i_idx, j_idx)
    return y


def _contiguous(view: np.ndarray) -> np.ndarray:
    """A contiguous copy of ``view`` with its axes in the same memory order (one strided read)."""
    out = np.empty_like(view, order="K")
    np.copyto(out, view)
    return out


def _running_max(arrays: list[np.ndarray], track: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Elementwise maximum of same-shaped arrays and (if ``track``) the index of the first maximum.

    The built-in's rule, so the indices are identical: a later array wins only where it is
    strictly greater; the index is uint8 (the bool view for two arrays) below 256 arrays.
    ``arrays[0]`` is overwritten when it is one of our copies (the column stage); row views of
    ``m`` are only read, the maximum going to a new array.
    """
    m, idx = arrays[0], None
    for k in range(1, len(arrays)):
        a = arrays[k]
        if track:
            better = a > m
            if idx is None:
                idx = better.view(np.uint8) if len(arrays) < 256 else better.astype(np.int32)
            else:
                np.maximum(idx, better.astype(idx.dtype) * k, out=idx)
        m = np.maximum(m, a) if k == 1 and not m.flags.owndata else np.maximum(m, a, out=m)
    return m, idx


def _layout(a: np.ndarray) -> tuple[int, ...]:
    """The axes of ``a`` from the largest stride to the smallest (the built-in's memory-order key)."""
    return tuple(sorted(range(a.ndim), key=lambda k: -a.strides[k]))
