"""Convolution ops: forward against a loop reference, gradients, double backward, errors, PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import OpSpec, check_op

# ---- a straightforward numpy reference (loops over output pixels) -------------------------


def _pair(v: object, nd: int) -> tuple[int, ...]:
    return (v,) * nd if isinstance(v, int) else tuple(v)  # type: ignore[arg-type]


def ref_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """N-d (1 or 2) cross-correlation in float64, cast back to x's dtype."""
    nd = x.ndim - 2
    dtype = x.dtype
    x, w = x.astype(np.float64), w.astype(np.float64)
    if nd == 1:
        x, w = x[:, :, None, :], w[:, :, None, :]
    kernel = w.shape[2:]
    st = (1,) * (2 - nd) + _pair(stride, nd)
    dil = (1,) * (2 - nd) + _pair(dilation, nd)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dil)]
        pads = [(t // 2, t - t // 2) for t in totals]
    elif padding == "valid":
        pads = [(0, 0), (0, 0)]
    else:
        pads = [(p, p) for p in (0,) * (2 - nd) + _pair(padding, nd)]
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    oh = (xp.shape[2] - dil[0] * (kernel[0] - 1) - 1) // st[0] + 1
    ow = (xp.shape[3] - dil[1] * (kernel[1] - 1) - 1) // st[1] + 1
    y = np.zeros((n, o, oh, ow))
    for k in range(o):
        g = k // og
        xs = xp[:, g * cg : (g + 1) * cg]
        for i in range(oh):
            for j in range(ow):
                top, left = i * st[0], j * st[1]
                patch = xs[
                    :,
                    :,
                    top : top + dil[0] * (kernel[0] - 1) + 1 : dil[0],
                    left : left + dil[1] * (kernel[1] - 1) + 1 : dil[1],
                ]
                y[:, k, i, j] = (patch * w[k]).sum(axis=(1, 2, 3))
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    if nd == 1:
        y = y[:, :, 0, :]
    return y.astype(dtype)


def conv2d_nobias(x, w, **kw):
    return F.conv2d(x, w, None, **kw)


def ref_nobias(x, w, **kw):
    return ref_conv(x, w, None, **kw)


def conv1d_nobias(x, w, **kw):
    return F.conv1d(x, w, None, **kw)


SPECS = [
    OpSpec("conv2d", F.conv2d, ref_conv, [(2, 3, 5, 5), (4, 3, 3, 3), (4,)]),
    OpSpec("conv2d_nobias", conv2d_nobias, ref_nobias, [(2, 3, 5, 4), (2, 3, 2, 3)]),
    OpSpec("conv2d_pad1", F.conv2d, ref_conv, [(2, 2, 5, 5), (3, 2, 3, 3), (3,)], kwargs={"padding": 1}),
    OpSpec("conv2d_pad_pair", conv2d_nobias, ref_nobias, [(1, 2, 4, 5), (3, 2, 3, 2)], kwargs={"padding": (2, 1)}),
    OpSpec(
        "conv2d_stride2", F.conv2d, ref_conv, [(2, 2, 7, 6), (3, 2, 3, 3), (3,)], kwargs={"stride": 2, "padding": 1}
    ),
    OpSpec("conv2d_stride_pair", conv2d_nobias, ref_nobias, [(1, 2, 7, 7), (2, 2, 3, 2)], kwargs={"stride": (2, 1)}),
    OpSpec(
        "conv2d_dilation", conv2d_nobias, ref_nobias, [(1, 2, 7, 7), (2, 2, 3, 3)], kwargs={"dilation": 2, "padding": 1}
    ),
    OpSpec(
        "conv2d_dilation_stride",
        conv2d_nobias,
        ref_nobias,
        [(1, 2, 8, 7), (2, 2, 2, 3)],
        kwargs={"dilation": (2, 1), "stride": (1, 2)},
    ),
    OpSpec(
        "conv2d_groups2", F.conv2d, ref_conv, [(2, 4, 5, 5), (6, 2, 3, 3), (6,)], kwargs={"groups": 2, "padding": 1}
    ),
    OpSpec(
        "conv2d_depthwise", conv2d_nobias, ref_nobias, [(2, 3, 5, 5), (6, 1, 3, 3)], kwargs={"groups": 3, "stride": 2}
    ),
    OpSpec("conv2d_same_odd", conv2d_nobias, ref_nobias, [(1, 2, 5, 6), (3, 2, 3, 3)], kwargs={"padding": "same"}),
    OpSpec(
        "conv2d_same_even",
        conv2d_nobias,
        ref_nobias,
        [(1, 2, 5, 6), (2, 2, 2, 4)],
        kwargs={"padding": "same", "dilation": (1, 2)},
    ),
    OpSpec("conv2d_valid", conv2d_nobias, ref_nobias, [(1, 2, 5, 6), (3, 2, 2, 2)], kwargs={"padding": "valid"}),
    OpSpec("conv2d_1x1", F.conv2d, ref_conv, [(2, 5, 3, 3), (4, 5, 1, 1), (4,)]),
    OpSpec("conv2d_kernel_equals_input", conv2d_nobias, ref_nobias, [(2, 2, 3, 3), (3, 2, 3, 3)]),
    OpSpec("conv1d", F.conv1d, ref_conv, [(2, 3, 7), (4, 3, 3), (4,)]),
    OpSpec(
        "conv1d_pad_stride_dil",
        F.conv1d,
        ref_conv,
        [(2, 2, 9), (3, 2, 3), (3,)],
        kwargs={"padding": 2, "stride": 2, "dilation": 2},
    ),
    OpSpec("conv1d_groups", conv1d_nobias, ref_nobias, [(2, 4, 6), (4, 2, 2)], kwargs={"groups": 2, "padding": 1}),
    OpSpec("conv1d_same", conv1d_nobias, ref_nobias, [(1, 2, 6), (3, 2, 4)], kwargs={"padding": "same"}),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_conv(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


def _two_layers(x, w1, w2):
    return F.conv2d(F.conv2d(x, w1, padding=1), w2, stride=2)


def _ref_two_layers(x, w1, w2):
    return ref_conv(ref_conv(x, w1, padding=1), w2, stride=2)


def test_conv_of_conv_output(device: str) -> None:
    """conv2d's output is a view laid out (C, N, H, W); a second conv must handle that layout."""
    check_op(OpSpec("conv2d_twice", _two_layers, _ref_two_layers, [(2, 2, 5, 5), (3, 2, 3, 3), (2, 3, 2, 2)]), device)


# ---- semantics -----------------------------------------------------------------------------


def test_output_shapes_and_dtype() -> None:
    x = labkit.randn(2, 3, 9, 8)
    w = labkit.randn(5, 3, 3, 2)
    assert F.conv2d(x, w).shape == (2, 5, 7, 7)
    assert F.conv2d(x, w, padding="same").shape == (2, 5, 9, 8)
    assert F.conv2d(x, w, stride=2, padding=1).shape == (2, 5, 5, 5)
    assert F.conv2d(x, w).dtype == labkit.float32
    x64, w64 = x.double(), w.double()
    assert F.conv2d(x64, w64).dtype == labkit.float64
    assert F.conv1d(labkit.randn(2, 3, 10), labkit.randn(4, 3, 3), padding="same").shape == (2, 4, 10)


def test_gradient_only_for_weight() -> None:
    x = labkit.randn(2, 1, 6, 6)
    w = labkit.randn(4, 1, 3, 3, requires_grad=True)
    b = labkit.zeros(4, requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    y.backward(labkit.ones(*y.shape))
    assert x.grad is None
    assert w.grad.shape == (4, 1, 3, 3) and w.grad.dtype == labkit.float32
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 2 * 6 * 6), rtol=1e-6)


def test_backward_twice_with_retain_graph() -> None:
    x = labkit.randn(2, 2, 5, 5, dtype=labkit.float64, requires_grad=True)
    w = labkit.randn(3, 2, 3, 3, dtype=labkit.float64, requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    g = labkit.randn(*y.shape, dtype=labkit.float64)
    y.backward(g, retain_graph=True)
    first = w.grad.numpy().copy()
    y.backward(g)
    np.testing.assert_allclose(w.grad.numpy(), 2 * first)


# ---- errors --------------------------------------------------------------------------------


ERRORS = [
    (
        lambda: F.conv2d(labkit.randn(3, 5, 5), labkit.randn(4, 3, 3, 3)),
        ValueError,
        r"conv2d: expected a 4-d input \(N, C, H, W\), got shape \(3, 5, 5\)",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3)),
        ValueError,
        r"conv2d: expected a 4-d weight .* got shape \(4, 3, 3\)",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 4, 3, 3)),
        ValueError,
        r"conv2d: input has 3 channels, weight expects 4 \(groups=1\)",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 4, 5, 5), labkit.randn(4, 1, 3, 3), groups=2),
        ValueError,
        r"conv2d: input has 4 channels, weight expects 2 \(groups=2\)",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 1, 3, 3), groups=2),
        ValueError,
        r"conv2d: groups=2 must divide input channels 3",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 2, 5), labkit.randn(4, 3, 3, 3)),
        ValueError,
        r"conv2d: kernel \(3, 3\) .* larger than the padded input \(2, 5\)",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3, 3), dilation=3),
        ValueError,
        r"dilated extent \(7, 7\)",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3, 3), labkit.randn(3)),
        ValueError,
        r"conv2d: bias must have shape \(4,\)",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3, 3, dtype=labkit.float64)),
        TypeError,
        r"conv2d: input is float32 but weight is float64",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3, 3), stride=2, padding="same"),
        ValueError,
        r"padding='same' needs stride 1",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3, 3), padding="full"),
        ValueError,
        r"conv2d: padding must be",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3, 3), stride=0),
        ValueError,
        r"conv2d: stride must be >= 1",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3, 3), padding=(1, 2, 3)),
        TypeError,
        r"conv2d: padding must be an int or a tuple of 2 ints",
    ),
    (
        lambda: F.conv2d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3, 3), groups=0),
        ValueError,
        r"conv2d: groups must be a positive int",
    ),
    (lambda: F.conv2d(np.ones((1, 3, 5, 5)), labkit.randn(4, 3, 3, 3)), TypeError, r"conv2d: input must be a Tensor"),
    (
        lambda: F.conv2d(labkit.tensor(np.ones((1, 3, 5, 5), dtype=np.int64)), labkit.randn(4, 3, 3, 3)),
        TypeError,
        r"conv2d: input must be a float tensor, got int64",
    ),
    (
        lambda: F.conv1d(labkit.randn(1, 3, 5, 5), labkit.randn(4, 3, 3)),
        ValueError,
        r"conv1d: expected a 3-d input \(N, C, L\)",
    ),
    (
        lambda: F.conv1d(labkit.randn(1, 3, 5), labkit.randn(4, 2, 3)),
        ValueError,
        r"conv1d: input has 3 channels, weight expects 2",
    ),
    (
        lambda: F.conv1d(labkit.randn(1, 3, 2), labkit.randn(4, 3, 3)),
        ValueError,
        r"conv1d: kernel \(3,\) .* larger than the padded input \(2,\)",
    ),
]


