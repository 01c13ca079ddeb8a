"""Loss modules and ``sequence_cross_entropy``: PyTorch parity, float64 gradients, buffers, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import labkit
from labkit.nn.loss import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
    sequence_cross_entropy,
)
from labkit.nn.module import Module
from labkit.testing import gradcheck

TOL = {"rtol": 1e-5, "atol": 1e-5}
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 1.5], np.float32)


def _class_targets(rng: np.random.Generator, shape: tuple[int, ...], ignore: bool = False) -> np.ndarray:
    t = rng.integers(0, 4, size=shape)
    if ignore:
        t.reshape(-1)[::3] = -1  # every third target ignored
    return t


def _ce_inputs(shape: tuple[int, ...], ignore: bool = False) -> Callable[[np.random.Generator], tuple[Any, Any]]:
    def make(rng: np.random.Generator) -> tuple[Any, Any]:
        x = rng.standard_normal(shape).astype(np.float32)
        return x, _class_targets(rng, (shape[0], *shape[2:]) if len(shape) > 1 else (), ignore)

    return make


def _nll_inputs(shape: tuple[int, ...], ignore: bool = False) -> Callable[[np.random.Generator], tuple[Any, Any]]:
    def make(rng: np.random.Generator) -> tuple[Any, Any]:
        x, t = _ce_inputs(shape, ignore)(rng)
        logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        return logp.astype(np.float32), t

    return make


def _pair_inputs(shape: tuple[int, ...], probs: bool = False) -> Callable[[np.random.Generator], tuple[Any, Any]]:
    def make(rng: np.random.Generator) -> tuple[Any, Any]:
        x = (rng.standard_normal(shape) * 2).astype(np.float32)
        t = rng.uniform(0, 1, shape) if probs else rng.standard_normal(shape) * 2
        return x, t.astype(np.float32)

    return make


# (id, labkit module, torch module from torch.nn, inputs)
CASES: list[
    tuple[str, Callable[[], Module], Callable[[Any], Any], Callable[[np.random.Generator], tuple[Any, Any]]]
] = [
    ("ce", lambda: CrossEntropyLoss(), lambda nn: nn.CrossEntropyLoss(), _ce_inputs((5, 4))),
    (
        "ce_weight_ignore_sum",
        lambda: CrossEntropyLoss(weight=CLASS_WEIGHT, ignore_index=-1, reduction="sum"),
        lambda nn: nn.CrossEntropyLoss(weight=_t(CLASS_WEIGHT), ignore_index=-1, reduction="sum"),
        _ce_inputs((6, 4), ignore=True),
    ),
    (
        "ce_spatial_weight_mean",
        lambda: CrossEntropyLoss(weight=CLASS_WEIGHT, ignore_index=-1),
        lambda nn: nn.CrossEntropyLoss(weight=_t(CLASS_WEIGHT), ignore_index=-1),
        _ce_inputs((2, 4, 3, 2), ignore=True),
    ),
    (
        "ce_smoothing_none",
        lambda: CrossEntropyLoss(label_smoothing=0.2, reduction="none"),
        lambda nn: nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none"),
        _ce_inputs((3, 4, 5)),
    ),
    (
        "ce_smoothing_weight",
        lambda: CrossEntropyLoss(weight=CLASS_WEIGHT, label_smoothing=0.1),
        lambda nn: nn.CrossEntropyLoss(weight=_t(CLASS_WEIGHT), label_smoothing=0.1),
        _ce_inputs((5, 4)),
    ),
    ("ce_unbatched", lambda: CrossEntropyLoss(), lambda nn: nn.CrossEntropyLoss(), _ce_inputs((4,))),
    ("nll", lambda: NLLLoss(), lambda nn: nn.NLLLoss(), _nll_inputs((5, 4))),
    (
        "nll_weight_ignore_none",
        lambda: NLLLoss(weight=CLASS_WEIGHT, ignore_index=-1, reduction="none"),
        lambda nn: nn.NLLLoss(weight=_t(CLASS_WEIGHT), ignore_index=-1, reduction="none"),
        _nll_inputs((2, 4, 3), ignore=True),
    ),
    ("mse", lambda: MSELoss(), lambda nn: nn.MSELoss(), _pair_inputs((3, 4))),
    ("mse_sum", lambda: MSELoss(reduction="sum"), lambda nn: nn.MSELoss(reduction="sum"), _pair_inputs((2, 3, 2))),
    ("l1", lambda: L1Loss(), lambda nn: nn.L1Loss(), _pair_inputs((3, 4))),
    ("l1_none", lambda: L1Loss(reduction="none"), lambda nn: nn.L1Loss(reduction="none"), _pair_inputs((5,))),
    ("smooth_l1", lambda: SmoothL1Loss(), lambda nn: nn.SmoothL1Loss(), _pair_inputs((4, 5))),
    (
        "smooth_l1_beta",
        lambda: SmoothL1Loss(beta=0.5, reduction="sum"),
        lambda nn: nn.SmoothL1Loss(beta=0.5, reduction="sum"),
        _pair_inputs((4, 5)),
    ),
    ("bce", lambda: BCEWithLogitsLoss(), lambda nn: nn.BCEWithLogitsLoss(), _pair_inputs((4, 3), probs=True)),
    (
        "bce_weights",
        lambda: BCEWithLogitsLoss(weight=np.array([1.0, 0.5, 2.0]), pos_weight=np.array([3.0, 1.0, 0.5])),
        lambda nn: nn.BCEWithLogitsLoss(weight=_t([1.0, 0.5, 2.0]), pos_weight=_t([3.0, 1.0, 0.5])),
        _pair_inputs((4, 3), probs=True),
    ),
    (
        "bce_pos_weight_none",
        lambda: BCEWithLogitsLoss(pos_weight=np.array([2.0]), reduction="none"),
        lambda nn: nn.BCEWithLogitsLoss(pos_weight=_t([2.0]), reduction="none"),
        _pair_inputs((2, 3, 1), probs=True),
    ),
]
IDS = [c[0] for c in CASES]


def _t(values: Any) -> Any:
    import torch

    return torch.tensor(np.asarray(values, np.float32))


def _is_class_loss(module: Module) -> bool:
    return isinstance(module, (CrossEntropyLoss, NLLLoss))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(case: tuple[Any, ...]) -> None:
    torch = pytest.importorskip("torch")
    _, make, torch_make, inputs = case
    rng = np.random.default_rng(0)
    x, target = inputs(rng)
    module, tmodule = make(), torch_make(torch.nn)
    lx = labkit.tensor(x, requires_grad=True)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    # regression targets also get gradients (BCE's target is differentiable in both libraries)
    floating = target.dtype.kind == "f"
    lt = labkit.tensor(target, requires_grad=floating)
    tt = torch.from_numpy(np.array(target)).requires_grad_(floating)
    y, ty = module(lx, lt), tmodule(tx, tt)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **TOL)
    cotangent = rng.standard_normal(y.shape).astype(np.float32)
    (y * labkit.tensor(cotangent)).sum().backward()
    (ty * torch.from_numpy(cotangent)).sum().backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), **TOL)
    if floating:
        np.testing.assert_allclose(lt.grad.numpy(), tt.grad.numpy(), **TOL)
    assert sorted(module.state_dict()) == sorted(tmodule.state_dict())  # weight / pos_weight buffers


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case: tuple[Any, ...]) -> None:
    _, make, _, inputs = case
    x, target = inputs(np.random.default_rng(1))
    module = make().double()
    lx = labkit.tensor(x.astype(np.float64), requires_grad=True)
    if target.dtype.kind == "f":
        # away from smooth_l1's and l1's kinks at |x - t| = beta or 0, where differences are one-sided
        lt = labkit.tensor(target.astype(np.float64), requires_grad=not isinstance(module, (L1Loss, SmoothL1Loss)))
        assert gradcheck(module, [lx, lt], name=case[0])
    else:
        assert gradcheck(lambda a: module(a, labkit.tensor(target)), [lx], name=case[0])


# ---- sequence_cross_entropy ---------------------------------------------------------------------


def test_sequence_cross_entropy_equals_class_axis_one_layout() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5, 4)).astype(np.float32)  # (B, T, C)
    targets = rng.integers(0, 4, size=(2, 5))
    targets[1, 3:] = 0  # padding token id 0, ignored
    ref = CrossEntropyLoss(ignore_index=0)(
        labkit.tensor(np.ascontiguousarray(logits.transpose(0, 2, 1))), labkit.tensor(targets)
    )  # (B, C, T)
    lx = labkit.tensor(logits, requires_grad=True)
    loss = sequence_cross_entropy(lx, labkit.tensor(targets), ignore_index=0)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.numpy(), ref.numpy(), rtol=1e-6)
    per_token = sequence_cross_entropy(labkit.tensor(logits), targets, ignore_index=0, reduction="none")
    assert per_token.shape == (2, 5)
    assert np.all(per_token.numpy()[1, 3:] == 0) and np.all(per_token.numpy()[targets != 0] > 0)
    np.testing.assert_allclose(per_token.numpy().sum() / (targets != 0).sum(), loss.numpy(), rtol=1e-6)
    loss.backward()
    assert lx.grad.shape == (2, 5, 4) and np.all(lx.grad.numpy()[1, 3:] == 0)


def test_sequence_cross_entropy_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 4, 6)).astype(np.float32)
    targets = rng.integers(0, 6, size=(3, 4))
    lx = labkit.tensor(logits, requires_grad=True)
    tx = torch.from_numpy(logits.copy()).requires_grad_(True)
    loss = sequence_cross_entropy(lx, targets, label_smoothing=0.1)
    tloss = torch.nn.functional.cross_entropy(
        tx.reshape(-1, 6), torch.from_numpy(targets).reshape(-1), label_smoothing=0.1
    )
    np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), **TOL)
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), **TOL)


def test_sequence_cross_entropy_gradcheck() -> None:
    rng = np.random.default_rng(2)
    logits = labkit.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    targets = rng.integers(0, 4, size=(2, 3))
    assert gradcheck(lambda x: sequence_cross_entropy(x, targets, weight=CLASS_WEIGHT), [logits])


@pytest.mark.parametrize(
    "logits, targets, match",
    [
        (np.zeros((2, 4), np.float32), np.zeros(2, np.int64), r"sequence_cross_entropy: expected logits \(B, T, C\)"),
        (np.zeros((2, 3, 4), np.float32), np.zeros((3, 2), np.int64), r"expected targets \(2, 3\) to match logits"),
    ],
)
def test_sequence_cross_entropy_errors(logits: np.ndarray, targets: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sequence_cross_entropy(labkit.tensor(logits), targets)


# ---- construction, buffers, errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "size_average, reduce, expected",
    [(None, None, "mean"), (False, None, "sum"), (None, False, "none"), (True, True, "mean"), (False, True, "sum")],
)
def test_legacy_reduction_flags(size_average: bool | None, reduce: bool | None, expected: str) -> None:
    assert MSELoss(size_average=size_average, reduce=reduce).reduction == expected
    assert CrossEntropyLoss(size_average=size_average, reduce=reduce).reduction == expected


def test_weight_is_a_buffer_that_follows_the_module() -> None:
    loss = CrossEntropyLoss(weight=[1, 2, 3, 4])
    assert list(loss.state_dict()) == ["weight"] and loss.weight.dtype == np.float32
    loss.double()
    assert loss.weight.dtype == np.float64
    assert list(CrossEntropyLoss().state_dict()) == []
    bce = BCEWithLogitsLoss(pos_weight=labkit.tensor([2.0]))
    assert list(bce.state_dict()) == ["pos_weight"]


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: MSELoss(reduction="avg"),
            ValueError,
            r"MSELoss: expected reduction to be one of \['mean', 'sum', 'none'\]",
        ),
        (
            lambda: CrossEntropyLoss(label_smoothing=1.5),
            ValueError,
            r"CrossEntropyLoss: expected label_smoothing in \[0, 1\]",
        ),
        (lambda: NLLLoss(weight=np.ones((2, 2))), ValueError, r"NLLLoss: expected a 1-d weight \(C,\)"),
        (lambda: SmoothL1Loss(beta=-1.0), ValueError, r"SmoothL1Loss: expected beta >= 0"),
        (
            lambda: BCEWithLogitsLoss(pos_weight=np.array(["a"])),
            TypeError,
            r"BCEWithLogitsLoss: expected a numeric tensor",
        ),
    ],
)
def test_constructor_errors(make: Callable[[], Module], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_input_errors_name_the_module() -> None:
    x = labkit.zeros(3, 4)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: cross_entropy: target of shape \(4,\)"):
        CrossEntropyLoss()(x, labkit.tensor(np.zeros(4, np.int64)))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: cross_entropy: target 7 is out of range for 4 classes"):
        CrossEntropyLoss()(x, labkit.tensor([0, 7, 1]))
    with pytest.raises(ValueError, match=r"MSELoss: mse_loss: input of shape \(3, 4\) and target of shape \(4,\)"):
        MSELoss()(x, labkit.zeros(4))
    with pytest.raises(TypeError, match=r"NLLLoss: nll_loss: expected integer class-index targets"):
        NLLLoss()(x, labkit.zeros(3))
