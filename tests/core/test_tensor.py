"""Tensor creation, dtype rules, conversions, devices and the backend registry."""

from __future__ import annotations

import numpy as np
import pytest

import labkit


def test_default_dtypes_follow_pytorch() -> None:
    assert labkit.tensor([1.0, 2.0]).dtype == labkit.float32
    assert labkit.tensor([1, 2]).dtype == labkit.int64
    assert labkit.tensor([True, False]).dtype == labkit.bool_
    assert labkit.tensor(np.zeros(2)).dtype == labkit.float64  # arrays keep their dtype
    assert labkit.zeros(2, 3).dtype == labkit.float32
    assert labkit.randn(2, dtype="float64").dtype == labkit.float64
    assert labkit.arange(5).dtype == labkit.int64
    assert labkit.arange(0.0, 1.0, 0.25).dtype == labkit.float32


def test_creation_functions_shapes_and_values() -> None:
    assert labkit.zeros((2, 3)).shape == (2, 3)
    assert labkit.ones(4).numpy().sum() == 4
    assert labkit.full((2, 2), 7.0).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    x = labkit.randn(3, 4)
    for like in (labkit.zeros_like, labkit.ones_like, labkit.empty_like, labkit.randn_like):
        y = like(x)
        assert y.shape == x.shape and y.dtype == x.dtype
    assert labkit.eye(3).numpy().trace() == 3
    with pytest.raises(ValueError, match="zeros: expected a shape of non-negative ints"):
        labkit.zeros(-1)


def test_generator_makes_random_tensors_reproducible() -> None:
    a = labkit.randn(5, generator=labkit.Generator(3))
    b = labkit.randn(5, generator=labkit.Generator(3))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    g = labkit.Generator(1)
    state = g.get_state()
    c = labkit.rand(4, generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(c.numpy(), labkit.rand(4, generator=g).numpy())


def test_numpy_round_trip_shares_memory() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = labkit.from_numpy(a)
    a[0, 0] = 42
    assert t.numpy()[0, 0] == 42
    assert np.asarray(t).shape == (2, 3)
    assert labkit.tensor([[1.5]]).item() == 1.5
    with pytest.raises(ValueError, match="item\\(\\): expected a tensor with one element"):
        labkit.ones(2).item()


def test_dlpack_round_trip() -> None:
    t = labkit.arange(0.0, 4.0, 1.0)
    back = labkit.from_dlpack(t)
    np.testing.assert_array_equal(back.numpy(), t.numpy())
    arr = np.from_dlpack(t)
    assert arr.shape == (4,)


def test_properties() -> None:
    x = labkit.ones(2, 3, requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.is_leaf and len(x) == 2
    assert x.device == "cpu" and str(x.device) == "cpu"
    assert x.T.shape == (3, 2)
    assert "requires_grad=True" in repr(x)
    assert x.numel() == 6


def test_dtype_casts_are_differentiable() -> None:
    x = labkit.ones(3, requires_grad=True)
    y = x.double() * 2.0
    assert y.dtype == labkit.float64
    y.sum().backward()
    assert x.grad.dtype == labkit.float32
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_unknown_device_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="no backend serves 'tpu'"):
        labkit.ones(2).to("tpu")
    with pytest.raises(ValueError, match="expected 'TYPE' or 'TYPE:INDEX'"):
        labkit.ones(2, device="cuda:x")


def test_cpu_only_install_never_imports_cupy() -> None:
    import subprocess
    import sys

    code = "import sys, labkit; labkit.ones(2).sum(); print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ops_on_two_devices_name_both() -> None:
    # a fake second backend stands in for a GPU: arrays of another type on device "fake"
    from labkit.backends import backends
    from labkit.backends.device import Device

    class FakeArray(np.ndarray):
        pass

    class FakeBackend:
        name = "fake"
        device_type = "fake"
        xp = np
        array_types = (FakeArray,)

        def device_of(self, array: object) -> Device:
            return Device("fake", 0)

        def asarray(self, data: object, dtype: object, device: Device) -> FakeArray:
            return np.asarray(data, dtype=dtype).view(FakeArray)

        def to_numpy(self, array: np.ndarray) -> np.ndarray:
            return np.asarray(array).view(np.ndarray)

        def is_available(self) -> bool:
            return True

    if "fake" not in backends.names():
        backends.register(FakeBackend())
    a = labkit.ones(3).to("fake")
    assert a.device == "fake:0"
    with pytest.raises(
        ValueError, match="all inputs must be on the same device, got input 0 on cpu, input 1 on fake:0"
    ):
        labkit.ones(3) + a
    b = a.to("cpu")
    assert type(b.data) is np.ndarray


@pytest.mark.gpu
def test_cuda_round_trip(device: str) -> None:
    if device != "cuda":
        pytest.skip("cuda only")
    x = labkit.randn(3, 4, requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda:0"
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy(), rtol=1e-6)
    z = labkit.from_dlpack(y)
    assert z.device == "cuda:0"


def test_reuse_freed_memory_is_accepted_by_glibc_and_validates() -> None:
    import platform

    from labkit.backends.allocator import reuse_freed_memory

    if platform.libc_ver()[0] == "glibc":
        assert reuse_freed_memory() is True
    with pytest.raises(ValueError, match="mmap_threshold must be in"):
        reuse_freed_memory(mmap_threshold=0)
