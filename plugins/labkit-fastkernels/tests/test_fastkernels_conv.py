"""The ``convgradinput`` kernel against the built-in ``ConvGradInput`` forward and a direct reference."""

from __future__ import annotations

import numpy as np
import pytest
from labkit_fastkernels.checks import conv1d_ref, conv2d_ref, conv_specs, only_kernel
from labkit_fastkernels.conv import grad_input
from labkit_fastkernels.kernels import conv_grad_input_forward

import labkit
import labkit.functional as F
from labkit.ops.conv import ConvGradInput
from labkit.testing.opspec import OpSpec, check_op

# (input shape, weight shape, conv kwargs): the training benchmark's conv2 (small batch) and odd geometries
CASES = [
    ((3, 8, 14, 14), (16, 8, 3, 3), {"padding": 1}),
    ((2, 4, 9, 7), (6, 2, 3, 3), {"groups": 2, "stride": 2, "padding": 1}),
    ((2, 3, 11, 10), (5, 3, 3, 2), {"dilation": 2, "padding": 2}),
    ((2, 3, 6, 6), (4, 3, 5, 5), {"padding": "same"}),
    ((4, 3, 17), (5, 3, 4), {"stride": 3, "padding": 1}),
]
TOL = {np.float64: (1e-12, 1e-12), np.float32: (1e-5, 1e-5)}


def _conv(x, w, kwargs):
    return F.conv2d(x, w, **kwargs) if x.ndim == 4 else F.conv1d(x, w, **kwargs)


def _grads(x_np, w_np, gy_np, kwargs, forward):
    """(y, gx, gw) of conv(x, w) against the cotangent gy, with ``forward`` as ConvGradInput's kernel."""
    x = labkit.tensor(x_np, requires_grad=True)
    w = labkit.tensor(w_np, requires_grad=True)
    with only_kernel("convgradinput", forward) as calls:
        y = _conv(x, w, kwargs)
        gx, gw = labkit.grad(y, [x, w], labkit.tensor(gy_np))
    assert calls[0] == (0 if forward is None else 1)
    return y.numpy(), gx.numpy(), gw.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES)
def test_outputs_and_gradients_equal_the_builtin(x_shape, w_shape, kwargs, dtype):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(x_shape).astype(dtype)
    w_np = rng.standard_normal(w_shape).astype(dtype)
    y_shape = _conv(labkit.tensor(x_np), labkit.tensor(w_np), kwargs).shape
    gy_np = rng.standard_normal(y_shape).astype(dtype)
    want = _grads(x_np, w_np, gy_np, kwargs, None)
    got = _grads(x_np, w_np, gy_np, kwargs, conv_grad_input_forward)
    rtol, atol = TOL[dtype]
    for name, g, w in zip(("y", "gx", "gw"), got, want, strict=True):
        assert g.dtype == w.dtype == dtype and g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=name)
    # the kernel's gradient is not zero or a copy of something else: it moves with gy
    assert np.abs(got[1]).max() > 0.1


def test_kernel_returns_the_builtin_result_layout_and_saves_the_same():
    rng = np.random.default_rng(1)
    x = labkit.tensor(rng.standard_normal((3, 4, 8, 8)), requires_grad=True)
    w = labkit.tensor(rng.standard_normal((6, 4, 3, 3)), requires_grad=True)
    geom = F.conv2d(x, w, padding=1).creator.geom
    gy = labkit.tensor(rng.standard_normal((3, 6, 8, 8)), requires_grad=True)
    results = {}
    for label, forward in (("builtin", None), ("kernel", conv_grad_input_forward)):
        fn = ConvGradInput(geom)
        with only_kernel("convgradinput", forward):
            gx = fn(gy, w)  # both inputs need gradients: both are saved (double backward)
        saved = fn._saved
        assert [s is gy for s in saved] == [True, False] and [s is w for s in saved] == [False, True]
        results[label] = gx.data
    got, want = results["kernel"], results["builtin"]
    assert got.strides == want.strides and got.shape == want.shape == (3, 4, 8, 8)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("chunk_bytes", [1, 4096, 1 << 30])
def test_any_chunking_gives_the_same_gradient(chunk_bytes):
    """One image per GEMM, a few, or the whole batch in one: the col2im sums are the same."""
    rng = np.random.default_rng(2)
    x = labkit.tensor(rng.standard_normal((5, 3, 7, 6)), requires_grad=True)
    w = labkit.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    geom = F.conv2d(x, w, padding=1).creator.geom
    rows = geom.rows(rng.standard_normal((5, 4, 7, 6)))
    np.testing.assert_allclose(
        grad_input(geom, w.data, rows, chunk_bytes), geom.grad_input(w.data, rows), rtol=1e-13, atol=1e-13
    )


def test_matches_the_adjoint_closed_form():
    """<conv(x, w), gy> = <x, gx>: the kernel's gx is the exact adjoint of the direct reference."""
    rng = np.random.default_rng(3)
    x_np, w_np = rng.standard_normal((2, 3, 7, 5)), rng.standard_normal((4, 3, 3, 3))
    kwargs = {"stride": 2, "padding": 1}
    gy_np = rng.standard_normal(conv2d_ref(x_np, w_np, **kwargs).shape)
    _, gx, _ = _grads(x_np, w_np, gy_np, kwargs, conv_grad_input_forward)
    # gx[n, c, p, q] = d<conv(x, w), gy>/dx: the reference is linear in x, so probe it with unit inputs
    probe = np.zeros_like(x_np)
    want = np.empty_like(x_np)
    for idx in np.ndindex(*x_np.shape):
        probe[idx] = 1.0
        want[idx] = np.sum(conv2d_ref(probe, w_np, **kwargs) * gy_np)
        probe[idx] = 0.0
    np.testing.assert_allclose(gx, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", conv_specs(), ids=str)
def test_check_op_with_the_kernel_active(spec: OpSpec):
    """Forward vs the numpy reference, gradcheck and gradgradcheck (float64) with the kernel selected."""
    with only_kernel("convgradinput", conv_grad_input_forward) as calls:
        check_op(spec)
    assert calls[0] > 0


def test_conv1d_reference_agrees_with_labkit():
    """The references themselves: conv1d_ref is conv2d_ref over a height-1 image."""
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3)), rng.standard_normal(4)
    got = F.conv1d(labkit.tensor(x), labkit.tensor(w), labkit.tensor(b), padding=1, stride=2).numpy()
    np.testing.assert_allclose(got, conv1d_ref(x, w, b, stride=2, padding=1), rtol=1e-12, atol=1e-12)
