"""layer_norm and batch_norm: values, gradients, double backward, running statistics, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import POSITIVE, REAL, OpSpec, check_op


def _normalize_ref(x: np.ndarray, axes: tuple[int, ...], eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _layer_norm_ref(x: np.ndarray, w: Any = None, b: Any = None, k: int = 1, eps: float = 1e-5) -> np.ndarray:
    y = _normalize_ref(x, tuple(range(x.ndim - k, x.ndim)), eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


def _channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _batch_norm_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    y = _normalize_ref(x, (0, *range(2, x.ndim)))
    return y * _channel(w, x.ndim) + _channel(b, x.ndim)


RUNNING_MEAN = np.array([0.1, -0.2, 0.3])
RUNNING_VAR = np.array([0.5, 1.5, 2.0])


def _batch_norm_eval(x: labkit.Tensor, w: labkit.Tensor, b: labkit.Tensor) -> labkit.Tensor:
    stats = [labkit.tensor(a.astype(x.numpy().dtype), device=x.device) for a in (RUNNING_MEAN, RUNNING_VAR)]
    return F.batch_norm(x, *stats, w, b, training=False)


def _batch_norm_eval_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    y = (x - _channel(RUNNING_MEAN, x.ndim)) / np.sqrt(_channel(RUNNING_VAR, x.ndim) + 1e-5)
    return y * _channel(w, x.ndim) + _channel(b, x.ndim)


def _batch_norm_train(x: labkit.Tensor, *params: labkit.Tensor) -> labkit.Tensor:
    channels = x.shape[1]
    stats = labkit.zeros(channels, device=x.device), labkit.ones(channels, device=x.device)
    return F.batch_norm(x, *stats, *params, training=True)


SPECS = [
    OpSpec("layer_norm", lambda x, w, b: F.layer_norm(x, 5, w, b), _layer_norm_ref, [(4, 5), (5,), (5,)]),
    OpSpec(
        "layer_norm_2d_shape",
        lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
        lambda x, w, b: _layer_norm_ref(x, w, b, k=2),
        [(2, 3, 4), (3, 4), (3, 4)],
    ),
    OpSpec("layer_norm_plain", lambda x: F.layer_norm(x, [6]), _layer_norm_ref, [(3, 6)]),
    OpSpec("layer_norm_weight_only", lambda x, w: F.layer_norm(x, 4, weight=w), _layer_norm_ref, [(2, 2, 4), (4,)]),
    OpSpec(
        "layer_norm_eps",
        lambda x: F.layer_norm(x, 3, eps=0.1),
        lambda x: _layer_norm_ref(x, eps=0.1),
        [(4, 3)],
        domain=lambda rng, s: rng.uniform(-0.2, 0.2, size=s),
    ),
    OpSpec("batch_norm_train_2d", _batch_norm_train, _batch_norm_ref, [(6, 3), (3,), (3,)]),
    OpSpec("batch_norm_train_4d", _batch_norm_train, _batch_norm_ref, [(2, 3, 2, 2), (3,), (3,)]),
    OpSpec(
        "batch_norm_train_plain",
        _batch_norm_train,
        lambda x: _normalize_ref(x, (0, 2)),
        [(3, 2, 4)],
    ),
    OpSpec("batch_norm_eval", _batch_norm_eval, _batch_norm_eval_ref, [(4, 3), (3,), (3,)]),
    OpSpec(
        "batch_norm_eval_3d",
        _batch_norm_eval,
        _batch_norm_eval_ref,
        [(2, 3, 3), (3,), (3,)],
        domain=[REAL, POSITIVE, REAL],
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_norm(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


# ---- against composites ---------------------------------------------------------------------


def _layer_norm_composite(x: labkit.Tensor, w: labkit.Tensor, b: labkit.Tensor) -> labkit.Tensor:
    xc = x - x.mean(axis=-1, keepdims=True)
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc * (var + 1e-5) ** -0.5 * w + b


def _batch_norm_composite(x: labkit.Tensor, w: labkit.Tensor, b: labkit.Tensor) -> labkit.Tensor:
    xc = x - x.mean(axis=(0, 2), keepdims=True)
    var = (xc * xc).mean(axis=(0, 2), keepdims=True)
    return xc * (var + 1e-5) ** -0.5 * w.reshape(1, -1, 1) + b.reshape(1, -1, 1)


@pytest.mark.parametrize(
    ("fused", "composite", "shape"),
    [
        (lambda x, w, b: F.layer_norm(x, 4, w, b), _layer_norm_composite, (3, 2, 4)),
        (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), _batch_norm_composite, (3, 4, 2)),
    ],
    ids=["layer_norm", "batch_norm"],
)
def test_fused_matches_composite(fused: Any, composite: Any, shape: tuple[int, ...], device: str) -> None:
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(shape), rng.uniform(0.5, 2, 4), rng.standard_normal(4)]
    a = [labkit.tensor(v, requires_grad=True, device=device) for v in arrays]
    c = [labkit.tensor(v, requires_grad=True, device=device) for v in arrays]
    y0, y1 = fused(*a), composite(*c)
    np.testing.assert_allclose(y0.numpy(), y1.numpy(), rtol=1e-10, atol=1e-12)
    gy = labkit.tensor(rng.standard_normal(shape), device=device)
    g0 = labkit.grad(y0, a, gy, create_graph=True)
    g1 = labkit.grad(y1, c, gy, create_graph=True)
    for u, v in zip(g0, g1, strict=True):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-9, atol=1e-12)
    probe = labkit.tensor(rng.standard_normal(shape), device=device)
    h0 = labkit.grad((g0[0] * probe).sum(), a[:2])
    h1 = labkit.grad((g1[0] * probe).sum(), c[:2])
    for u, v in zip(h0, h1, strict=True):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-9, atol=1e-12)


# ---- running statistics ---------------------------------------------------------------------


def test_batch_norm_updates_running_stats_in_place() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 5)) * 2 + 1
    running_mean, running_var = labkit.zeros(3), labkit.ones(3)
    mean_array = running_mean.data
    y = F.batch_norm(labkit.tensor(x, requires_grad=True), running_mean, running_var, training=True, momentum=0.2)
    assert running_mean.data is mean_array and running_mean.dtype == labkit.float32
    assert y.requires_grad and not running_mean.requires_grad and running_mean.creator is None
    np.testing.assert_allclose(running_mean.numpy(), 0.2 * x.mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(running_var.numpy(), 0.8 + 0.2 * x.var(axis=(0, 2), ddof=1), rtol=1e-5)
    # evaluation uses the running statistics and leaves them alone
    before = running_var.numpy().copy()
    y = F.batch_norm(labkit.tensor(x), running_mean, running_var)
    expected = (x - running_mean.numpy()[:, None]) / np.sqrt(running_var.numpy()[:, None] + 1e-5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(running_var.numpy(), before)


def test_batch_norm_matches_torch_with_running_stats() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 2, 2))
    w, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    rm, rv = labkit.zeros(3, dtype=labkit.float64), labkit.ones(3, dtype=labkit.float64)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    lx, lw = labkit.tensor(x, requires_grad=True), labkit.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = F.batch_norm(lx, rm, rv, lw, labkit.tensor(b), training=True)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, torch.tensor(b), training=True)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-12)
    gy = rng.standard_normal(x.shape)
    y.backward(labkit.tensor(gy))
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lw.grad.numpy(), tw.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_float32_stays_float32() -> None:
    x = labkit.randn(4, 6, requires_grad=True)
    w, b = labkit.ones(6, requires_grad=True), labkit.zeros(6, requires_grad=True)
    y = F.layer_norm(x, 6, w, b) + F.batch_norm(x, labkit.zeros(6), labkit.ones(6), w, b, training=True)
    y.sum().backward()
    assert y.dtype == labkit.float32
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == labkit.float32


# ---- errors -----------------------------------------------------------------------------------


def test_layer_norm_errors() -> None:
    x = labkit.randn(2, 3, 4)
    with pytest.raises(
        ValueError, match=r"layer_norm: normalized_shape \(3,\) does not match the trailing dims of input \(2, 3, 4\)"
    ):
        F.layer_norm(x, 3)
    with pytest.raises(
        ValueError, match=r"layer_norm: weight must have shape \(4,\) for input of shape \(2, 3, 4\), got \(3,\)"
    ):
        F.layer_norm(x, 4, weight=labkit.ones(3))


def test_batch_norm_errors() -> None:
    x = labkit.randn(4, 3)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean must be a Tensor of shape \(3,\)"):
        F.batch_norm(x, labkit.zeros(4), labkit.ones(3))
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var are required when training=False"):
        F.batch_norm(x, None, None)
    with pytest.raises(ValueError, match="batch_norm: expected more than 1 value per channel when training"):
        F.batch_norm(labkit.randn(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: expected input of shape \(N, C\) or \(N, C, \*\), got \(3,\)"):
        F.batch_norm(labkit.randn(3), None, None, training=True)


@pytest.mark.gpu
def test_batch_norm_statistics_on_another_device_name_both_devices():
    if not labkit.cuda_is_available():
        pytest.skip("needs a GPU with cupy")
    x = labkit.randn(4, 3, device="cuda")
    with pytest.raises(ValueError, match=r"batch_norm: expected running_mean on the input's device cuda:0, got cpu"):
        F.batch_norm(x, labkit.zeros(3), labkit.ones(3), training=True)
