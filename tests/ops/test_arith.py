"""Arithmetic ops: forward, gradients, double backward, broadcasting and dtype rules."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import POSITIVE, OpSpec, check_op

SPECS = [
    OpSpec("add", F.add, np.add, [(3, 4), (3, 4)]),
    OpSpec("add_broadcast", F.add, np.add, [(2, 3, 4), (4,)]),
    OpSpec("add_broadcast_both", F.add, np.add, [(3, 1), (1, 4)]),
    OpSpec("sub", F.sub, np.subtract, [(2, 3), (2, 1)]),
    OpSpec("mul", F.mul, np.multiply, [(3, 4), (3, 4)]),
    OpSpec("mul_broadcast", F.mul, np.multiply, [(2, 3, 4), (3, 1)]),
    OpSpec("div", F.div, np.divide, [(3, 4), (3, 4)], domain=[POSITIVE, POSITIVE]),
    OpSpec("div_broadcast", F.div, np.divide, [(3, 4), (4,)], domain=[POSITIVE, POSITIVE]),
    OpSpec("pow_tensor", F.pow, np.power, [(3, 4), (3, 4)], domain=[POSITIVE, POSITIVE]),
    OpSpec("pow_scalar", lambda x: x**3, lambda x: x**3, [(3, 4)]),
    OpSpec("pow_half", lambda x: x**0.5, np.sqrt, [(5,)], domain=POSITIVE),
    OpSpec("neg", F.neg, np.negative, [(3, 4)]),
    OpSpec("rsub_scalar", lambda x: 2.0 - x, lambda x: 2.0 - x, [(3,)]),
    OpSpec("rdiv_scalar", lambda x: 2.0 / x, lambda x: 2.0 / x, [(3,)], domain=POSITIVE),
    OpSpec("add_scalar", lambda x: x + 1.5, lambda x: x + 1.5, [(3, 2)]),
    OpSpec("sub_scalar", lambda x: x - 3, lambda x: x - 3, [(3,)]),
    OpSpec("mul_scalar", lambda x: 2.5 * x, lambda x: 2.5 * x, [(2, 3)]),
    OpSpec("div_scalar", lambda x: x / 4.0, lambda x: x / 4.0, [(2, 3)]),
    OpSpec("rpow_scalar", lambda x: 2.0**x, lambda x: 2.0**x, [(3,)]),
    OpSpec("expand", lambda x: F.expand(x, 2, -1, 4) * 1.0, lambda x: np.broadcast_to(x, (2, 3, 4)) * 1.0, [(3, 1)]),
    OpSpec(
        "sum_to", lambda x: F.sum_to(x, (3, 1)), lambda x: x.sum(axis=(0, 2), keepdims=False).reshape(3, 1), [(2, 3, 4)]
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_arith(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


def test_python_scalars_do_not_upcast_float32() -> None:
    x = labkit.ones(3)
    for y in (x + 1.5, 2.5 * x, x / 3, x - 1, x**2, 2.0**x, 1.0 - x, 1.0 / x):
        assert y.dtype == labkit.float32


def test_int_tensor_with_float_scalar_becomes_default_float() -> None:
    x = labkit.tensor([1, 2, 3])
    assert x.dtype == labkit.int64
    assert (x * 0.5).dtype == labkit.float32
    assert (x + 1).dtype == labkit.int64
    assert (x / 2).dtype == labkit.float32


def test_mixed_float_dtypes_give_each_input_its_own_grad_dtype() -> None:
    a = labkit.ones(3, requires_grad=True)
    b = labkit.ones(3, dtype=labkit.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == labkit.float32 and b.grad.dtype == labkit.float64


def test_broadcast_error_names_op_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"add: shapes \(3, 4\) and \(5,\) cannot be broadcast"):
        labkit.ones(3, 4) + labkit.ones(5)


def test_numpy_array_on_the_left_defers_to_tensor() -> None:
    x = labkit.ones(3, requires_grad=True)
    y = np.ones(3, dtype=np.float32) * x
    assert isinstance(y, labkit.Tensor)
