"""``register_post_accumulate_grad_hook``: called once per backward, as soon as a leaf's .grad is final."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.core.tensor import POST_ACCUMULATE_HOOKS


def params(rng: np.random.Generator) -> tuple[labkit.Tensor, labkit.Tensor, labkit.Tensor]:
    w1 = labkit.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    w2 = labkit.tensor(rng.normal(size=(4, 2)), requires_grad=True)
    shared = labkit.tensor(rng.normal(size=(2,)), requires_grad=True)
    return w1, w2, shared


def loss_of(x: np.ndarray, w1: labkit.Tensor, w2: labkit.Tensor, shared: labkit.Tensor) -> labkit.Tensor:
    h = F.tanh(labkit.tensor(x) @ w1)
    y = h @ w2 + shared  # ``shared`` is used twice: its gradient has two contributions
    return (y * y).sum() + (shared * shared).sum()


def test_hooks_see_the_final_gradient_once_and_the_last_layer_first() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    w1, w2, shared = params(rng)
    reference = [g.numpy().copy() for g in labkit.grad(loss_of(x, w1, w2, shared), [w1, w2, shared])]

    events: list[tuple[str, np.ndarray, bool]] = []
    handles = [
        t.register_post_accumulate_grad_hook(lambda t, n=n: events.append((n, t.grad.numpy().copy(), w1.grad is None)))
        for n, t in (("w1", w1), ("w2", w2), ("shared", shared))
    ]
    loss_of(x, w1, w2, shared).backward()
    assert sorted(name for name, _, _ in events) == ["shared", "w1", "w2"]  # once each
    seen = {name: grad for name, grad, _ in events}
    for name, ref in zip(("w1", "w2", "shared"), reference):
        np.testing.assert_allclose(seen[name], ref, rtol=1e-12)  # the whole sum, not a part
    w1_not_yet = {name: pending for name, _, pending in events}
    assert w1_not_yet["w2"] and w1_not_yet["shared"]  # fired while backward had not reached the first layer
    for handle in handles:
        handle.remove()


def test_accumulation_no_gradient_labkit_grad_and_remove() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    w1, w2, shared = params(rng)
    unused = labkit.tensor(np.ones(3), requires_grad=True)
    calls: list[str] = []
    live = POST_ACCUMULATE_HOOKS.live
    handle = w2.register_post_accumulate_grad_hook(lambda t: calls.append(f"w2 {t.grad.numpy().sum():.12f}"))
    unused.register_post_accumulate_grad_hook(lambda t: calls.append("unused"))
    assert POST_ACCUMULATE_HOOKS.live == live + 2

    loss_of(x, w1, w2, shared).backward()
    first = w2.grad.numpy().copy()
    loss_of(x, w1, w2, shared).backward()  # accumulates: the hook sees the sum of both passes
    assert calls == [f"w2 {first.sum():.12f}", f"w2 {2 * first.sum():.12f}"]
    labkit.grad(loss_of(x, w1, w2, shared), [w2])  # fills no .grad: no hook
    assert len(calls) == 2 and "unused" not in calls

    handle.remove()
    handle.remove()  # twice is harmless
    assert POST_ACCUMULATE_HOOKS.live == live + 1
    loss_of(x, w1, w2, shared).backward()
    assert len(calls) == 2


def test_gradients_are_the_same_with_hooks_and_with_create_graph() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 3))
    plain = params(np.random.default_rng(3))
    hooked = params(np.random.default_rng(3))
    loss_of(x, *plain).backward()
    grads: list[bool] = []
    for t in hooked:
        t.register_post_accumulate_grad_hook(lambda t: grads.append(t.grad.requires_grad))
    loss_of(x, *hooked).backward()
    for a, b in zip(plain, hooked):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    for t in hooked:
        t.grad = None
    loss_of(x, *hooked).backward(create_graph=True)
    assert grads[3:] == [True, True, True]  # with create_graph the final gradient is differentiable


def test_only_leaves_that_require_grad() -> None:
    a = labkit.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="expected a leaf tensor that requires grad, got the output of"):
        (a * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="got one that does not require grad"):
        labkit.tensor(np.ones(2)).register_post_accumulate_grad_hook(lambda t: None)
