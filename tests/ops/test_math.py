"""Elementwise math: forward, gradients, double backward, broadcasting, dtypes, no-grad ops, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import POSITIVE, REAL, OpSpec, check_op


def _away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 2.0, size=shape)


def _above(low: float) -> object:
    return lambda rng, shape: rng.uniform(low, 2.0, size=shape)


_erf = np.vectorize(math.erf, otypes=[np.float64])
_COND = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])


def _clip_ref(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    return np.clip(x, lo, hi)


SPECS = [
    OpSpec("exp", F.exp, np.exp, [(3, 4)]),
    OpSpec("log", F.log, np.log, [(3, 4)], domain=POSITIVE),
    OpSpec("log1p", F.log1p, np.log1p, [(3, 4)], domain=_above(-0.5)),
    OpSpec("sqrt", F.sqrt, np.sqrt, [(3, 4)], domain=POSITIVE),
    OpSpec("rsqrt", F.rsqrt, lambda x: 1 / np.sqrt(x), [(3, 4)], domain=POSITIVE),
    OpSpec("abs", F.abs, np.abs, [(3, 4)], domain=_away_from_zero),
    OpSpec("abs_dunder", lambda x: abs(x), np.abs, [(5,)], domain=_away_from_zero),
    OpSpec("sin", F.sin, np.sin, [(3, 4)]),
    OpSpec("cos", F.cos, np.cos, [(3, 4)]),
    OpSpec("square", F.square, np.square, [(3, 4)]),
    OpSpec("erf", F.erf, _erf, [(4, 5)], domain=lambda rng, s: rng.uniform(-3.0, 3.0, size=s)),
    OpSpec("method_chain", lambda x: x.exp().log1p().sqrt(), lambda x: np.sqrt(np.log1p(np.exp(x))), [(3, 4)]),
    OpSpec("clamp_both", lambda x: F.clamp(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), [(4, 5)]),
    OpSpec("clamp_min", lambda x: x.clamp(min=0.3), lambda x: np.maximum(x, 0.3), [(4, 5)]),
    OpSpec("clamp_max", lambda x: F.clamp(x, max=-0.1), lambda x: np.minimum(x, -0.1), [(4, 5)]),
    OpSpec("clip_alias", lambda x: x.clip(-1, 1), lambda x: np.clip(x, -1, 1), [(4, 5)]),
    OpSpec("clamp_tensor_bounds", lambda x, lo: F.clamp(x, lo, 1.0), lambda x, lo: np.clip(x, lo, 1.0), [(3, 4), (4,)]),
    OpSpec("maximum", F.maximum, np.maximum, [(3, 4), (3, 4)]),
    OpSpec("maximum_broadcast", F.maximum, np.maximum, [(2, 3, 4), (3, 1)]),
    OpSpec("maximum_scalar", lambda x: F.maximum(x, 0.25), lambda x: np.maximum(x, 0.25), [(3, 4)]),
    OpSpec("maximum_scalar_left", lambda x: F.maximum(0.25, x), lambda x: np.maximum(0.25, x), [(3, 4)]),
    OpSpec("minimum", F.minimum, np.minimum, [(3, 4), (4,)]),
    OpSpec("minimum_scalar", lambda x: x.minimum(-0.3), lambda x: np.minimum(x, -0.3), [(3, 4)]),
    OpSpec("where", lambda x0, x1, c: F.where(c, x0, x1), lambda x0, x1, c: np.where(c, x0, x1), [(3, 4), (3, 4)], extra=[_COND]),
    OpSpec("where_broadcast", lambda x0, x1, c: F.where(c, x0, x1), lambda x0, x1, c: np.where(c, x0, x1), [(4,), (3, 1)], extra=[_COND]),
    OpSpec("where_scalar", lambda x, c: F.where(c, x, 0.5), lambda x, c: np.where(c, x, 0.5), [(3, 4)], extra=[_COND]),
    OpSpec("where_scalar_left", lambda x, c: F.where(c, -1.0, x), lambda x, c: np.where(c, -1.0, x), [(1, 4)], extra=[_COND]),
    OpSpec("where_cond_broadcast", lambda x0, x1, c: F.where(c, x0, x1), lambda x0, x1, c: np.where(c, x0, x1), [(2, 3, 4), (2, 3, 4)], extra=[_COND]),
    OpSpec("eq", F.eq, np.equal, [(3, 4), (3, 4)], grad=False),
    OpSpec("lt_broadcast", F.lt, np.less, [(3, 4), (4,)], grad=False),
    OpSpec("ge_scalar", lambda x: x >= 0.5, lambda x: x >= 0.5, [(3, 4)], grad=False),
    OpSpec("isfinite", lambda x: F.isfinite(F.log(x)), lambda x: np.isfinite(np.log(x)), [(3, 4)], domain=REAL, grad=False),
]  # fmt: skip


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_math(spec: OpSpec, device: str) -> None:
    with np.errstate(invalid="ignore"):  # log of negatives in the isfinite row
        check_op(spec, device)


# ---- gradients at the edges -----------------------------------------------------------


def test_clamp_gradient_is_one_inside_and_at_the_bounds() -> None:
    x = labkit.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    x.clamp(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_maximum_splits_gradient_at_ties_and_abs_has_zero_gradient_at_zero() -> None:
    a = labkit.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = labkit.tensor([2.0, 2.0, 2.0], requires_grad=True)
    F.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 0.5, 0.0])
    x = labkit.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    F.abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 0.0, 1.0])


def test_where_gradient_is_masked_and_summed_to_each_shape() -> None:
    x0 = labkit.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x1 = labkit.tensor(5.0, requires_grad=True)
    cond = labkit.tensor([True, False, True])
    F.where(cond, x0, x1).sum().backward()
    np.testing.assert_array_equal(x0.grad.numpy(), [1.0, 0.0, 1.0])
    assert x1.grad.shape == () and x1.grad.item() == 1.0


def test_where_accepts_numpy_condition_and_masks_values() -> None:
    x = labkit.tensor([-1.0, 4.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        y = F.where(np.array([False, True]), F.sqrt(x), 0.0)  # sqrt(-1) is NaN, but masked out
    y.sum().backward()
    assert np.isfinite(y.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy()[1], 0.25)


def test_erf_matches_math_erf_over_the_whole_line() -> None:
    xs = np.concatenate([np.linspace(-7.0, 7.0, 1401), [0.0, 1e-300, -1e-8, 0.999999, 1.000001, 8.0, 30.0]])
    got = F.erf(labkit.tensor(xs)).numpy()
    np.testing.assert_allclose(got, _erf(xs), rtol=1e-15, atol=1e-16)
    assert F.erf(labkit.tensor([np.inf, -np.inf])).tolist() == [1.0, -1.0]
    assert np.isnan(F.erf(labkit.tensor([np.nan])).item())


# ---- dtypes ------------------------------------------------------------------------------


def test_float32_stays_float32_and_integers_become_default_float() -> None:
    x = labkit.rand(3) + 0.5
    for y in (
        x.exp(),
        x.log(),
        x.sqrt(),
        x.rsqrt(),
        x.sin(),
        F.erf(x),
        x.clamp(0.6, 0.9),
        F.maximum(x, 0.7),
        F.where(x > 1, x, 0.0),
    ):
        assert y.dtype == labkit.float32
    i = labkit.tensor([1, 2, 3])
    assert F.exp(i).dtype == labkit.float32 and F.sqrt(i).dtype == labkit.float32
    assert F.abs(-i).dtype == labkit.int64 and F.square(i).dtype == labkit.int64
    assert i.clamp(0, 2).dtype == labkit.int64 and i.clamp(0.5).dtype == labkit.float32
    assert F.maximum(i, 2).tolist() == [2, 2, 3]


def test_mixed_float_dtypes_promote_and_grads_keep_their_own_dtype() -> None:
    a = labkit.ones(3, requires_grad=True)
    b = labkit.zeros(3, dtype=labkit.float64, requires_grad=True)
    y = F.maximum(a, b) + F.where(labkit.tensor([True, False, True]), a, b)
    assert y.dtype == labkit.float64
    y.sum().backward()
    assert a.grad.dtype == labkit.float32 and b.grad.dtype == labkit.float64


# ---- no-grad ops: comparisons, sign, logic --------------------------------------------------


def test_comparisons_are_bool_without_grad_and_accept_scalars_on_either_side() -> None:
    x = labkit.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for y, expected in (
        (x == 2, [False, True, False]),
        (x != 2.0, [True, False, True]),
        (x < 2, [True, False, False]),
        (2 < x, [False, False, True]),
        (x <= 2, [True, True, False]),
        (2.5 >= x, [True, True, False]),
        (F.gt(1.5, x), [True, False, False]),
        (x == labkit.tensor([[1.0], [3.0]]), [[True, False, False], [False, False, True]]),
    ):
        assert y.dtype == labkit.bool_ and not y.requires_grad
        assert y.tolist() == expected
    assert (x == None) is False  # noqa: E711 - Python's fallback, as in PyTorch
    assert x != "a"


def test_sign_isnan_isfinite_and_logic_do_not_require_grad() -> None:
    x = labkit.tensor([-2.0, 0.0, 3.0, np.nan, np.inf], requires_grad=True)
    s = F.sign(x)
    assert not s.requires_grad and s.dtype == labkit.float32
    np.testing.assert_array_equal(s.numpy()[:3], [-1.0, 0.0, 1.0])
    assert F.isnan(x).tolist() == [False, False, False, True, False]
    assert F.isfinite(x).tolist() == [True, True, True, False, False]
    assert F.isinf(x).tolist() == [False, False, False, False, True]
    a = labkit.tensor([True, True, False])
    b = labkit.tensor([True, False, False])
    assert F.logical_and(a, b).tolist() == [True, False, False]
    assert F.logical_or(a, b).tolist() == [True, True, False]
    assert F.logical_xor(a, b).tolist() == [False, True, False]
    assert F.logical_not(a).tolist() == [False, False, True]
    assert F.logical_and(a, True).tolist() == [True, True, False]


# ---- errors ------------------------------------------------------------------------------


def test_errors_name_the_op_and_the_problem() -> None:
    x = labkit.ones(3, 4)
    with pytest.raises(ValueError, match=r"maximum: shapes \(3, 4\) and \(5,\) cannot be broadcast"):
        F.maximum(x, labkit.ones(5))
    with pytest.raises(ValueError, match=r"where: shapes \(2,\) and \(3, 4\) cannot be broadcast"):
        F.where(labkit.tensor([True, False]), x, 0.0)
    with pytest.raises(TypeError, match=r"where: expected a bool condition, got float32"):
        F.where(x, x, 0.0)
    with pytest.raises(TypeError, match=r"where: expected a Tensor among condition, x0 and x1"):
        F.where(True, 1.0, 2.0)
    with pytest.raises(ValueError, match=r"clamp: expected at least one of min and max"):
        F.clamp(x)
    with pytest.raises(TypeError, match=r"clamp: expected a number or Tensor for max, got str"):
        F.clamp(x, 0.0, "1")
    with pytest.raises(TypeError, match=r"exp: expected a Tensor, got ndarray"):
        F.exp(np.ones(3))
    with pytest.raises(ValueError, match=r"lt: shapes \(3, 4\) and \(2,\) cannot be broadcast"):
        x < labkit.ones(2)  # noqa: B015
    with pytest.raises(TypeError):
        x < "a"  # noqa: B015
