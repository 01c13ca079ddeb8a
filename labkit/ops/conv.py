"""Convolution: ``conv1d`` and ``conv2d`` with PyTorch's semantics and parameter layouts.

The forward pass is im2col + one GEMM per group: the windows of the padded input are
copied once into columns ``(G, C/G * KH * KW, N * OH * WE)`` (see ``labkit.ops._im2col``)
and multiplied by the weight ``(G, O/G, C/G * KH * KW)``. The result is laid out
(O, N, OH, OW) in memory and returned as an (N, O, OH, OW) view, which saves a copy;
elementwise ops downstream keep that layout. conv1d runs as conv2d with H = 1.

Convolution is bilinear in (input, weight), so its three derivatives are three
Functions that are each other's adjoints, and double backward comes for free:

- ``Conv``            y  = conv(x, w)
- ``ConvGradInput``   gx = conv(., w)^T gy   (per kernel offset a GEMM with w^T, added into gx: col2im)
- ``ConvGradWeight``  gw = conv(x, .)^T gy   (GEMM of gy with the im2col columns of x)
"""

from __future__ import annotations

from typing import Any

from labkit.backends.registry import array_module
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._im2col import Window, int_tuple

__all__ = ["conv1d", "conv2d"]


# ---- geometry shared by the three Functions ---------------------------------------------


