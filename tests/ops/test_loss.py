"""Losses: values against numpy references (torch semantics), gradients, double backward,
the fused cross-entropy against its composite and against PyTorch, and error messages."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import POSITIVE, REAL, OpSpec, check_op


def _uniform(low: float, high: float) -> Any:
    return lambda rng, shape: rng.uniform(low, high, size=shape)


NEGATIVE = _uniform(-2.0, -0.5)
PROBABILITY = _uniform(0.05, 0.95)


# ---- numpy references ------------------------------------------------------------------


def _reduce(loss: np.ndarray, reduction: str, denominator: float | None = None) -> np.ndarray:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total / (loss.size if denominator is None else denominator) if reduction == "mean" else total


def _nll_ref(
    logp: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> np.ndarray:
    logp = np.moveaxis(logp, 1 if logp.ndim >= 2 else 0, -1)  # classes last
    n_classes = logp.shape[-1]
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    picked = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    w_t = np.where(valid, w[safe], 0.0)
    loss = -(1 - label_smoothing) * w_t * picked
    loss = loss - label_smoothing / n_classes * (logp * w).sum(-1) * valid
    return _reduce(loss, reduction, w_t.sum())


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _ce_ref(x: np.ndarray, target: np.ndarray, **kwargs: Any) -> np.ndarray:
    return _nll_ref(_log_softmax(x, 1 if x.ndim >= 2 else 0), target, **kwargs)


def _bce_ref(x: np.ndarray, t: np.ndarray, weight: Any = None, pos_weight: Any = None, reduction: str = "mean") -> Any:
    log_weight = 1.0 if pos_weight is None else 1 + (pos_weight - 1) * t
    loss = (1 - t) * x + log_weight * np.logaddexp(0, -x)
    return _reduce(loss if weight is None else loss * weight, reduction)


def _smooth_l1_ref(x: np.ndarray, t: np.ndarray, reduction: str = "mean", beta: float = 1.0) -> np.ndarray:
    d = np.abs(x - t)
    return _reduce(np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


RNG = np.random.default_rng(7)
T4 = np.array([0, 3, 1, 4])
T4_IGNORED = np.array([0, -100, 4, 2])
T_SPATIAL = RNG.integers(0, 3, size=(2, 2, 2))
W5 = np.array([0.5, 1.0, 2.0, 1.5, 0.25])

SPECS = [
    OpSpec("cross_entropy", F.cross_entropy, _ce_ref, [(4, 5)], extra=[T4]),
    OpSpec("cross_entropy_sum", F.cross_entropy, _ce_ref, [(4, 5)], extra=[T4], kwargs={"reduction": "sum"}),
    OpSpec("cross_entropy_none", F.cross_entropy, _ce_ref, [(4, 5)], extra=[T4], kwargs={"reduction": "none"}),
    OpSpec("cross_entropy_weight", F.cross_entropy, _ce_ref, [(4, 5)], extra=[T4], kwargs={"weight": W5}),
    OpSpec("cross_entropy_ignore", F.cross_entropy, _ce_ref, [(4, 5)], extra=[T4_IGNORED]),
    OpSpec(
        "cross_entropy_smoothing_weight_ignore",
        F.cross_entropy,
        _ce_ref,
        [(4, 5)],
        extra=[T4_IGNORED],
        kwargs={"weight": W5, "label_smoothing": 0.2},
    ),
    OpSpec(
        "cross_entropy_smoothing_none",
        F.cross_entropy,
        _ce_ref,
        [(4, 5)],
        extra=[T4_IGNORED],
        kwargs={"label_smoothing": 0.1, "reduction": "none"},
    ),
    OpSpec("cross_entropy_spatial", F.cross_entropy, _ce_ref, [(2, 3, 2, 2)], extra=[T_SPATIAL]),
    OpSpec(
        "cross_entropy_spatial_none",
        F.cross_entropy,
        _ce_ref,
        [(2, 3, 2, 2)],
        extra=[T_SPATIAL],
        kwargs={"reduction": "none", "label_smoothing": 0.3},
    ),
    OpSpec("cross_entropy_unbatched", F.cross_entropy, _ce_ref, [(5,)], extra=[np.array(2)]),
    OpSpec("nll_loss", F.nll_loss, _nll_ref, [(4, 5)], extra=[T4]),
    OpSpec("nll_loss_weight_ignore", F.nll_loss, _nll_ref, [(4, 5)], extra=[T4_IGNORED], kwargs={"weight": W5}),
    OpSpec(
        "nll_loss_spatial_none", F.nll_loss, _nll_ref, [(2, 3, 2, 2)], extra=[T_SPATIAL], kwargs={"reduction": "none"}
    ),
    OpSpec("mse_loss", F.mse_loss, lambda x, t: ((x - t) ** 2).mean(), [(3, 4), (3, 4)]),
    OpSpec(
        "mse_loss_sum",
        F.mse_loss,
        lambda x, t, reduction: ((x - t) ** 2).sum(),
        [(5,), (5,)],
        kwargs={"reduction": "sum"},
    ),
    OpSpec("l1_loss", F.l1_loss, lambda x, t: np.abs(x - t).mean(), [(3, 4), (3, 4)], domain=[POSITIVE, NEGATIVE]),
    OpSpec(
        "l1_loss_none",
        F.l1_loss,
        lambda x, t, reduction: np.abs(x - t),
        [(2, 3), (2, 3)],
        domain=[NEGATIVE, POSITIVE],
        kwargs={"reduction": "none"},
    ),
    OpSpec("smooth_l1_loss", F.smooth_l1_loss, _smooth_l1_ref, [(4, 5), (4, 5)], domain=[REAL, _uniform(-0.3, 0.3)]),
    OpSpec(
        "smooth_l1_loss_beta",
        F.smooth_l1_loss,
        _smooth_l1_ref,
        [(4, 5), (4, 5)],
        kwargs={"beta": 0.5, "reduction": "sum"},
    ),
    OpSpec(
        "bce_with_logits", F.binary_cross_entropy_with_logits, _bce_ref, [(3, 4), (3, 4)], domain=[REAL, PROBABILITY]
    ),
    OpSpec(
        "bce_with_logits_weights",
        F.binary_cross_entropy_with_logits,
        _bce_ref,
        [(3, 4), (3, 4)],
        domain=[REAL, PROBABILITY],
        kwargs={"weight": np.array([[0.5], [1.0], [2.0]]), "pos_weight": np.array([1.0, 2.0, 3.0, 0.5])},
    ),
    OpSpec(
        "bce_with_logits_none",
        F.binary_cross_entropy_with_logits,
        _bce_ref,
        [(6,), (6,)],
        domain=[REAL, PROBABILITY],
        kwargs={"reduction": "none", "pos_weight": np.array([2.0])},
    ),
]


def _at_least_1d(spec: OpSpec) -> OpSpec:
    """A reduced (0-d) loss as shape (1,): labkit.testing's finite differences turn a perturbed
    0-d cotangent into a numpy scalar, so gradgradcheck cannot run on 0-d outputs directly."""
    fn, ref = spec.fn, spec.ref

    def fn1(*args: Any, **kwargs: Any) -> Any:
        y = fn(*args, **kwargs)
        return F.reshape(y, (1,)) if y.ndim == 0 else y

    def ref1(*args: Any, **kwargs: Any) -> Any:
        y = np.asarray(ref(*args, **kwargs))
        return y.reshape(1) if y.ndim == 0 else y

    return dataclasses.replace(spec, fn=fn1, ref=ref1)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_loss(spec: OpSpec, device: str) -> None:
    check_op(_at_least_1d(spec), device)


# ---- the fused cross-entropy ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"weight": W5}, {"reduction": "sum"}, {"reduction": "none", "weight": W5}, {"ignore_index": 3}],
    ids=["mean", "weight", "sum", "none_weight", "ignore_index"],
)
def test_cross_entropy_matches_composite(kwargs: dict[str, Any], device: str) -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 5))
    target = labkit.tensor(T4, device=device)
    x0 = labkit.tensor(logits, requires_grad=True, device=device)
    x1 = labkit.tensor(logits, requires_grad=True, device=device)
    y0 = F.cross_entropy(x0, target, **kwargs)
    y1 = F.nll_loss(F.log_softmax(x1, axis=1), target, **kwargs)
    np.testing.assert_allclose(y0.numpy(), y1.numpy(), rtol=1e-12, atol=1e-12)
    gy = labkit.tensor(rng.standard_normal(y0.shape), device=device)
    (g0,) = labkit.grad(y0, [x0], gy, create_graph=True)
    (g1,) = labkit.grad(y1, [x1], gy, create_graph=True)
    np.testing.assert_allclose(g0.numpy(), g1.numpy(), rtol=1e-10, atol=1e-12)
    v = labkit.tensor(rng.standard_normal((4, 5)), device=device)
    (h0,) = labkit.grad((g0 * v).sum(), [x0])
    (h1,) = labkit.grad((g1 * v).sum(), [x1])
    np.testing.assert_allclose(h0.numpy(), h1.numpy(), rtol=1e-10, atol=1e-12)


TORCH_CASES = [
    ((4, 5), T4, {}),
    ((4, 5), T4_IGNORED, {"weight": W5, "label_smoothing": 0.15}),
    ((4, 5), T4_IGNORED, {"weight": W5, "reduction": "sum", "label_smoothing": 0.3}),
    ((4, 5), T4, {"reduction": "none", "label_smoothing": 0.1}),
    ((2, 3, 2, 2), T_SPATIAL, {"weight": W5[:3], "ignore_index": 1}),
    ((5,), np.array(4), {"label_smoothing": 0.2}),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"{c[0]}-{sorted(c[2])}")
def test_cross_entropy_matches_torch(case: tuple[Any, ...]) -> None:
    torch = pytest.importorskip("torch")
    shape, target, kwargs = case
    logits = np.random.default_rng(5).standard_normal(shape)
    x = labkit.tensor(logits, requires_grad=True)
    y = F.cross_entropy(x, labkit.tensor(target), **kwargs)
    tx = torch.tensor(logits, requires_grad=True)
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    ty = torch.nn.functional.cross_entropy(tx, torch.tensor(target), **tkw)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_bce_with_logits_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((3, 4)) * 4, rng.uniform(0, 1, (3, 4))
    pos_weight = np.array([1.0, 2.0, 3.0, 0.5])
    lx, lt = labkit.tensor(x, requires_grad=True), labkit.tensor(t, requires_grad=True)
    tx, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    y = F.binary_cross_entropy_with_logits(lx, lt, pos_weight=pos_weight)
    ty = torch.nn.functional.binary_cross_entropy_with_logits(tx, tt, pos_weight=torch.tensor(pos_weight))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    y.backward()
    ty.backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(lt.grad.numpy(), tt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_cross_entropy_is_stable_and_keeps_float32() -> None:
    x = labkit.tensor([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 0.0]], requires_grad=True)
    y = F.cross_entropy(x, labkit.tensor([0, 2]))
    assert y.dtype == labkit.float32 and np.isfinite(y.item())
    np.testing.assert_allclose(y.item(), 25000.0, rtol=1e-6)
    y.backward()
    assert x.grad.dtype == labkit.float32 and np.isfinite(x.grad.numpy()).all()


def test_bce_with_logits_is_stable() -> None:
    x = labkit.tensor([-1000.0, 1000.0, 0.0], requires_grad=True)
    y = F.binary_cross_entropy_with_logits(x, labkit.tensor([1.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(y.numpy(), [1000.0, 1000.0, np.log(2.0)], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, 1.0, -0.5], rtol=1e-6)


def test_weighted_mean_divides_by_weights_of_counted_targets() -> None:
    logp = labkit.tensor(np.log(np.full((3, 2), 0.5)))
    weight = labkit.tensor([1.0, 3.0], dtype=labkit.float64)
    y = F.nll_loss(logp, labkit.tensor([0, 1, -100]), weight=weight)
    np.testing.assert_allclose(y.item(), np.log(2.0) * (1 + 3) / (1 + 3))
    y = F.nll_loss(logp * labkit.tensor([[1.0, 2.0]], dtype=labkit.float64), labkit.tensor([0, 1, 1]), weight=weight)
    np.testing.assert_allclose(y.item(), np.log(2.0) * (1 + 2 * 3 + 2 * 3) / 7)


# ---- errors ---------------------------------------------------------------------------------


def test_target_out_of_range_names_value_and_classes() -> None:
    x = labkit.randn(3, 4)
    with pytest.raises(ValueError, match=r"cross_entropy: target 7 is out of range for 4 classes"):
        F.cross_entropy(x, labkit.tensor([0, 7, 1]))
    with pytest.raises(ValueError, match=r"nll_loss: target -1 is out of range for 4 classes"):
        F.nll_loss(x, labkit.tensor([0, -1, 1]))


def test_float_target_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cross_entropy: expected integer class-index targets, got dtype float32"):
        F.cross_entropy(labkit.randn(3, 4), labkit.randn(3))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(
        ValueError, match=r"cross_entropy: target of shape \(2,\) does not match input of shape \(3, 4\)"
    ):
        F.cross_entropy(labkit.randn(3, 4), labkit.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"mse_loss: input of shape \(3, 4\) and target of shape \(4,\) differ"):
        F.mse_loss(labkit.randn(3, 4), labkit.randn(4))
    with pytest.raises(ValueError, match=r"cross_entropy: weight must have shape \(4,\)"):
        F.cross_entropy(labkit.randn(3, 4), labkit.tensor([0, 1, 2]), weight=labkit.ones(3))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(3,\) cannot broadcast"):
        F.binary_cross_entropy_with_logits(labkit.randn(2, 4), labkit.rand(2, 4), pos_weight=labkit.ones(3))


def test_bad_reduction_lists_valid_ones() -> None:
    for fn, args in [
        (F.cross_entropy, (labkit.randn(3, 4), labkit.tensor([0, 1, 2]))),
        (F.mse_loss, (labkit.randn(3), labkit.randn(3))),
        (F.binary_cross_entropy_with_logits, (labkit.randn(3), labkit.rand(3))),
    ]:
        with pytest.raises(ValueError, match=r"reduction must be one of 'mean', 'sum', 'none', got 'avg'"):
            fn(*args, reduction="avg")


def test_label_smoothing_range() -> None:
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(labkit.randn(3, 4), labkit.tensor([0, 1, 2]), label_smoothing=1.5)
