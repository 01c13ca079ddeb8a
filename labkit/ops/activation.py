"""Activations: tanh, sigmoid, relu, leaky_relu, elu, gelu, silu, softplus, softmax, log_softmax.

All are elementwise (same shape out as in) except softmax/log_softmax, which
normalise along one axis. Forwards are written to stay finite for large |x|;
backwards use labkit ops on saved inputs/outputs, so double backward works.
"""

from __future__ import annotations

import math as _math
from typing import Any

from labkit.backends.registry import array_module
from labkit.core import dtypes
from labkit.core.function import Function
from labkit.core.tensor import Tensor
from labkit.ops._util import normalize_axis
from labkit.ops.math import exp, where
from labkit.ops.reduce import sum as _sum

__all__ = ["erf", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "softmax", "log_softmax"]


def _floating(x: Any, op: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x if x.data.dtype.kind == "f" else x.to(dtype=dtypes.default_float)


# ---- tanh, sigmoid ----------------------------------------------------------------------


class Tanh(Function):
    def forward(self, x: Any) -> Any:
        y = array_module(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        return TanhGrad()(self.saved_tensors[0], gy)


class TanhGrad(Function):
    """``gy * (1 - y^2)`` in one pass (tanh's backward), itself differentiable."""

    op_name = "tanh_grad"

    def forward(self, y: Any, gy: Any) -> Any:
        self.save_for_backward(y, gy)
        return gy * (1 - y * y)

    def backward(self, g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        y, gy = self.saved_tensors
        n_y, n_gy = self.needs_input_grad
        return (g * gy * y * -2.0 if n_y else None, g * (1.0 - y * y) if n_gy else None)


def _sigmoid_array(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` without overflow: exp of a non-positive number only."""
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    r = 1 / (1 + e)
    return xp.where(x >= 0, r, e * r)


class Sigmoid(Function):
    def forward(self, x: Any) -> Any:
        y = _sigmoid_array(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        return SigmoidGrad()(self.saved_tensors[0], gy)


class SigmoidGrad(Function):
    """``gy * y * (1 - y)`` in one pass (sigmoid's backward), itself differentiable."""

    op_name = "sigmoid_grad"

    def forward(self, y: Any, gy: Any) -> Any:
        self.save_for_backward(y, gy)
        return gy * y * (1 - y)

    def backward(self, g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        y, gy = self.saved_tensors
        n_y, n_gy = self.needs_input_grad
        return (g * gy * (1.0 - y * 2.0) if n_y else None, g * y * (1.0 - y) if n_gy else None)


def tanh(x: Tensor) -> Tensor:
    return Tanh()(_floating(x, "tanh"))


def sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``, finite and exact at both tails (sigmoid(-1000) = 0, not NaN)."""
    return Sigmoid()(_floating(x, "sigmoid"))


# ---- relu family ------------------------------------------------------------------------


class ReLU(Function):
    op_name = "relu"

    def forward(self, x: Any) -> Any:
        y = array_module(x).maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        (y,) = self.saved_tensors
        return MaskGrad(y.data > 0)(gy)


class MaskGrad(Function):
    """``gy`` where a constant boolean mask holds, else 0 (piecewise-linear backward)."""

    op_name = "mask_grad"

    def __init__(self, mask: Any) -> None:
        self.mask = mask

    def forward(self, gy: Any) -> Any:
        return gy * self.mask

    def backward(self, g: Tensor) -> Tensor:
        return MaskGrad(self.mask)(g)


class LeakyReLU(Function):
    op_name = "leaky_relu"

    def __init__(self, negative_slope: float) -> None:
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        slope = xp.asarray(self.negative_slope, dtype=x.dtype)
        if self.needs_input_grad[0]:
            self.save_for_backward(xp.where(x > 0, xp.ones_like(x), slope))
        return xp.asarray(xp.where(x > 0, x, x * slope))

    def backward(self, gy: Tensor) -> Tensor:
        (slope,) = self.saved_tensors  # constant: 1 or negative_slope per element
        return gy * slope


class ELU(Function):
    op_name = "elu"

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        negative = xp.expm1(xp.minimum(x, 0)) * xp.asarray(self.alpha, dtype=x.dtype)
        y = xp.asarray(xp.where(x > 0, x, negative))
        self.save_for_backward(x, y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        x, y = self.saved_tensors  # for x <= 0, dy/dx = alpha * exp(x) = y + alpha
        return where(Tensor._wrap(x.data > 0), gy, gy * (y + self.alpha))


def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``; the gradient at 0 is 0."""
    return ReLU()(_floating(x, "relu"))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` for x > 0, ``negative_slope * x`` otherwise."""
    x = _floating(x, "leaky_relu")
    _check_number("leaky_relu", "negative_slope", negative_slope)
    return LeakyReLU(float(negative_slope))(x)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    x = _floating(x, "elu")
    _check_number("elu", "alpha", alpha)
    return ELU(float(alpha))(x)


def _check_number(op: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: expected a number for {name}, got {type(value).__name__}")


# ---- erf (for the exact gelu) ---------------------------------------------------------

# Cephes ndtr.c rational approximations (S. L. Moshier): erf(x) = x T(x^2) / U(x^2) for
# |x| < 1 and erfc(x) = exp(-x^2) P(x) / Q(x) for 1 <= x < 8; relative error ~1e-16 in float64.
_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
      7.00332514112805075473e3, 5.55923013010394962768e4)  # fmt: skip
_U = (3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
      2.26290000613890934246e4, 4.92673942608635921086e4)  # fmt: skip
_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
      4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
      9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)  # fmt: skip
_Q = (1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
      9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
      1.65666309194161350182e3, 5.57535340817727675546e2)  # fmt: skip


def _polevl(x: Any, coefs: tuple[float, ...], monic: bool = False) -> Any:
    """Polynomial with coefficients from the highest degree (``monic``: a leading 1 is implied)."""
    acc = x + coefs[0] if monic else x * coefs[0] + coefs[1]
    for c in coefs[(1 if monic else 2) :]:
        acc = acc * x + c
    return acc


def erf_array(x: Any) -> Any:
    """The error function on a raw float array (numpy or cupy), in its own dtype."""
    xp = array_module(x)
    small = xp.clip(x, -1, 1)
    z = small * small
    inner = small * _polevl(z, _T) / _polevl(z, _U, monic=True)
    a = xp.clip(xp.abs(x), 1, 8)  # beyond 8, erfc < 1e-28: erf is +-1 in float64
    erfc = xp.exp(-(a * a)) * _polevl(a, _P) / _polevl(a, _Q, monic=True)
    outer = xp.sign(x) * (1 - erfc)
    return xp.asarray(xp.where(xp.abs(x) < 1, inner, outer))


class Erf(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return erf_array(x)

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return gy * exp(-(x * x)) * (2.0 / _math.sqrt(_math.pi))


def erf(x: Tensor) -> Tensor:
    """The Gauss error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt`` (~1e-16 relative error)."""
    return Erf()(_floating(x, "erf"))


# ---- gelu, silu, softplus ----------------------------------------------------------------

_SQRT_HALF = 1.0 / _math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / _math.sqrt(2.0 * _math.pi)
_TANH_SCALE = _math.sqrt(2.0 / _math.pi)
_TANH_CUBIC = 0.044715


class GELU(Function):
    op_name = "gelu"

    def __init__(self, approximate: str) -> None:
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        self.save_for_backward(x)
        if self.approximate == "tanh":
            inner = (x + x * x * x * _TANH_CUBIC) * _TANH_SCALE
            return xp.asarray(x * 0.5 * (1 + xp.tanh(inner)))
        return xp.asarray(x * 0.5 * (1 + erf_array(x * _SQRT_HALF)))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        if self.approximate == "tanh":
            t = tanh((x + x * x * x * _TANH_CUBIC) * _TANH_SCALE)
            dinner = (x * x * (3 * _TANH_CUBIC) + 1.0) * _TANH_SCALE
            return gy * ((t + 1.0) * 0.5 + x * 0.5 * (1.0 - t * t) * dinner)
        cdf = (erf(x * _SQRT_HALF) + 1.0) * 0.5
        pdf = exp(x * x * -0.5) * _INV_SQRT_2PI
        return gy * (cdf + x * pdf)


class SiLU(Function):
    op_name = "silu"

    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return array_module(x).asarray(x * _sigmoid_array(x))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        s = sigmoid(x)
        return gy * s * (x * (1.0 - s) + 1.0)


class Softplus(Function):
    def __init__(self, beta: float, threshold: float) -> None:
        self.beta = beta
        self.threshold = threshold

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        z = x * self.beta
        smooth = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / self.beta
        self.save_for_backward(x)
        return xp.asarray(xp.where(z > self.threshold, x, smooth))

    def backward(self, gy: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        linear = Tensor._wrap(x.data * self.beta > self.threshold)
        return where(linear, gy, gy * sigmoid(x * self.beta))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """``x * Phi(x)`` with the normal CDF Phi; ``approximate="tanh"`` uses the tanh formula."""
    x = _floating(x, "gelu")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: expected approximate='none' or 'tanh', got {approximate!r}")
    return GELU(approximate)(x)


def silu(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (swish)."""
    return SiLU()(_floating(x, "silu"))


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, linear (``x``) where ``beta x > threshold``; stable for any x."""
    x = _floating(x, "softplus")
    _check_number("softplus", "beta", beta)
    _check_number("softplus", "threshold", threshold)
    if beta <= 0:
        raise ValueError(f"softplus: expected beta > 0, got {beta}")
    return Softplus(float(beta), float(threshold))(x)


# ---- softmax, log_softmax -----------------------------------------------------------------


class Softmax(Function):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y = xp.asarray(e / e.sum(axis=self.axis, keepdims=True))
        self.save_for_backward(y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        y = self.saved_tensors[0]
        gyy = gy * y
        return gyy - y * _sum(gyy, self.axis, keepdims=True)


class LogSoftmax(Function):
    op_name = "log_softmax"

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x: Any) -> Any:
        xp = array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        y = xp.asarray(shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True)))
        self.save_for_backward(y)
        return y

    def backward(self, gy: Tensor) -> Tensor:
        y = self.saved_tensors[0]
        return gy - exp(y) * _sum(gy, self.axis, keepdims=True)


def _softmax_axis(x: Tensor, op: str, axis: int | None, dim: int | None) -> int:
    if dim is not None:
        if axis is not None and axis != -1:
            raise TypeError(f"{op}: got both axis={axis!r} and dim={dim!r}; pass one of them")
        axis = dim
    if axis is None:
        axis = -1
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{op}: expected one int axis, got {axis!r}")
    if x.ndim == 0:
        raise ValueError(f"{op}: expected a tensor with at least 1 dimension, got a 0-d tensor")
    (a,) = normalize_axis(axis, x.ndim, op)
    return a


def softmax(x: Tensor, axis: int | None = -1, *, dim: int | None = None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis`` (default last), shifted by the max so it never overflows."""
    x = _floating(x, "softmax")
    return Softmax(_softmax_axis(x, "softmax", axis, dim))(x)


def log_softmax(x: Tensor, axis: int | None = -1, *, dim: int | None = None) -> Tensor:
    """``x - logsumexp(x)`` along ``axis`` (default last), computed stably."""
    x = _floating(x, "log_softmax")
    return LogSoftmax(_softmax_axis(x, "log_softmax", axis, dim))(x)
