"""Reductions: forward, gradients, double backward, axis/keepdims aliases, ties, dtypes, errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import POSITIVE, OpSpec, check_op


def _away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


def _full(fn: Callable[..., labkit.Tensor]) -> Callable[..., labkit.Tensor]:
    """A full reduction's 0-d result as shape (1,): labkit.testing's finite differences perturb
    0-d cotangents into numpy scalars (a gradcheck limitation), so the 0-d path is checked through this.
    """
    return lambda x, **kw: F.broadcast_to(fn(x, **kw), (1,))


def _ref_full(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda x, **kw: np.reshape(fn(x, **kw), (1,))


def _logsumexp(x: np.ndarray, axis: object = None, keepdims: bool = False) -> np.ndarray:
    return np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))


SPECS = [
    OpSpec("sum_all", _full(F.sum), _ref_full(np.sum), [(3, 4)]),
    OpSpec("sum_axis", F.sum, np.sum, [(3, 4)], kwargs={"axis": 1}),
    OpSpec("sum_axes_keepdims", F.sum, np.sum, [(2, 3, 4)], kwargs={"axis": (0, 2), "keepdims": True}),
    OpSpec("sum_negative_axis", F.sum, np.sum, [(2, 3, 4)], kwargs={"axis": -2}),
    OpSpec("sum_dim_alias", lambda x: F.sum(x, dim=0, keepdim=True), lambda x: x.sum(0, keepdims=True), [(3, 4)]),
    OpSpec("sum_method", lambda x: x.sum(1), lambda x: x.sum(1), [(3, 4)]),
    OpSpec("mean_all", _full(F.mean), _ref_full(np.mean), [(3, 4)]),
    OpSpec("mean_axes", F.mean, np.mean, [(2, 3, 4)], kwargs={"axis": (1, 2)}),
    OpSpec("mean_dim_keepdim", lambda x: x.mean(dim=-1, keepdim=True), lambda x: x.mean(-1, keepdims=True), [(3, 4)]),
    OpSpec("var_default_unbiased", _full(F.var), _ref_full(lambda x: np.var(x, ddof=1)), [(3, 4)]),
    OpSpec("var_axis", F.var, lambda x, axis: np.var(x, axis=axis, ddof=1), [(3, 4)], kwargs={"axis": 0}),
    OpSpec("var_correction0", lambda x: F.var(x, 1, correction=0), lambda x: np.var(x, 1), [(3, 4)]),
    OpSpec("var_ddof_keepdims", lambda x: F.var(x, 1, True, ddof=2), lambda x: np.var(x, 1, ddof=2, keepdims=True), [(3, 5)]),
    OpSpec("var_unbiased_false", lambda x: x.var(dim=0, unbiased=False), lambda x: np.var(x, 0), [(4, 3)]),
    OpSpec("std_default", _full(F.std), _ref_full(lambda x: np.std(x, ddof=1)), [(3, 4)]),
    OpSpec("std_axis", lambda x: F.std(x, dim=1, keepdim=True), lambda x: np.std(x, 1, ddof=1, keepdims=True), [(3, 4)]),
    OpSpec("max_all", _full(F.max), _ref_full(np.max), [(3, 4)]),
    OpSpec("max_axis", F.max, np.max, [(2, 3, 4)], kwargs={"axis": 1}),
    OpSpec("max_dim_keepdim", lambda x: x.max(dim=-1, keepdim=True), lambda x: x.max(-1, keepdims=True), [(3, 4)]),
    OpSpec("min_all", _full(F.min), _ref_full(np.min), [(3, 4)]),
    OpSpec("min_axes", F.min, np.min, [(2, 3, 4)], kwargs={"axis": (0, 2)}),
    OpSpec("logsumexp_all", _full(F.logsumexp), _ref_full(_logsumexp), [(3, 4)]),
    OpSpec("logsumexp_axis", F.logsumexp, _logsumexp, [(2, 3, 4)], kwargs={"axis": -1}),
    OpSpec("logsumexp_keepdims", F.logsumexp, _logsumexp, [(3, 4)], kwargs={"axis": 0, "keepdims": True}),
    OpSpec("prod_all", _full(F.prod), _ref_full(np.prod), [(2, 3)], domain=_away_from_zero),
    OpSpec("prod_axis", F.prod, np.prod, [(3, 4)], kwargs={"axis": 1}, domain=_away_from_zero),
    OpSpec("prod_keepdims", lambda x: x.prod(dim=0, keepdim=True), lambda x: x.prod(0, keepdims=True), [(3, 4)], domain=POSITIVE),
    OpSpec("argmax_all", F.argmax, np.argmax, [(3, 4)], grad=False),
    OpSpec("argmax_axis", F.argmax, np.argmax, [(3, 4)], kwargs={"axis": 1}, grad=False),
    OpSpec("argmin_dim_keepdim", lambda x: x.argmin(dim=0, keepdim=True), lambda x: x.argmin(0, keepdims=True), [(3, 4)], grad=False),
    OpSpec("any_axis", lambda x: F.any(x > 1.0, axis=1), lambda x: (x > 1.0).any(axis=1), [(4, 3)], grad=False),
    OpSpec("all_keepdim", lambda x: (x > -1.5).all(dim=0, keepdim=True), lambda x: (x > -1.5).all(0, keepdims=True), [(4, 3)], grad=False),
]  # fmt: skip


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_reduce(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


# ---- semantics ------------------------------------------------------------------------


def test_max_gradient_is_split_among_ties(device: str) -> None:
    x = labkit.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], requires_grad=True, device=device)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    y = labkit.tensor([2.0, -1.0, -1.0, 5.0], requires_grad=True, device=device)
    F.min(y).backward()
    np.testing.assert_allclose(y.grad.numpy(), [0.0, 0.5, 0.5, 0.0])


def test_integer_and_bool_sums_give_int64_without_grad() -> None:
    x = labkit.tensor([[1, 2], [3, 4]], dtype=labkit.int32)
    s = x.sum(0)
    assert s.dtype == labkit.int64 and s.tolist() == [4, 6] and not s.requires_grad
    b = labkit.tensor([True, False, True])
    assert b.sum().dtype == labkit.int64 and b.sum().item() == 2
    assert labkit.tensor([1, 2, 3]).mean().dtype == labkit.float32


def test_sum_dtype_argument_casts_first() -> None:
    x = labkit.ones(3, requires_grad=True)
    y = x.sum(dtype=labkit.float64)
    assert y.dtype == labkit.float64
    y.backward()
    assert x.grad.dtype == labkit.float32


def test_float32_stays_float32() -> None:
    x = labkit.randn(3, 4, requires_grad=True)
    outs = [x.sum(), x.mean(1), x.var(), x.std(0), x.max(), x.min(1), F.logsumexp(x, 1), x.prod(0)]
    assert all(o.dtype == labkit.float32 for o in outs)
    sum(o.sum() for o in outs).backward()
    assert x.grad.dtype == labkit.float32


def test_argmax_returns_int64_first_index_and_no_grad() -> None:
    x = labkit.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 7.0]], requires_grad=True)
    i = x.argmax(1)
    assert i.dtype == labkit.int64 and i.tolist() == [1, 0] and not i.requires_grad
    assert x.argmax().item() == 3 and x.argmin().item() == 4
    assert x.argmax(keepdims=True).shape == (1, 1)


def test_empty_axis_tuple_reduces_nothing() -> None:
    x = labkit.randn(2, 3)
    np.testing.assert_allclose(x.sum(axis=()).numpy(), x.numpy())


def test_logsumexp_is_stable() -> None:
    x = labkit.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]], dtype=labkit.float64, requires_grad=True)
    y = F.logsumexp(x, axis=1)
    np.testing.assert_allclose(y.numpy(), [1000.0 + np.log(2.0), -1000.0 + np.log(2.0)])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 2), 0.5))
    ninf = F.logsumexp(labkit.tensor([-np.inf, -np.inf]))
    assert ninf.item() == -np.inf
    big = F.logsumexp(labkit.tensor([3.0e38, 3.0e38]))  # float32: the shift keeps it finite
    assert np.isfinite(big.item())


def test_var_of_constant_has_zero_gradient_and_mean_gradient_is_uniform() -> None:
    x = labkit.ones(4, dtype=labkit.float64, requires_grad=True)
    x.var().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.zeros(4))
    z = labkit.ones(2, 5, requires_grad=True)
    z.mean().backward()
    np.testing.assert_allclose(z.grad.numpy(), np.full((2, 5), 0.1))


# ---- errors ------------------------------------------------------------------------------


def test_bad_axis_names_op_and_axis() -> None:
    x = labkit.ones(2, 3)
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of range for a tensor of 2 dimensions"):
        x.sum(2)
    with pytest.raises(ValueError, match=r"max: axis -3 is out of range"):
        F.max(x, axis=-3)
    with pytest.raises(ValueError, match=r"var: axis 5 is out of range"):
        x.var(dim=5)
    with pytest.raises(ValueError, match=r"argmax: axis 2 is out of range"):
        x.argmax(2)
    with pytest.raises(ValueError, match=r"mean: repeated axis"):
        x.mean((0, 0))


def test_conflicting_aliases_are_rejected() -> None:
    x = labkit.ones(2, 3)
    with pytest.raises(TypeError, match=r"sum: got both axis=0 and dim=1"):
        F.sum(x, 0, dim=1)
    with pytest.raises(TypeError, match=r"var: pass only one of correction=, ddof= and unbiased="):
        F.var(x, correction=1, ddof=0)
    with pytest.raises(ValueError, match=r"std: expected a non-negative correction"):
        F.std(x, correction=-1)
    with pytest.raises(TypeError, match=r"argmin: expected one int axis"):
        F.argmin(x, axis=(0, 1))


def test_empty_max_and_non_tensor_input() -> None:
    with pytest.raises(ValueError, match=r"max: cannot reduce an empty tensor of shape \(0, 3\)"):
        F.max(labkit.zeros(0, 3), axis=0)
    with pytest.raises(TypeError, match=r"mean: expected a Tensor, got list"):
        F.mean([1.0, 2.0])


def test_zero_dim_input_reduces_to_itself() -> None:
    x = labkit.tensor(3.0, dtype=labkit.float64, requires_grad=True)
    for fn in (F.sum, F.mean, F.max, F.logsumexp, F.prod):
        y = fn(x, dim=0) if fn is F.sum else fn(x)
        assert y.shape == () and np.isclose(y.item(), 3.0)
    (g,) = labkit.grad(F.sum(x) * 2.0, x)
    assert g.item() == 2.0
