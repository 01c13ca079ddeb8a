"""The input gradient of a convolution (``ConvGradInput.forward``) as a few large GEMMs.

The built-in computes ``gx = col2im(w^T @ rows)`` with one GEMM per kernel offset (KH * KW
GEMMs of ``(C/G, O/G) @ (O/G, N * OH * WE)``), each added into the padded gradient at once.
Here one GEMM ``(KH * KW * C/G, O/G) @ (O/G, n * OH * WE)`` serves every offset of a chunk of
``n`` images, sized so its result stays in cache while the col2im adds read it back. The
arithmetic is the same (each output is one dot product over O/G); only the GEMM's blocking,
and so the rounding of float sums, may differ from the built-in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from labkit.ops.conv import ConvGradInput

#: bytes of GEMM result per chunk of images: the col2im adds read it back while it is in cache
CHUNK_BYTES = 1 << 20


def conv_grad_input_forward(fn: ConvGradInput, gy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Kernel for ``ConvGradInput``: gy (N, O, *S'), w (O, C/G, *K) -> gx (N, C, *S).

    Saves what the built-in saves: ``(gy if w needs a gradient, w if gy needs one)``.
    """
    geom = fn.geom
    needs = fn.needs_input_grad
    fn.save_for_backward(gy if needs[1] else None, w if needs[0] else None)
    rows = fn.rows if fn.rows is not None else geom.rows(gy)
    fn.rows = None
    return grad_input(geom, w, rows)


def grad_input(geom: Any, w: np.ndarray, rows: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """``w^T @ rows`` followed by col2im, chunked over images: rows (G, O/G, N * OH * WE) -> (N, C, *S).

    ``geom`` is the built-in's ``labkit.ops.conv._Geometry`` (window, groups, array layouts).
    """
    win = geom.window
    g, c, n, o = geom.groups, geom.c, geom.n, geom.o
    c_g, o_g = c // g, o // g
    offsets = win.kh * win.kw
    # (O, C/G, KH, KW) -> (G, KH * KW * C/G, O/G): the rows of one offset are one contiguous block
    w_t = np.ascontiguousarray(geom.as4d(w).reshape(g, o_g, c_g, offsets).transpose(0, 3, 2, 1))
    w_t = w_t.reshape(g, offsets * c_g, o_g)
    buf = np.zeros((c, n, win.hp * win.wp + win.slack), dtype=rows.dtype)
    windows = win.view(buf).reshape(g, c_g, n, win.kh, win.kw, win.oh, win.we)  # (G, C/G, N, KH, KW, OH, WE)
    per_image = win.oh * win.we
    step = max(1, min(n, chunk_bytes // max(1, g * offsets * c_g * per_image * rows.itemsize)))
    for start in range(0, n, step):
        stop = min(n, start + step)
        part = np.matmul(w_t, rows[:, :, start * per_image : stop * per_image])  # (G, KH * KW * C/G, n * OH * WE)
        part = part.reshape(g, win.kh, win.kw, c_g, stop - start, win.oh, win.we)
        for i in range(win.kh):
            for j in range(win.kw):
                windows[:, :, start:stop, i, j] += part[:, i, j]
    gx = np.ascontiguousarray(win.interior(buf))  # (C, N, H, W)
    # laid out (C, N, H, W) like the built-in's result, so the ops upstream see the same layout
    return geom.from4d(gx.transpose(1, 0, 2, 3))
