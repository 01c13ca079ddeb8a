"""Pooling ops: forward against loop references, gradients, double backward, ties, errors, PyTorch parity."""

from __future__ import annotations

import math

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import OpSpec, check_op
from tests.ops.test_conv import ref_conv

# ---- straightforward numpy references (loops over output pixels) ---------------------------


def _pair(v: object) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def _windows(x, kernel_size, stride, padding, dilation, value):
    """Yield (i, j, window (N, C, KH, KW)) over the padded input."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    xp = np.pad(x, [(0, 0), (0, 0), (ph, ph), (pw, pw)], constant_values=value)
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    for i in range(oh):
        for j in range(ow):
            top, left = i * sh, j * sw
            yield i, j, oh, ow, xp[:, :, top : top + dh * (kh - 1) + 1 : dh, left : left + dw * (kw - 1) + 1 : dw]


def ref_max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1):
    out = None
    for i, j, oh, ow, win in _windows(x, kernel_size, stride, padding, dilation, -np.inf):
        if out is None:
            out = np.zeros((*x.shape[:2], oh, ow), dtype=x.dtype)
        out[:, :, i, j] = win.max(axis=(2, 3))
    return out


def ref_avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    ones = np.ones((1, 1, *x.shape[2:]))
    counts = {(i, j): win.sum() for i, j, _, _, win in _windows(ones, kernel_size, stride, padding, 1, 0.0)}
    kh, kw = _pair(kernel_size)
    out = None
    for i, j, oh, ow, win in _windows(x.astype(np.float64), kernel_size, stride, padding, 1, 0.0):
        if out is None:
            out = np.zeros((*x.shape[:2], oh, ow))
        out[:, :, i, j] = win.sum(axis=(2, 3)) / (kh * kw if count_include_pad else counts[i, j])
    return out.astype(x.dtype)


def ref_adaptive_avg_pool2d(x, output_size):
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = x.shape[2:]
    oh, ow = oh or h, ow or w
    out = np.zeros((*x.shape[:2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, r1 = (i * h) // oh, math.ceil((i + 1) * h / oh)
            c0, c1 = (j * w) // ow, math.ceil((j + 1) * w / ow)
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].astype(np.float64).mean(axis=(2, 3))
    return out.astype(x.dtype)


SPECS = [
    OpSpec("max_k2", F.max_pool2d, ref_max_pool2d, [(2, 3, 6, 6)], kwargs={"kernel_size": 2}),
    OpSpec("max_k2_odd_size", F.max_pool2d, ref_max_pool2d, [(2, 2, 7, 5)], kwargs={"kernel_size": 2}),
    OpSpec(
        "max_k3_s2_p1",
        F.max_pool2d,
        ref_max_pool2d,
        [(2, 2, 7, 6)],
        kwargs={"kernel_size": 3, "stride": 2, "padding": 1},
    ),
    OpSpec(
        "max_overlap_s1",
        F.max_pool2d,
        ref_max_pool2d,
        [(1, 2, 5, 6)],
        kwargs={"kernel_size": 3, "stride": 1, "padding": 1},
    ),
    OpSpec(
        "max_rect",
        F.max_pool2d,
        ref_max_pool2d,
        [(1, 2, 6, 7)],
        kwargs={"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 1)},
    ),
    OpSpec(
        "max_dilation",
        F.max_pool2d,
        ref_max_pool2d,
        [(1, 2, 7, 7)],
        kwargs={"kernel_size": 2, "stride": 1, "dilation": 2},
    ),
    OpSpec("max_k1_s2", F.max_pool2d, ref_max_pool2d, [(1, 2, 5, 5)], kwargs={"kernel_size": 1, "stride": 2}),
    OpSpec(
        "max_row_kernel", F.max_pool2d, ref_max_pool2d, [(1, 2, 4, 7)], kwargs={"kernel_size": (1, 3), "stride": (1, 2)}
    ),
    OpSpec(
        "max_col_kernel",
        F.max_pool2d,
        ref_max_pool2d,
        [(1, 2, 7, 4)],
        kwargs={"kernel_size": (3, 1), "padding": (1, 0)},
    ),
    OpSpec("avg_k2", F.avg_pool2d, ref_avg_pool2d, [(2, 3, 6, 6)], kwargs={"kernel_size": 2}),
    OpSpec("avg_k2_odd_size", F.avg_pool2d, ref_avg_pool2d, [(2, 2, 7, 5)], kwargs={"kernel_size": 2}),
    OpSpec(
        "avg_k3_s2_p1",
        F.avg_pool2d,
        ref_avg_pool2d,
        [(2, 2, 7, 6)],
        kwargs={"kernel_size": 3, "stride": 2, "padding": 1},
    ),
    OpSpec(
        "avg_k3_s2_p1_exclude_pad",
        F.avg_pool2d,
        ref_avg_pool2d,
        [(2, 2, 7, 6)],
        kwargs={"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    ),
    OpSpec(
        "avg_overlap_rect",
        F.avg_pool2d,
        ref_avg_pool2d,
        [(1, 2, 6, 7)],
        kwargs={"kernel_size": (3, 2), "stride": 1, "padding": (1, 1), "count_include_pad": False},
    ),
    OpSpec("avg_k1_s2", F.avg_pool2d, ref_avg_pool2d, [(1, 2, 5, 5)], kwargs={"kernel_size": 1, "stride": 2}),
    OpSpec(
        "avg_row_kernel",
        F.avg_pool2d,
        ref_avg_pool2d,
        [(1, 2, 4, 7)],
        kwargs={"kernel_size": (1, 3), "padding": (0, 1)},
    ),
    OpSpec("avg_col_kernel", F.avg_pool2d, ref_avg_pool2d, [(1, 2, 7, 4)], kwargs={"kernel_size": (3, 1), "stride": 1}),
    OpSpec(
        "adaptive_3x5", F.adaptive_avg_pool2d, ref_adaptive_avg_pool2d, [(2, 2, 7, 8)], kwargs={"output_size": (3, 5)}
    ),
    OpSpec(
        "adaptive_global", F.adaptive_avg_pool2d, ref_adaptive_avg_pool2d, [(2, 3, 5, 4)], kwargs={"output_size": 1}
    ),
    OpSpec(
        "adaptive_keep_h",
        F.adaptive_avg_pool2d,
        ref_adaptive_avg_pool2d,
        [(1, 2, 5, 6)],
        kwargs={"output_size": (None, 4)},
    ),
    OpSpec(
        "adaptive_upsample",
        F.adaptive_avg_pool2d,
        ref_adaptive_avg_pool2d,
        [(1, 2, 3, 4)],
        kwargs={"output_size": (5, 6)},
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_pool(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


def _conv_pool(x, w):
    y = F.conv2d(x, w, padding=1)
    return F.max_pool2d(y * y, 2) + F.avg_pool2d(y, 2)


def _ref_conv_pool(x, w):
    y = ref_conv(x, w, padding=1)
    return ref_max_pool2d(y * y, 2) + ref_avg_pool2d(y, 2)


def test_pool_of_conv_output(device: str) -> None:
    """conv2d returns a view laid out (C, N, H, W) in memory; pooling must accept that layout."""
    check_op(OpSpec("conv_then_pool", _conv_pool, _ref_conv_pool, [(2, 2, 4, 4), (3, 2, 3, 3)]), device)


# ---- semantics -----------------------------------------------------------------------------


def test_max_pool_ties_send_gradient_to_first_maximum() -> None:
    x = labkit.tensor(np.array([[[[0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 3.0, 2.0]]]]), requires_grad=True)
    y = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(y.numpy(), [[[[0.0, 3.0]]]])
    y.backward(labkit.ones(*y.shape, dtype=labkit.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]]])


def test_overlapping_max_windows_accumulate_gradient() -> None:
    x = labkit.tensor(np.array([[[[0.0, 5.0, 1.0, 2.0]]]]), requires_grad=True)
    y = F.max_pool2d(x, (1, 2), stride=1)
    np.testing.assert_array_equal(y.numpy(), [[[[5.0, 5.0, 2.0]]]])
    y.backward(labkit.ones(*y.shape, dtype=labkit.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 2.0, 0.0, 1.0]]]])


def test_stride_defaults_to_kernel_and_dtype_is_kept() -> None:
    x = labkit.randn(2, 3, 8, 6)
    for fn in (F.max_pool2d, F.avg_pool2d):
        y = fn(x, 2)
        assert y.shape == (2, 3, 4, 3) and y.dtype == labkit.float32
        assert fn(x.double(), (2, 3), stride=(2, 1)).dtype == labkit.float64
    assert F.adaptive_avg_pool2d(x, (2, 2)).dtype == labkit.float32


def test_adaptive_avg_pool_global_is_mean() -> None:
    x = labkit.randn(2, 3, 5, 7, dtype=labkit.float64)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1).numpy(), x.numpy().mean(axis=(2, 3), keepdims=True))


# ---- errors --------------------------------------------------------------------------------

ERRORS = [
    (
        lambda: F.max_pool2d(labkit.randn(3, 6, 6), 2),
        ValueError,
        r"max_pool2d: expected a 4-d input \(N, C, H, W\), got shape \(3, 6, 6\)",
    ),
    (
        lambda: F.avg_pool2d(labkit.randn(1, 3, 6, 6), 3, padding=2),
        ValueError,
        r"avg_pool2d: padding \(2, 2\) must be at most half the .*kernel \(3, 3\)",
    ),
    (
        lambda: F.max_pool2d(labkit.randn(1, 3, 2, 6), 3),
        ValueError,
        r"max_pool2d: kernel \(3, 3\) .* does not fit the padded input \(2, 6\)",
    ),
    (
        lambda: F.max_pool2d(labkit.randn(1, 3, 6, 6), (2, 2, 2)),
        TypeError,
        r"max_pool2d: kernel_size must be an int or a tuple of 2 ints",
    ),
    (lambda: F.max_pool2d(labkit.randn(1, 3, 6, 6), 2, stride=0), ValueError, r"max_pool2d: stride must be >= 1"),
    (
        lambda: F.avg_pool2d(labkit.tensor(np.ones((1, 1, 4, 4), dtype=np.int64)), 2),
        TypeError,
        r"avg_pool2d: expected a float tensor, got int64",
    ),
    (lambda: F.max_pool2d(np.ones((1, 1, 4, 4)), 2), TypeError, r"max_pool2d: expected a Tensor"),
    (
        lambda: F.adaptive_avg_pool2d(labkit.randn(1, 3, 6, 6), 0),
        ValueError,
        r"adaptive_avg_pool2d: output_size must be positive",
    ),
    (
        lambda: F.adaptive_avg_pool2d(labkit.randn(1, 3, 6, 6), (1, 2, 3)),
        TypeError,
        r"adaptive_avg_pool2d: output_size must be an int or a pair",
    ),
    (lambda: F.adaptive_avg_pool2d(labkit.randn(6, 6), 2), ValueError, r"adaptive_avg_pool2d: expected a 4-d input"),
]


@pytest.mark.parametrize("call,exc,match", ERRORS)
def test_errors(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()


# ---- parity with PyTorch -------------------------------------------------------------------

TORCH_CASES = [
    ("max_pool2d", {"kernel_size": 2}),
    ("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("max_pool2d", {"kernel_size": (2, 3), "stride": 1, "padding": (1, 1), "dilation": (2, 1)}),
    ("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ("adaptive_avg_pool2d", {"output_size": (4, 3)}),
]


@pytest.mark.parametrize("name,kwargs", TORCH_CASES)
def test_matches_torch(name, kwargs) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8))
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, name)(tx, **kwargs)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    lx = labkit.tensor(x, requires_grad=True)
    ly = getattr(F, name)(lx, **kwargs)
    ly.backward(labkit.tensor(g))
    np.testing.assert_allclose(ly.numpy(), ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), atol=1e-12)


def test_max_pool_after_relu_matches_torch_on_ties() -> None:
    torch = pytest.importorskip("torch")
    x = np.maximum(np.random.default_rng(4).standard_normal((2, 4, 8, 8)), 0.0).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2).sum().backward()
    lx = labkit.tensor(x, requires_grad=True)
    y = F.max_pool2d(lx, 2)
    y.backward(labkit.ones(*y.shape))
    np.testing.assert_array_equal(lx.grad.numpy(), tx.grad.numpy())