@pytest.mark.parametrize("call,exc,match", ERRORS)
def test_errors(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()


# ---- parity with PyTorch -------------------------------------------------------------------

TORCH_CASES = [
    (2, (2, 3, 8, 8), (4, 3, 3, 3), {"padding": 1}),
    (2, (2, 4, 9, 7), (6, 2, 3, 2), {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2}),
    (2, (2, 4, 9, 8), (4, 1, 5, 5), {"padding": "same", "groups": 4}),
    (2, (1, 2, 6, 7), (3, 2, 2, 2), {"padding": "same", "dilation": 2}),
    (1, (2, 3, 11), (5, 3, 4), {"stride": 3, "padding": 2}),
    (1, (2, 4, 10), (4, 2, 3), {"padding": "same", "dilation": 2, "groups": 2}),
]


@pytest.mark.parametrize("nd,xs,ws,kwargs", TORCH_CASES)
def test_matches_torch(nd, xs, ws, kwargs) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    tfn = torch.nn.functional.conv2d if nd == 2 else torch.nn.functional.conv1d
    lfn = F.conv2d if nd == 2 else F.conv1d
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = tfn(tx, tw, tb, **kwargs)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    lx, lw, lb = (labkit.tensor(a, requires_grad=True) for a in (x, w, b))
    ly = lfn(lx, lw, lb, **kwargs)
    ly.backward(labkit.tensor(g))
    np.testing.assert_allclose(ly.numpy(), ty.detach().numpy(), atol=1e-10)
    for ours, theirs in ((lx, tx), (lw, tw), (lb, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-10)


def test_matches_torch_float32_cnn_layer() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 16, 14, 14)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    ty = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1)
    ly = F.conv2d(labkit.tensor(x), labkit.tensor(w), padding=1)
    assert ly.dtype == labkit.float32
    np.testing.assert_allclose(ly.numpy(), ty.numpy(), rtol=1e-4, atol=1e-4)