class _Geometry:
    """The window, the groups and the array layouts the GEMMs need.

    Columns are laid out (G, C/G * KH * KW, N * OH * WE) and output-shaped gradients
    (G, O/G, N * OH * WE), so the batch sits inside each GEMM instead of looping
    around it. 1-d arrays run as (N, C, 1, L).
    """

    def __init__(
        self, op: str, nd: int, window: Window, groups: int, x_shape: tuple[int, ...], w_shape: tuple[int, ...]
    ) -> None:
        self.op = op
        self.nd = nd
        self.window = window
        self.groups = groups
        self.n, self.c = x_shape[:2]
        self.o = w_shape[0]
        self.w_shape = w_shape

    def as4d(self, a: Any) -> Any:
        return a if self.nd == 2 else a.reshape(a.shape[0], a.shape[1], 1, a.shape[2])

    def from4d(self, a: Any) -> Any:
        return a if self.nd == 2 else a.reshape(a.shape[0], a.shape[1], a.shape[3])

    def weight3d(self, w: Any) -> Any:
        """(O, C/G, *K) -> (G, O/G, C/G * KH * KW)."""
        return w.reshape(self.groups, self.o // self.groups, -1)

    def columns(self, x: Any) -> Any:
        """im2col: x (N, C, *S) -> (G, C/G * KH * KW, N * OH * WE)."""
        xp = array_module(x)
        win = self.window
        buf = win.pad(self.as4d(x).transpose(1, 0, 2, 3))  # (C, N, Hp * Wp + slack)
        cols = xp.ascontiguousarray(win.view(buf).transpose(0, 2, 3, 1, 4, 5))  # (C, KH, KW, N, OH, WE)
        return cols.reshape(self.groups, -1, self.n * win.oh * win.we)

    def grad_input(self, w: Any, rows: Any) -> Any:
        """``w^T @ rows`` followed by col2im: (G, O/G, N * OH * WE) -> (N, C, *S).

        One GEMM per kernel offset, each added straight into its strided window of the
        padded gradient, so the (C * KH * KW, N * OH * WE) column matrix never exists.
        """
        xp = array_module(rows)
        win = self.window
        g, c, n = self.groups, self.c, self.n
        buf = xp.zeros((c, n, win.hp * win.wp + win.slack), dtype=rows.dtype)
        windows = win.view(buf)  # (C, N, KH, KW, OH, WE)
        w5 = self.as4d(w).reshape(g, self.o // g, c // g, win.kh, win.kw)
        part = xp.empty((g, c // g, rows.shape[-1]), dtype=rows.dtype)
        for i in range(win.kh):
            for j in range(win.kw):
                xp.matmul(w5[:, :, :, i, j].transpose(0, 2, 1), rows, out=part)  # (G, C/G, N * OH * WE)
                windows[:, :, i, j] += part.reshape(c, n, win.oh, win.we)
        gx = xp.ascontiguousarray(win.interior(buf))  # (C, N, H, W)
        # laid out (C, N, H, W) like conv2d's outputs, so the ops upstream see one layout
        return self.from4d(gx.transpose(1, 0, 2, 3))

    def rows(self, gy: Any) -> Any:
        """An output-shaped gradient (N, O, *S') -> (G, O/G, N * OH * WE), garbage columns zeroed."""
        xp = array_module(gy)
        win = self.window
        shape = (self.o, self.n, win.oh, win.we)
        out = xp.zeros(shape, dtype=gy.dtype) if win.we != win.ow else xp.empty(shape, dtype=gy.dtype)
        out[..., : win.ow] = self.as4d(gy).transpose(1, 0, 2, 3)
        return out.reshape(self.groups, self.o // self.groups, -1)

    def output(self, y: Any) -> Any:
        """GEMM result (G, O/G, N * OH * WE) -> (N, O, *S'): a view without the garbage columns."""
        win = self.window
        y = y.reshape(self.o, self.n, win.oh, win.we)[..., : win.ow]
        return self.from4d(y.transpose(1, 0, 2, 3))


# ---- the Functions -------------------------------------------------------------------------


class Conv(Function):
    """``y = conv(x, w) + b``: x (N, C, *S), w (O, C/G, *K), b (O,) -> y (N, O, *S')."""

    def __init__(self, geom: _Geometry) -> None:
        self.geom = geom
        self.op_name = geom.op  # type: ignore[misc]  # conv1d or conv2d in messages

    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        geom = self.geom
        xp = array_module(x)
        cols = geom.columns(x)
        y = xp.matmul(geom.weight3d(w), cols)  # (G, O/G, N * OH * WE)
        if b is not None:
            y += b.reshape(geom.groups, -1, 1)
        needs = self.needs_input_grad
        # the columns are kept for the weight gradient, so backward does not redo im2col
        self.save_for_backward(x if needs[1] else None, w if needs[0] else None, cols if needs[1] else None)
        return geom.output(y)

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        x, w, cols = self.saved_tensors
        needs = self.needs_input_grad
        rows = self.geom.rows(gy.data) if needs[0] or needs[1] else None
        gx = ConvGradInput(self.geom, rows)(gy, w) if needs[0] else None
        gw = ConvGradWeight(self.geom, cols.data if cols is not None else None, rows)(x, gy) if needs[1] else None
        if len(needs) == 2:
            return gx, gw
        return gx, gw, (_BiasGrad()(gy) if needs[2] else None)


class ConvGradInput(Function):
    """``gx = conv(., w)^T gy``: gy (N, O, *S'), w (O, C/G, *K) -> gx (N, C, *S).

    ``rows`` is ``geom.rows(gy)`` when the caller has it already.
    """

    def __init__(self, geom: _Geometry, rows: Any = None) -> None:
        self.geom = geom
        self.rows = rows
        self.op_name = geom.op + "_grad_input"  # type: ignore[misc]

    def forward(self, gy: Any, w: Any) -> Any:
        geom = self.geom
        needs = self.needs_input_grad
        self.save_for_backward(gy if needs[1] else None, w if needs[0] else None)
        rows = self.rows if self.rows is not None else geom.rows(gy)
        self.rows = None
        return geom.grad_input(w, rows)

    def backward(self, ggx: Tensor) -> tuple[Tensor | None, Tensor | None]:
        gy, w = self.saved_tensors
        needs = self.needs_input_grad
        return (
            Conv(self.geom)(ggx, w) if needs[0] else None,
            ConvGradWeight(self.geom)(ggx, gy) if needs[1] else None,
        )


class ConvGradWeight(Function):
    """``gw = conv(x, .)^T gy``: x (N, C, *S), gy (N, O, *S') -> gw (O, C/G, *K).

    ``cols`` and ``rows`` are ``geom.columns(x)`` and ``geom.rows(gy)`` when the caller has them.
    """

    def __init__(self, geom: _Geometry, cols: Any = None, rows: Any = None) -> None:
        self.geom = geom
        self.cols = cols
        self.rows = rows
        self.op_name = geom.op + "_grad_weight"  # type: ignore[misc]

    def forward(self, x: Any, gy: Any) -> Any:
        geom = self.geom
        xp = array_module(gy)
        needs = self.needs_input_grad
        self.save_for_backward(x if needs[1] else None, gy if needs[0] else None)
        cols = self.cols if self.cols is not None else geom.columns(x)
        rows = self.rows if self.rows is not None else geom.rows(gy)
        self.cols = self.rows = None
        gw = xp.matmul(rows, cols.transpose(0, 2, 1))  # (G, O/G, C/G * KH * KW)
        return gw.reshape(geom.w_shape)

    def backward(self, ggw: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, gy = self.saved_tensors
        needs = self.needs_input_grad
        return (
            ConvGradInput(self.geom)(gy, ggw) if needs[0] else None,
            Conv(self.geom)(x, ggw) if needs[1] else None,
        )


class _BiasGrad(Function):
    """The bias gradient: (N, O, *S) summed to (O,)."""

    op_name = "conv_bias_grad"

    def forward(self, gy: Any) -> Any:
        self.shape = gy.shape
        return gy.sum(axis=0).reshape(gy.shape[1], -1).sum(axis=1)

    def backward(self, ggb: Tensor) -> Tensor:
        return _BiasBroadcast(self.shape)(ggb)


class _BiasBroadcast(Function):
    """(O,) broadcast along axis 1 of ``shape`` (N, O, *S); the adjoint of ``_BiasGrad``."""

    op_name = "conv_bias_broadcast"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, b: Any) -> Any:
        xp = array_module(b)
        return xp.broadcast_to(b.reshape((1, -1) + (1,) * (len(self.shape) - 2)), self.shape).copy()

    def backward(self, gy: Tensor) -> Tensor:
        return _BiasGrad()(gy)


# ---- argument checks ---------------------------------------------------------------------


def _pads(
    padding: Any, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...], op: str
) -> list[int]:
    """(before, after) per spatial dim, flattened; 'same' pads like PyTorch (the odd pixel after)."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * (2 * nd)
        if padding != "same":
            raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return pads
    p = int_tuple(padding, nd, "padding", op, 0)
    return [v for q in p for v in (q, q)]


def _check_tensor(t: Any, name: str, op: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float tensor, got {t.dtype}")


def _conv(
    op: str,
    nd: int,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> Tensor:
    letters = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    _check_tensor(x, "input", op)
    _check_tensor(weight, "weight", op)
    if x.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-d input {letters}, got shape {x.shape}")
    if weight.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-d weight (O, C/groups{', K' * nd}), got shape {weight.shape}")
    if weight.dtype != x.dtype:
        raise TypeError(f"{op}: input is {x.dtype} but weight is {weight.dtype}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    c, o = x.shape[1], weight.shape[0]
    if c % groups or o % groups:
        raise ValueError(f"{op}: groups={groups} must divide input channels {c} and output channels {o}")
    if c != weight.shape[1] * groups:
        raise ValueError(
            f"{op}: input has {c} channels, weight expects {weight.shape[1] * groups} (groups={groups}); "
            f"input {x.shape}, weight {weight.shape}"
        )
    if bias is not None:
        _check_tensor(bias, "bias", op)
        if bias.shape != (o,):
            raise ValueError(f"{op}: bias must have shape ({o},) for weight {weight.shape}, got {bias.shape}")
        if bias.dtype != x.dtype:
            raise TypeError(f"{op}: input is {x.dtype} but bias is {bias.dtype}")
    kernel = tuple(weight.shape[2:])
    strides = int_tuple(stride, nd, "stride", op, 1)
    dilations = int_tuple(dilation, nd, "dilation", op, 1)
    pads = _pads(padding, kernel, strides, dilations, op)
    spatial = tuple(x.shape[2:])
    padded = tuple(s + pads[2 * i] + pads[2 * i + 1] for i, s in enumerate(spatial))
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilations))
    if any(r > p for r, p in zip(reach, padded)):
        raise ValueError(
            f"{op}: kernel {kernel} (dilated extent {reach}) is larger than the padded input {padded}; "
            f"input {x.shape}, weight {weight.shape}"
        )
    if nd == 1:
        window = Window((1, spatial[0]), (1, kernel[0]), (1, strides[0]), (1, dilations[0]), (0, 0, pads[0], pads[1]))
    else:
        window = Window(spatial, kernel, strides, dilations, (pads[0], pads[1], pads[2], pads[3]))  # type: ignore[arg-type]
    fn = Conv(_Geometry(op, nd, window, groups, x.shape, weight.shape))
    return fn(x, weight) if bias is None else fn(x, weight, bias)


# ---- public functions --------------------------------------------------------------------


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """2-d cross-correlation: x (N, C, H, W), weight (O, C/groups, KH, KW), bias (O,) -> (N, O, OH, OW).

    ``padding`` is an int, a pair, ``"valid"`` (none) or ``"same"`` (output size = input size, stride 1).
    """
    return _conv("conv2d", 2, x, weight, bias, stride, padding, dilation, groups)


def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> Tensor:
    """1-d cross-correlation: x (N, C, L), weight (O, C/groups, K), bias (O,) -> (N, O, OL)."""
    return _conv("conv1d", 1, x, weight, bias, stride, padding, dilation, groups)
