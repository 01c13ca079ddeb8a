"""Gradient clipping: closed forms, torch parity, non-finite norms, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import labkit
from labkit.optim import clip_grad_norm_, clip_grad_value_, grad_norm


def with_grads(*grads: np.ndarray, device: str = "cpu") -> list[labkit.Tensor]:
    params = []
    for g in grads:
        p = labkit.tensor(np.zeros_like(g), requires_grad=True, device=device)
        p.grad = labkit.tensor(g.copy(), device=device)
        params.append(p)
    return params


def test_clip_grad_norm_scales_to_max_norm():
    params = with_grads(np.array([3.0]), np.array([[4.0, 0.0]]))
    total = clip_grad_norm_(params, max_norm=1.0)
    assert isinstance(total, float) and total == pytest.approx(5.0)
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad.data, [3.0 * scale])
    np.testing.assert_allclose(params[1].grad.data, [[4.0 * scale, 0.0]])
    assert grad_norm(params) == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_and_skips_missing_ones():
    params = with_grads(np.array([0.3, 0.4]))
    bare = labkit.tensor(np.zeros(3), requires_grad=True)
    grad_array = params[0].grad.data
    assert clip_grad_norm_([*params, bare], max_norm=1.0) == pytest.approx(0.5)
    assert params[0].grad.data is grad_array  # in place
    np.testing.assert_array_equal(grad_array, [0.3, 0.4])
    assert bare.grad is None
    assert clip_grad_norm_([bare], 1.0) == 0.0
    assert clip_grad_norm_(params[0], 0.25) == pytest.approx(0.5)  # a single tensor works too
    np.testing.assert_allclose(grad_array, [0.15, 0.2], rtol=1e-5)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, math.inf, "inf"])
def test_norm_types_by_hand(norm_type):
    grads = [np.array([1.0, -2.0]), np.array([[2.0], [-4.0]])]
    flat = np.concatenate([g.ravel() for g in grads])
    p = math.inf if norm_type == "inf" else norm_type
    expected = np.abs(flat).max() if p == math.inf else (np.abs(flat) ** p).sum() ** (1 / p)
    assert grad_norm(with_grads(*grads), norm_type) == pytest.approx(expected)


def test_nonfinite_norm_raises_or_spreads():
    params = with_grads(np.array([1.0, np.inf]), np.array([2.0]))
    with pytest.raises(RuntimeError, match=r"total norm of order 2\.0 of the gradients is inf"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(params[1].grad.data, [2.0])  # nothing clipped before the error
    with np.errstate(invalid="ignore"):  # inf * 0
        assert clip_grad_norm_(params, 1.0) == math.inf
    assert params[1].grad.data[0] == 0.0  # scaled by 1 / inf, as in PyTorch
    nan = with_grads(np.array([np.nan]), np.array([1.0]))
    assert math.isnan(clip_grad_norm_(nan, 1.0))
    assert math.isnan(nan[1].grad.data[0])


def test_clip_grad_value_clamps_in_place():
    params = with_grads(np.array([-3.0, 0.5, 2.0]), np.array([[0.1, -0.2]]))
    grad_array = params[0].grad.data
    assert clip_grad_value_(params, 1.0) is None
    assert params[0].grad.data is grad_array
    np.testing.assert_array_equal(grad_array, [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(params[1].grad.data, [[0.1, -0.2]])


def test_errors_name_the_argument():
    params = with_grads(np.array([1.0]))
    cases = [
        (lambda: clip_grad_norm_(params, -1.0), ValueError, "max_norm expected >= 0, got -1.0"),
        (lambda: clip_grad_norm_(params, "1"), TypeError, "max_norm expected a number, got str"),
        (lambda: clip_grad_norm_(params, 1.0, norm_type=0), ValueError, "norm_type expected a positive number"),
        (lambda: clip_grad_norm_(params, 1.0, norm_type="fro"), ValueError, "norm_type expected a number or 'inf'"),
        (lambda: clip_grad_norm_([np.ones(2)], 1.0), TypeError, "parameters expected Tensors, got ndarray"),
        (lambda: clip_grad_value_(params, -0.5), ValueError, "clip_value expected >= 0, got -0.5"),
        (lambda: clip_grad_value_(params, None), TypeError, "clip_value expected a number, got NoneType"),
    ]
    for make, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            make()


def test_clipping_on_device(device):
    params = with_grads(np.array([3.0], np.float32), np.array([4.0], np.float32), device=device)
    assert clip_grad_norm_(params, 2.5) == pytest.approx(5.0)
    clip_grad_value_(params, 1.5)
    np.testing.assert_allclose([p.grad.numpy()[0] for p in params], [1.5, 1.5 * 1.0], rtol=1e-5)
    assert str(params[0].grad.device).startswith(device)


# ---- parity with torch ---------------------------------------------------------------


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (4,), (2, 2, 2)]]
    params = with_grads(*grads)
    tparams = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for p, g in zip(tparams, grads, strict=True):
        p.grad = torch.from_numpy(g.copy())
    total = clip_grad_norm_(params, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type, foreach=False)
    assert total == pytest.approx(float(ttotal), rel=1e-5)
    for p, t in zip(params, tparams, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)]
    params = with_grads(*grads)
    tparam = torch.zeros(5, 3, requires_grad=True)
    tparam.grad = torch.from_numpy(grads[0].copy())
    clip_grad_value_(params, 0.7)
    torch.nn.utils.clip_grad_value_([tparam], 0.7)
    np.testing.assert_array_equal(params[0].grad.numpy(), tparam.grad.numpy())
