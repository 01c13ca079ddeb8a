"""The op plugin API: a differentiable op written outside labkit, kernels, the registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.backends.registry import array_module
from labkit.plugins.registry import Registry
from labkit.testing import GradcheckError, gradcheck, gradgradcheck


class Cube(labkit.Function):
    """y = x**3, the way a plugin author writes it (forward on arrays, backward with ops)."""

    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return x * x * x

    def backward(self, gy: labkit.Tensor) -> labkit.Tensor:
        (x,) = self.saved_tensors
        return gy * 3.0 * x * x


class ScaledSoftsign(labkit.Function):
    """Two inputs, a saved output, and a parameter from __init__."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def forward(self, x: Any, a: Any) -> Any:
        xp = array_module(x)
        y = self.scale * x / (1 + xp.abs(x) * a)
        self.save_for_backward(x, a)
        return y

    def backward(self, gy: labkit.Tensor) -> tuple[labkit.Tensor, labkit.Tensor]:
        x, a = self.saved_tensors
        d = 1.0 + F.abs(x) * a
        gx = gy * self.scale / (d * d)
        ga = -gy * self.scale * x * F.abs(x) / (d * d)
        return gx, F.sum_to(ga, a.shape)


def test_external_op_passes_gradcheck_and_double_backward() -> None:
    x = labkit.tensor(np.linspace(-1, 1, 7), requires_grad=True)
    gradcheck(lambda t: Cube()(t), [x])
    gradgradcheck(lambda t: Cube()(t), [x])
    assert Cube.apply(labkit.tensor([2.0])).item() == 8.0


def test_external_op_with_params_and_broadcast_input() -> None:
    x = labkit.tensor(np.linspace(-2, 2, 6).reshape(2, 3), requires_grad=True)
    a = labkit.tensor([0.7], dtype="float64", requires_grad=True)
    gradcheck(lambda t, s: ScaledSoftsign(1.5)(t, s), [x, a])


def test_gradcheck_catches_a_wrong_backward_and_names_the_element() -> None:
    class WrongCube(Cube):
        def backward(self, gy: labkit.Tensor) -> labkit.Tensor:
            (x,) = self.saved_tensors
            return gy * 2.0 * x * x

    x = labkit.tensor([0.5, 1.0, 1.5], dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 \(3,\), element \(0,\): analytic gradient"):
        gradcheck(lambda t: WrongCube()(t), [x])


def test_gradcheck_insists_on_float64() -> None:
    with pytest.raises(TypeError, match="input 0 is float32; finite differences need float64"):
        gradcheck(lambda t: Cube()(t), [labkit.ones(2, requires_grad=True)])


def test_gradgradcheck_catches_a_non_differentiable_backward() -> None:
    class DetachedCube(Cube):
        def backward(self, gy: labkit.Tensor) -> labkit.Tensor:
            (x,) = self.saved_tensors
            return gy * labkit.tensor(3.0 * x.numpy() ** 2)  # raw arrays: second derivative lost

    x = labkit.tensor([0.5, 1.0], dtype="float64", requires_grad=True)
    gradcheck(lambda t: DetachedCube()(t), [x])
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda t: DetachedCube()(t), [x])


def test_backend_kernel_replaces_forward_without_editing_the_op() -> None:
    calls = []

    def fast_cube(fn: Cube, x: Any) -> Any:
        calls.append(x.shape)
        fn.save_for_backward(x)
        return x**3

    Cube.register_kernel("numpy", fast_cube)
    try:
        x = labkit.tensor([2.0], requires_grad=True)
        y = Cube()(x)
        y.sum().backward()
        assert calls == [(1,)] and y.item() == 8.0 and x.grad.item() == 12.0
    finally:
        Cube._kernels.pop("numpy")


def test_registry_kernel_for_a_builtin_op() -> None:
    reg = labkit.registry
    assert "tanh" in reg.names("op") and reg.owner("op", "tanh") == "labkit"
    assert "tanh" in reg.names("function")
    seen = []

    def tanh_kernel(fn: Any, x: Any) -> Any:
        seen.append(True)
        y = np.tanh(x)
        fn.save_for_backward(y)
        return y

    reg.register_kernel("tanh", "numpy", tanh_kernel, owner="test_plugin")
    try:
        x = labkit.tensor([0.3], requires_grad=True)
        F.tanh(x).sum().backward()
        assert seen and abs(x.grad.item() - (1 - np.tanh(0.3) ** 2)) < 1e-6
    finally:
        reg.unregister("kernel", "tanh@numpy")
    F.tanh(labkit.ones(1))
    assert len(seen) == 1


def test_registry_duplicate_names_both_owners() -> None:
    reg = Registry(group="labkit.tests.no_plugins")  # no installed plugins join the listing
    reg.register("op", "swish", lambda x: x, owner="plugin_a")
    with pytest.raises(ValueError, match="op 'swish' is already registered by 'plugin_a'; 'plugin_b' cannot"):
        reg.register("op", "swish", lambda x: x, owner="plugin_b")
    with pytest.raises(KeyError, match="no op named 'nope'; registered ops: swish"):
        reg.get("op", "nope")
    with pytest.raises(ValueError, match="unknown kind 'layerz'"):
        reg.register("layerz", "x", object())


def test_every_tensor_method_is_bound() -> None:
    assert F.MISSING_METHODS == []


def test_non_tensor_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cube: expected Tensor inputs, got ndarray"):
        Cube()(np.ones(2))


def test_worked_example_in_docs_runs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "custom_op.py"
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "passes gradcheck and gradgradcheck; owner: myplugin" in out.stdout
