"""Sliding windows over (A, B, H, W) arrays, shared by convolution and pooling.

``Window`` holds the geometry of one 2-d sliding window (kernel, stride, dilation,
padding). The input is copied once into a padded buffer of shape
``(A, B, Hp * Wp + slack)``, where (A, B) are any two leading axes (convolution
uses (C, N), pooling (N, C)); ``Window.view`` is then a strided view of that buffer
of shape ``(A, B, KH, KW, OH, WE)`` (no copy) whose copy is the im2col matrix, and
``Window.offset_slices`` gives one kernel offset of every window as basic slices.

With stride 1 the view uses ``WE = Wp`` output columns instead of ``OW``: the last
``Wp - OW`` columns of each row are garbage, but a window row and the next one
are then one flat, evenly strided run of ``OH * Wp`` elements, so the im2col copy
and the col2im scatter run over long contiguous rows instead of rows of ``OW``.
Callers zero the garbage columns of gradients and drop them from outputs; the
``slack`` elements at the end keep the garbage reads in bounds. Pooling reduces
instead of multiplying and does not use the wide layout (``garbage=False``).
One body serves numpy and cupy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.backends.registry import array_module


class Window:
    """Geometry of a 2-d sliding window over inputs of spatial size (H, W).

    ``pads`` is ``(top, bottom, left, right)``. ``garbage=True`` allows the wide
    stride-1 layout described in the module docstring.
    """

    def __init__(
        self,
        hw: tuple[int, int],
        kernel: tuple[int, int],
        stride: tuple[int, int],
        dilation: tuple[int, int],
        pads: tuple[int, int, int, int],
        garbage: bool = True,
    ) -> None:
        self.h, self.w = hw
        self.kh, self.kw = kernel
        self.sh, self.sw = stride
        self.dh, self.dw = dilation
        self.pads = pads
        pt, pb, pl, pr = pads
        self.hp, self.wp = self.h + pt + pb, self.w + pl + pr
        self.oh = (self.hp - self.dh * (self.kh - 1) - 1) // self.sh + 1
        self.ow = (self.wp - self.dw * (self.kw - 1) - 1) // self.sw + 1
        wide = garbage and self.sh == 1 and self.sw == 1 and self.ow < self.wp
        self.we = self.wp if wide else self.ow
        # the wide layout reads up to (KW - 1) * dw elements past the last padded row
        self.slack = self.dw * (self.kw - 1) if wide else 0

    def pad(self, x: Any, value: float = 0.0) -> Any:
        """``x`` (A, B, H, W) copied into a flat padded buffer (A, B, Hp * Wp + slack)."""
        xp = array_module(x)
        a, b = x.shape[:2]
        shape = (a, b, self.hp * self.wp + self.slack)
        buf = xp.zeros(shape, dtype=x.dtype) if value == 0 else xp.full(shape, value, dtype=x.dtype)
        self.interior(buf)[...] = x
        return buf

    def grid(self, buf: Any) -> Any:
        """A padded buffer as (A, B, Hp, Wp) (always a view: ``pad`` writes through it)."""
        xp = array_module(buf)
        s0, s1, item = buf.strides[0], buf.strides[1], buf.itemsize
        return xp.lib.stride_tricks.as_strided(
            buf, (buf.shape[0], buf.shape[1], self.hp, self.wp), (s0, s1, self.wp * item, item)
        )

    def interior(self, buf: Any) -> Any:
        """The (A, B, H, W) part of a padded buffer that holds the input (a view)."""
        pt, _, pl, _ = self.pads
        return self.grid(buf)[:, :, pt : pt + self.h, pl : pl + self.w]

    def offset_slices(self, i: int, j: int) -> tuple[slice, slice]:
        """Slices of a padded (.., Hp, Wp) grid that give kernel offset (i, j) of every window."""
        top, left = i * self.dh, j * self.dw
        return (
            slice(top, top + self.sh * (self.oh - 1) + 1, self.sh),
            slice(left, left + self.sw * (self.ow - 1) + 1, self.sw),
        )

    def view(self, buf: Any) -> Any:
        """The windows of a padded buffer as a strided view (A, B, KH, KW, OH, WE)."""
        xp = array_module(buf)
        a, b = buf.shape[:2]
        s0, s1, item = buf.strides[0], buf.strides[1], buf.itemsize
        return xp.lib.stride_tricks.as_strided(
            buf,
            (a, b, self.kh, self.kw, self.oh, self.we),
            (s0, s1, self.dh * self.wp * item, self.dw * item, self.sh * self.wp * item, self.sw * item),
        )


def int_tuple(value: Any, nd: int, name: str, op: str, low: int) -> tuple[int, ...]:
    """An int or a sequence of ``nd`` ints (each >= ``low``) as a tuple; errors name the op."""

    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

    items = (value,) * nd if is_int(value) else value
    if not isinstance(items, (tuple, list)) or len(items) != nd or not all(is_int(v) for v in items):
        raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    if any(v < low for v in items):
        raise ValueError(f"{op}: {name} must be >= {low}, got {value!r}")
    return tuple(int(v) for v in items)
