"""matmul and linear: numpy semantics, gradients, double backward, the fused linear vs its composite."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.ops.linalg import Linear, MatMul
from labkit.testing.gradcheck import gradcheck, gradgradcheck
from labkit.testing.opspec import OpSpec, check_op


def _t(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _linear_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    y = x @ w.T
    return y if b is None else y + b


SPECS = [
    OpSpec("matmul_2d", F.matmul, np.matmul, [(3, 4), (4, 5)]),
    OpSpec("matmul_batched", F.matmul, np.matmul, [(2, 3, 4), (2, 4, 5)]),
    OpSpec("matmul_broadcast_batch", F.matmul, np.matmul, [(2, 1, 3, 4), (3, 4, 2)]),
    OpSpec("matmul_matrix_by_stack", F.matmul, np.matmul, [(3, 4), (2, 4, 2)]),
    OpSpec("matmul_vector_left", F.matmul, np.matmul, [(4,), (4, 5)]),
    OpSpec("matmul_vector_right", F.matmul, np.matmul, [(3, 4), (4,)]),
    # reshaped to (1,): gradgradcheck cannot perturb a 0-d cotangent (see test_vector_dot_is_0d)
    OpSpec("matmul_vector_dot", lambda a, b: F.reshape(a @ b, (1,)), lambda a, b: (a @ b).reshape(1), [(4,), (4,)]),
    OpSpec("matmul_vector_by_stack", F.matmul, np.matmul, [(4,), (2, 4, 3)]),
    OpSpec("matmul_stack_by_vector", F.matmul, np.matmul, [(2, 3, 4), (4,)]),
    OpSpec("matmul_operator", lambda a, b: a @ b, np.matmul, [(2, 3), (3, 2)]),
    OpSpec("matmul_ta", lambda a, b: MatMul(True, False)(a, b), lambda a, b: _t(a) @ b, [(4, 3), (4, 2)]),
    OpSpec("matmul_tb", lambda a, b: MatMul(False, True)(a, b), lambda a, b: a @ _t(b), [(3, 4), (2, 4)]),
    OpSpec("matmul_ta_tb", lambda a, b: MatMul(True, True)(a, b), lambda a, b: _t(a) @ _t(b), [(2, 4, 3), (2, 4)]),
    OpSpec("linear", F.linear, _linear_ref, [(4, 3), (5, 3), (5,)]),
    OpSpec("linear_no_bias", F.linear, _linear_ref, [(4, 3), (5, 3)]),
    OpSpec("linear_3d", F.linear, _linear_ref, [(2, 3, 4), (5, 4), (5,)]),
    OpSpec("linear_1d", F.linear, _linear_ref, [(3,), (2, 3), (2,)]),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_linalg(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


def _composite(x: labkit.Tensor, w: labkit.Tensor, b: labkit.Tensor) -> labkit.Tensor:
    return F.matmul(x, F.transpose(w, 0, 1)) + b


@pytest.mark.parametrize("x_shape", [(6, 4), (2, 3, 4)])
def test_linear_matches_composite(x_shape: tuple[int, ...], device: str) -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in (x_shape, (3, 4), (3,))]
    fused = [labkit.tensor(a, requires_grad=True, device=device) for a in arrays]
    plain = [labkit.tensor(a, requires_grad=True, device=device) for a in arrays]
    y0, y1 = F.linear(*fused), _composite(*plain)
    np.testing.assert_allclose(y0.numpy(), y1.numpy(), rtol=1e-12, atol=1e-12)
    gy = labkit.tensor(rng.standard_normal(y0.shape), device=device)
    g0 = labkit.grad(y0, fused, gy, create_graph=True)
    g1 = labkit.grad(y1, plain, gy, create_graph=True)
    for a, b in zip(g0, g1, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
    # second order: d/dx of <gW, v> agrees too
    v = labkit.tensor(rng.standard_normal((3, 4)), device=device)
    h0 = labkit.grad((g0[1] * v).sum(), [fused[0]])[0]
    h1 = labkit.grad((g1[1] * v).sum(), [plain[0]])[0]
    np.testing.assert_allclose(h0.numpy(), h1.numpy(), rtol=1e-12, atol=1e-12)


def test_linear_forward_is_one_fused_node() -> None:
    x = labkit.randn(4, 3, requires_grad=True)
    y = F.linear(x, labkit.randn(5, 3), labkit.randn(5))
    assert isinstance(y.creator, Linear)
    assert y.data.flags.c_contiguous


def test_linear_weight_only_gradient() -> None:
    x = labkit.randn(2, 3, 4, dtype=labkit.float64)
    w = labkit.randn(5, 4, dtype=labkit.float64, requires_grad=True)
    assert gradcheck(lambda w: F.linear(x, w), [w])
    assert gradgradcheck(lambda w: F.linear(x, w) ** 2, [w])


def test_float32_stays_float32() -> None:
    x = labkit.randn(4, 3, requires_grad=True)
    w = labkit.randn(5, 3, requires_grad=True)
    y = F.linear(x, w, labkit.randn(5, requires_grad=True))
    y.sum().backward()
    assert y.dtype == labkit.float32 and x.grad.dtype == labkit.float32 and w.grad.dtype == labkit.float32
    assert (x @ w.T).dtype == labkit.float32


def test_ndarray_on_the_left_uses_rmatmul() -> None:
    x = labkit.randn(3, 2, requires_grad=True)
    a = np.arange(6.0).reshape(2, 3)  # float64 array follows the tensor's float32
    y = a @ x
    assert isinstance(y, labkit.Tensor) and y.shape == (2, 2) and y.dtype == labkit.float32
    np.testing.assert_allclose(y.numpy(), a @ x.numpy(), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), a.T @ np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_allclose(F.rmatmul(x, a).numpy(), y.numpy())


def test_vector_dot_is_0d() -> None:
    a = labkit.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = a @ labkit.tensor([4.0, 5.0, 6.0])
    assert y.shape == () and float(y) == 32.0
    y.backward()
    assert a.grad.tolist() == [4.0, 5.0, 6.0]


def test_integer_matmul_forward() -> None:
    a = labkit.tensor([[1, 2], [3, 4]])
    assert (a @ a).tolist() == [[7, 10], [15, 22]]


# ---- errors ----------------------------------------------------------------------------


def test_matmul_shape_error_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 6\) do not align: 4 != 5"):
        F.matmul(labkit.ones(3, 4), labkit.ones(5, 6))
    with pytest.raises(ValueError, match=r"matmul: shapes \(4,\) and \(3,\) do not align: 4 != 3"):
        labkit.ones(4) @ labkit.ones(3)


def test_matmul_batch_and_scalar_errors() -> None:
    with pytest.raises(ValueError, match=r"matmul: batch dimensions of shapes \(2, 3, 4\) and \(3, 4, 5\)"):
        F.matmul(labkit.ones(2, 3, 4), labkit.ones(3, 4, 5))
    with pytest.raises(ValueError, match="matmul: both operands need at least 1 dimension"):
        F.matmul(labkit.ones(()), labkit.ones(3))
    with pytest.raises(TypeError, match="matmul: operands must have the same float dtype, got float32 and float64"):
        F.matmul(labkit.ones(2, 2), labkit.ones(2, 2, dtype=labkit.float64))


def test_linear_errors() -> None:
    x = labkit.ones(4, 3)
    with pytest.raises(ValueError, match=r"linear: input of shape \(4, 3\) does not match weight of shape \(5, 2\)"):
        F.linear(x, labkit.ones(5, 2))
    with pytest.raises(ValueError, match=r"linear: weight must be 2-D"):
        F.linear(x, labkit.ones(3))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(5,\)"):
        F.linear(x, labkit.ones(5, 3), labkit.ones(4))
    with pytest.raises(TypeError, match="linear: input and weight must have the same dtype"):
        F.linear(x, labkit.ones(5, 3, dtype=labkit.float64))
