"""The ``maxpool2d`` kernel against the built-in ``MaxPool2d`` forward: maxima are exact, so equality is bitwise."""

from __future__ import annotations

import numpy as np
import pytest
from labkit_fastkernels.checks import max_pool2d_ref, only_kernel, pool_specs
from labkit_fastkernels.kernels import max_pool2d_forward

import labkit
import labkit.functional as F
from labkit.testing.opspec import OpSpec, check_op

# (input shape, pool kwargs): the CNN's 2x2 pools, odd sizes, 3x3 (overlapping, padded), 1-row and stride-1 fallback
CASES = [
    ((4, 3, 28, 28), {"kernel_size": 2}),
    ((2, 3, 7, 9), {"kernel_size": 2}),
    ((2, 2, 9, 9), {"kernel_size": 3}),
    ((2, 2, 9, 8), {"kernel_size": 3, "stride": 2}),
    ((2, 2, 8, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((2, 2, 6, 9), {"kernel_size": (1, 3)}),
    ((2, 2, 9, 6), {"kernel_size": (3, 1), "stride": (2, 1)}),
    ((2, 2, 7, 7), {"kernel_size": 2, "stride": 1}),
    ((2, 2, 9, 9), {"kernel_size": 2, "dilation": 2}),
]


def _inputs(shape, dtype, kind, layout, seed=0):
    """Random, tied (few distinct integers) or special (NaN, +-inf) values, laid out (N, C, H, W) or (C, N, H, W)."""
    rng = np.random.default_rng(seed)
    if kind == "ties":
        x = rng.integers(-2, 3, shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
        if kind == "special":
            flat = x.reshape(-1)
            picks = rng.choice(flat.size, size=max(3, flat.size // 10), replace=False)
            flat[picks] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=dtype), size=picks.size)
    if layout == "CN":  # how a conv's output reaches the pool in labkit
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    return x


def _run(x_np, kwargs, forward, grad=True):
    """y, the saved (i_idx, j_idx) arrays, x_shape, layout and the input gradient with ``forward`` as the kernel."""
    x = labkit.tensor(x_np, requires_grad=grad)
    with only_kernel("maxpool2d", forward) as calls:
        y = F.max_pool2d(x, **kwargs)
        fn = y.creator
        saved = [None if s is None else s.data.copy() for s in fn._saved] if grad else []
        gy = np.random.default_rng(9).standard_normal(y.shape).astype(x_np.dtype)
        (gx,) = labkit.grad(y, [x], labkit.tensor(gy)) if grad else (None,)
    assert calls[0] == (0 if forward is None else 1)
    meta = (fn.x_shape, fn.layout) if grad else ()
    return y.data, saved, meta, None if gx is None else gx.numpy()


def _assert_same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # NaN == NaN here; maxima and indices are exact


@pytest.mark.parametrize("layout", ["NC", "CN"])
@pytest.mark.parametrize("kind", ["random", "ties", "special"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, kwargs", CASES)
def test_outputs_saved_indices_and_gradients_equal_the_builtin(shape, kwargs, dtype, kind, layout):
    x_np = _inputs(shape, dtype, kind, layout)
    y, saved, meta, gx = _run(x_np, kwargs, max_pool2d_forward)
    y0, saved0, meta0, gx0 = _run(x_np, kwargs, None)
    _assert_same(y, y0)
    assert y.strides == y0.strides  # the same memory layout downstream
    assert meta == meta0 and len(saved) == len(saved0) == 2
    for s, s0 in zip(saved, saved0, strict=True):
        assert (s is None) == (s0 is None)
        if s is not None:
            _assert_same(s, s0)
    _assert_same(gx, gx0)
    if _square(kwargs):
        np.testing.assert_array_equal(y, max_pool2d_ref(x_np, **_ref_kwargs(kwargs)))


def _square(kwargs):
    return isinstance(kwargs["kernel_size"], int) and "dilation" not in kwargs


def _ref_kwargs(kwargs):
    return {k: v for k, v in kwargs.items() if k in ("kernel_size", "stride", "padding")}


def test_ties_send_the_gradient_to_the_first_maximum():
    """A window of equal values: the whole gradient lands on its top-left element, as in PyTorch."""
    x = np.ones((1, 1, 4, 4))
    _, _, _, gx = _run(x, {"kernel_size": 2}, max_pool2d_forward)
    want = np.zeros((4, 4))
    want[::2, ::2] = 1.0
    gy = np.random.default_rng(9).standard_normal((1, 1, 2, 2))
    np.testing.assert_array_equal(gx[0, 0], want * np.kron(gy[0, 0], np.ones((2, 2))))


@pytest.mark.parametrize("shape, kwargs", CASES[:3])
def test_without_grad_nothing_is_tracked(shape, kwargs):
    x_np = _inputs(shape, np.float32, "random", "CN")
    with labkit.no_grad():
        y, _, _, _ = _run(x_np, kwargs, max_pool2d_forward, grad=False)
        y0, _, _, _ = _run(x_np, kwargs, None, grad=False)
    _assert_same(y, y0)


@pytest.mark.parametrize("spec", pool_specs(), ids=str)
def test_check_op_with_the_kernel_active(spec: OpSpec):
    """Forward vs the numpy reference, gradcheck and gradgradcheck (float64) with the kernel selected."""
    with only_kernel("maxpool2d", max_pool2d_forward) as calls:
        check_op(spec)
    assert calls[0] > 0
