"""The backward engine: accumulation, freeing, retain/create graph, labkit.grad, hooks, depth."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing import gradcheck


def test_leaf_gradients_accumulate_across_backward_calls() -> None:
    x = labkit.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1, 2, 3]) + 3)


def test_shared_subexpression_gets_summed_gradient() -> None:
    x = labkit.tensor([0.5, -1.0], dtype="float64", requires_grad=True)
    y = x * x
    z = y * y + y  # x^4 + x^2
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy() ** 3 + 2 * x.numpy())


def test_backward_twice_without_retain_graph_says_so() -> None:
    x = labkit.ones(3, requires_grad=True)
    loss = (x * 2.0).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time.*retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward() -> None:
    x = labkit.ones(3, requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0, 4.0])


def test_saved_arrays_and_graph_are_freed_after_backward() -> None:
    x = labkit.randn(100, 100, requires_grad=True)
    h = x * 2.0
    ref = weakref.ref(h)
    loss = (F.tanh(h) * h).sum()
    del h
    gc.collect()
    assert ref() is not None  # the graph still needs h
    loss.backward()
    gc.collect()
    assert ref() is None  # released by backward, while loss is still alive
    assert loss.creator._saved is None


def test_non_scalar_backward_needs_a_gradient() -> None:
    x = labkit.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="only for a tensor with one element"):
        (x * 2.0).backward()
    (x * 2.0).backward(labkit.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_backward_gradient_shape_is_checked() -> None:
    x = labkit.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"grad has shape \(2,\), expected the output's shape \(3,\)"):
        (x * 2.0).backward(labkit.ones(2))


def test_backward_of_tensor_without_grad_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        labkit.ones(3).sum().backward()


def test_no_grad_records_nothing_and_works_as_decorator() -> None:
    x = labkit.ones(3, requires_grad=True)
    with labkit.no_grad():
        y = x * 2.0
        with labkit.enable_grad():
            z = x * 2.0
    assert not y.requires_grad and y.creator is None
    assert z.requires_grad

    @labkit.no_grad()
    def f(t: labkit.Tensor) -> labkit.Tensor:
        return t * 2.0

    assert not f(x).requires_grad
    assert labkit.is_grad_enabled()


def test_grad_returns_without_touching_dot_grad() -> None:
    x = labkit.tensor([1.0, 2.0], requires_grad=True)
    y = labkit.tensor([3.0, 4.0], requires_grad=True)
    (gx,) = labkit.grad((x * y).sum(), x)
    np.testing.assert_allclose(gx.numpy(), [3.0, 4.0])
    assert x.grad is None and y.grad is None


def test_grad_of_an_intermediate_tensor() -> None:
    x = labkit.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    loss = (h * h).sum()
    (gh,) = labkit.grad(loss, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())


def test_grad_unused_input_is_reported_or_none() -> None:
    x = labkit.ones(2, requires_grad=True)
    u = labkit.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="input 1 was not used"):
        labkit.grad((x * 2.0).sum(), [x, u])
    gx, gu = labkit.grad((x * 2.0).sum(), [x, u], allow_unused=True)
    assert gu is None and gx is not None


def test_second_derivative_closed_form() -> None:
    x = labkit.tensor([0.3, -0.7, 1.1], dtype="float64", requires_grad=True)
    y = (x**3).sum()
    (g,) = labkit.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    (h,) = labkit.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())


def test_hessian_vector_product_matches_closed_form() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    a = a + a.T
    x = labkit.tensor(rng.standard_normal(4), requires_grad=True)
    v = labkit.tensor(rng.standard_normal(4))
    amat = labkit.tensor(a)
    f = (x * F.matmul(amat, x)).sum() * 0.5  # Hessian = A
    (g,) = labkit.grad(f, x, create_graph=True)
    (hv,) = labkit.grad((g * v).sum(), x)
    np.testing.assert_allclose(hv.numpy(), a @ v.numpy(), rtol=1e-10)


def test_gradient_penalty_trains_through_create_graph() -> None:
    w = labkit.tensor([[0.5, -1.0], [2.0, 0.1]], dtype="float64", requires_grad=True)
    x = labkit.tensor([[1.0, 2.0]], dtype="float64", requires_grad=True)
    out = F.tanh(F.matmul(x, w)).sum()
    (gx,) = labkit.grad(out, x, create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()

    def penalty_of(w_: labkit.Tensor) -> labkit.Tensor:
        o = F.tanh(F.matmul(x, w_)).sum()
        (g,) = labkit.grad(o, x, create_graph=True)
        return (g * g).sum()

    gradcheck(penalty_of, [labkit.tensor(w.numpy(), requires_grad=True)])
    assert w.grad is not None


def test_hooks_see_and_replace_gradients() -> None:
    x = labkit.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = x.register_hook(lambda g: g * 10.0)
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * h.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 10 * 2 * 2 * h.numpy())
    handle.remove()
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_retain_grad_keeps_intermediate_gradient() -> None:
    x = labkit.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


def test_leaf_grads_never_share_memory() -> None:
    # a + b hands the same gradient array to both leaves; in-place edits of one
    # (as clip_grad_norm_ does) must not change the other
    a = labkit.ones(3, requires_grad=True)
    b = labkit.ones(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 0.0
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0, 1.0])


def test_backward_through_100k_nodes_without_recursion() -> None:
    x = labkit.tensor([1.0], dtype="float64", requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.00001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.00001**100_000], rtol=1e-9)


def test_detach_cuts_the_graph() -> None:
    x = labkit.ones(2, requires_grad=True)
    y = (x * 2.0).detach()
    assert not y.requires_grad and y.creator is None
    z = (x * y).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_requires_grad_only_for_floats() -> None:
    with pytest.raises(TypeError, match="only float tensors can require gradients"):
        labkit.tensor([1, 2], requires_grad=True)


def test_anomaly_mode_names_the_op() -> None:
    x = labkit.tensor([0.0, 1.0], requires_grad=True)
    with labkit.detect_anomaly():
        with pytest.raises(FloatingPointError, match="log forward produced NaN or inf"):
            with np.errstate(divide="ignore"):
                F.log(x)
    with np.errstate(divide="ignore"):
        y = F.log(x)  # outside anomaly mode: no check
    assert not np.isfinite(y.numpy()).all()


def test_anomaly_mode_checks_backward_too() -> None:
    x = labkit.tensor([0.0, 1.0], requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = F.sqrt(x)
        with labkit.detect_anomaly():
            with pytest.raises(FloatingPointError, match="backward produced NaN or inf"):
                y.sum().backward()
