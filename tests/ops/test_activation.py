"""Activations: forward, gradients, double backward, numerical stability at extreme inputs, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import OpSpec, check_op

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)


def _wide(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(-4.0, 4.0, size=shape)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + _erf(x / np.sqrt(2.0)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.log(_softmax(x, axis))


SPECS = [
    OpSpec("tanh", F.tanh, np.tanh, [(3, 4)]),
    OpSpec("sigmoid", F.sigmoid, _sigmoid, [(3, 4)], domain=_wide),
    OpSpec("relu", F.relu, lambda x: np.maximum(x, 0), [(3, 4)], domain=_away_from_zero),
    OpSpec("leaky_relu", F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), [(3, 4)], domain=_away_from_zero),
    OpSpec("leaky_relu_slope", F.leaky_relu, lambda x, negative_slope: np.where(x > 0, x, negative_slope * x), [(3, 4)],
           kwargs={"negative_slope": 0.2}, domain=_away_from_zero),
    OpSpec("elu", F.elu, lambda x: np.where(x > 0, x, np.expm1(x)), [(3, 4)], domain=_away_from_zero),
    OpSpec("elu_alpha", F.elu, lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(x)), [(3, 4)],
           kwargs={"alpha": 0.5}, domain=_away_from_zero),
    OpSpec("gelu", F.gelu, _gelu, [(3, 4)], domain=_wide),
    OpSpec("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), _gelu_tanh, [(3, 4)], domain=_wide),
    OpSpec("silu", F.silu, lambda x: x * _sigmoid(x), [(3, 4)], domain=_wide),
    OpSpec("softplus", F.softplus, _softplus, [(3, 4)], domain=_wide),
    OpSpec("softplus_beta_threshold", F.softplus, _softplus, [(3, 4)], kwargs={"beta": 2.0, "threshold": 3.0}, domain=_wide),
    OpSpec("softmax", F.softmax, _softmax, [(3, 5)]),
    OpSpec("softmax_axis0", F.softmax, _softmax, [(3, 4)], kwargs={"axis": 0}),
    OpSpec("softmax_dim", lambda x: x.softmax(dim=1), lambda x: _softmax(x, 1), [(2, 3, 4)]),
    OpSpec("log_softmax", F.log_softmax, _log_softmax, [(3, 5)]),
    OpSpec("log_softmax_dim", lambda x: F.log_softmax(x, dim=0), lambda x: _log_softmax(x, 0), [(3, 4)]),
    OpSpec("softmax_then_sum", lambda x: (F.softmax(x) * x).sum(-1), lambda x: (_softmax(x) * x).sum(-1), [(3, 4)]),
]  # fmt: skip


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_activation(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


def test_float32_stays_float32_and_integers_become_default_float() -> None:
    x = labkit.randn(2, 3, requires_grad=True)
    fns = (F.tanh, F.sigmoid, F.relu, F.leaky_relu, F.elu, F.gelu, F.silu, F.softplus, F.softmax, F.log_softmax)
    outs = [fn(x) for fn in fns] + [F.gelu(x, approximate="tanh")]
    assert all(o.dtype == labkit.float32 for o in outs)
    sum(o.sum() for o in outs).backward()
    assert x.grad.dtype == labkit.float32
    assert F.relu(labkit.tensor([-1, 2])).dtype == labkit.float32


def test_gelu_exact_matches_math_erf_reference() -> None:
    xs = np.concatenate([np.linspace(-10.0, 10.0, 2001), [0.0, 1e-12, -1e-12, 40.0, -40.0]])
    np.testing.assert_allclose(F.gelu(labkit.tensor(xs)).numpy(), _gelu(xs), rtol=1e-10, atol=1e-10)


# ---- numerical stability -------------------------------------------------------------------


def _value_and_grad(fn: object, values: list[float], dtype: object = labkit.float32) -> tuple[np.ndarray, np.ndarray]:
    x = labkit.tensor(values, dtype=dtype, requires_grad=True)
    y = fn(x)
    y.sum().backward()
    return y.numpy(), x.grad.numpy()


def test_softmax_and_log_softmax_of_large_values() -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, g = _value_and_grad(F.softmax, [1000.0, 0.0])
        np.testing.assert_allclose(y, [1.0, 0.0])
        assert np.isfinite(g).all()
        y, g = _value_and_grad(F.log_softmax, [1000.0, 0.0, -1000.0])
        np.testing.assert_allclose(y, [0.0, -1000.0, -2000.0])
        np.testing.assert_allclose(g, [-2.0, 1.0, 1.0])
        y, _ = _value_and_grad(F.softmax, [1e30, 1e30])
        np.testing.assert_allclose(y, [0.5, 0.5])


def test_sigmoid_softplus_silu_at_the_tails() -> None:
    with np.errstate(over="raise", invalid="raise"):
        y, g = _value_and_grad(F.sigmoid, [-1000.0, 1000.0, 0.0])
        np.testing.assert_array_equal(y, [0.0, 1.0, 0.5])
        np.testing.assert_array_equal(g, [0.0, 0.0, 0.25])
        y, g = _value_and_grad(F.softplus, [1000.0, -1000.0, 0.0])
        np.testing.assert_allclose(y, [1000.0, 0.0, np.log(2.0)], rtol=1e-6)
        np.testing.assert_allclose(g, [1.0, 0.0, 0.5])
        y, g = _value_and_grad(lambda x: F.softplus(x, beta=0.5), [30.0, 100.0], labkit.float64)  # below the threshold
        np.testing.assert_allclose(y, [30.0 + 2 * np.log1p(np.exp(-15.0)), 100.0], rtol=1e-12)
        y, g = _value_and_grad(F.silu, [-1000.0, 1000.0])
        np.testing.assert_array_equal(y, [-0.0, 1000.0])
        np.testing.assert_array_equal(g, [0.0, 1.0])
        y, _ = _value_and_grad(F.elu, [-1000.0, 1000.0])
        np.testing.assert_array_equal(y, [-1.0, 1000.0])
        y, g = _value_and_grad(F.gelu, [-1000.0, 1000.0])
        np.testing.assert_array_equal(y, [0.0, 1000.0])
        np.testing.assert_array_equal(g, [0.0, 1.0])


def test_piecewise_gradients_at_and_around_zero() -> None:
    _, g = _value_and_grad(F.relu, [-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0])
    _, g = _value_and_grad(lambda x: F.leaky_relu(x, 0.1), [-1.0, 0.0, 2.0])
    np.testing.assert_allclose(g, [0.1, 0.1, 1.0])
    _, g = _value_and_grad(lambda x: F.elu(x, alpha=2.0), [-1.0, 0.0, 2.0], labkit.float64)
    np.testing.assert_allclose(g, [2.0 * np.exp(-1.0), 2.0, 1.0])


def test_softmax_rows_sum_to_one_and_log_softmax_is_its_log() -> None:
    x = labkit.randn(4, 7)
    np.testing.assert_allclose(F.softmax(x, 1).sum(1).numpy(), np.ones(4), rtol=1e-6)
    np.testing.assert_allclose(F.log_softmax(x, dim=1).exp().numpy(), F.softmax(x, dim=1).numpy(), rtol=1e-5)


# ---- errors ------------------------------------------------------------------------------


def test_errors_name_the_op_and_the_problem() -> None:
    x = labkit.ones(2, 3)
    with pytest.raises(ValueError, match=r"softmax: axis 2 is out of range for a tensor of 2 dimensions"):
        F.softmax(x, axis=2)
    with pytest.raises(ValueError, match=r"log_softmax: axis -3 is out of range"):
        F.log_softmax(x, dim=-3)
    with pytest.raises(TypeError, match=r"softmax: expected one int axis, got \(0, 1\)"):
        F.softmax(x, axis=(0, 1))
    with pytest.raises(TypeError, match=r"softmax: got both axis=0 and dim=1"):
        F.softmax(x, 0, dim=1)
    with pytest.raises(ValueError, match=r"softmax: expected a tensor with at least 1 dimension"):
        F.softmax(labkit.tensor(1.0))
    with pytest.raises(ValueError, match=r"gelu: expected approximate='none' or 'tanh', got 'erf'"):
        F.gelu(x, approximate="erf")
    with pytest.raises(ValueError, match=r"softplus: expected beta > 0, got 0"):
        F.softplus(x, beta=0)
    with pytest.raises(TypeError, match=r"leaky_relu: expected a number for negative_slope, got str"):
        F.leaky_relu(x, "0.1")
    with pytest.raises(TypeError, match=r"tanh: expected a Tensor, got list"):
        F.tanh([1.0])
