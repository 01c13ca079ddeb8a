"""Initialisers: fans, gains, distributions, orthogonality, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

import labkit
from labkit.nn import Parameter, init


def big(*shape: int, dtype: str = "float64") -> Parameter:
    return Parameter(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize(
    ("shape", "fans"),
    [((5, 3), (3, 5)), ((8, 4, 3, 3), (36, 72)), ((6, 2, 5), (10, 30)), ((2, 3, 2, 2, 2), (24, 16))],
)
def test_fan_in_and_fan_out_follow_pytorch(shape: tuple[int, ...], fans: tuple[int, int]) -> None:
    assert init._calculate_fan_in_and_fan_out(big(*shape)) == fans


def test_fans_need_two_dimensions() -> None:
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(4,\)"):
        init.xavier_uniform_(big(4))


def test_calculate_gain() -> None:
    assert init.calculate_gain("linear") == init.calculate_gain("conv2d") == init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'; expected one of"):
        init.calculate_gain("swish")


def test_calculate_gain_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.3)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


def test_uniform_and_normal_distributions() -> None:
    gen = labkit.Generator(0)
    t = init.uniform_(big(400, 500), -2.0, 3.0, generator=gen)
    assert t.data.min() >= -2.0 and t.data.max() < 3.0
    assert t.data.mean() == pytest.approx(0.5, abs=0.01) and t.data.std() == pytest.approx(5 / math.sqrt(12), rel=0.01)
    t = init.normal_(big(400, 500), mean=1.0, std=0.5, generator=gen)
    assert t.data.mean() == pytest.approx(1.0, abs=0.005) and t.data.std() == pytest.approx(0.5, rel=0.01)
    t = init.trunc_normal_(big(400, 500), std=1.0, a=-1.0, b=1.5, generator=gen)
    assert t.data.min() >= -1.0 and t.data.max() <= 1.5 and t.data.std() < 0.8
    with pytest.raises(ValueError, match="expected std >= 0, got -1"):
        init.normal_(big(2, 2), std=-1)


def test_constants_fill_in_place_and_keep_dtype() -> None:
    t = Parameter(np.empty((3, 4), np.float16))
    array = t.data
    assert init.constant_(t, 0.25) is t and t.data is array and t.dtype == np.float16
    assert (t.data == np.float16(0.25)).all()
    assert not init.zeros_(t).data.any() and (init.ones_(t).data == 1).all()
    counts = labkit.zeros(3, dtype="int64")
    assert (init.constant_(counts, 7).data == 7).all()
    np.testing.assert_array_equal(init.eye_(big(2, 3)).data, np.eye(2, 3))


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
def test_xavier(shape: tuple[int, ...]) -> None:
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(big(*shape))
    gen = labkit.Generator(1)
    bound = 2.0 * math.sqrt(6 / (fan_in + fan_out))
    t = init.xavier_uniform_(big(*shape), gain=2.0, generator=gen)
    assert np.abs(t.data).max() <= bound and np.abs(t.data).max() > 0.99 * bound
    assert t.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    t = init.xavier_normal_(big(*shape), generator=gen)
    assert t.data.std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
def test_kaiming(shape: tuple[int, ...]) -> None:
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(big(*shape))
    gen = labkit.Generator(2)
    bound = math.sqrt(6 / fan_in)  # relu gain sqrt(2) * sqrt(3 / fan_in)
    t = init.kaiming_uniform_(big(*shape), nonlinearity="relu", generator=gen)
    assert np.abs(t.data).max() <= bound and np.abs(t.data).max() > 0.99 * bound
    t = init.kaiming_normal_(big(*shape), mode="fan_out", nonlinearity="relu", generator=gen)
    assert t.data.std() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    # PyTorch's Linear default: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    t = init.kaiming_uniform_(big(*shape), a=math.sqrt(5), generator=gen)
    assert np.abs(t.data).max() <= 1 / math.sqrt(fan_in) and np.abs(t.data).max() > 0.99 / math.sqrt(fan_in)
    with pytest.raises(ValueError, match="mode: expected 'fan_in' or 'fan_out', got 'fan'"):
        init.kaiming_normal_(big(2, 2), mode="fan")


@pytest.mark.parametrize("shape", [(4, 8), (8, 4), (6, 2, 3, 3), (5, 5)])
def test_orthogonal(shape: tuple[int, ...]) -> None:
    t = init.orthogonal_(big(*shape), gain=1.5, generator=labkit.Generator(3))
    w = t.data.reshape(shape[0], -1) / 1.5
    small = min(w.shape)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-10)


def test_orthogonal_needs_two_dimensions() -> None:
    with pytest.raises(ValueError, match="orthogonal_: expected a tensor with at least 2 dimensions"):
        init.orthogonal_(big(3))


@pytest.mark.parametrize(
    "fill",
    [
        lambda t, g: init.uniform_(t, generator=g),
        lambda t, g: init.normal_(t, generator=g),
        lambda t, g: init.xavier_uniform_(t, generator=g),
        lambda t, g: init.kaiming_normal_(t, generator=g),
        lambda t, g: init.orthogonal_(t, generator=g),
    ],
)
def test_same_seed_same_weights_and_float32_matches_float64(fill: object) -> None:
    a = fill(big(6, 5), labkit.Generator(42))
    b = fill(big(6, 5), labkit.Generator(42))
    c = fill(big(6, 5), labkit.Generator(43))
    d = fill(big(6, 5, dtype="float32"), labkit.Generator(42))
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d.data, a.data.astype(np.float32))


def test_default_generator_is_used_when_none_is_given() -> None:
    labkit.manual_seed(7)
    a = init.normal_(big(3, 3)).numpy().copy()
    labkit.manual_seed(7)
    np.testing.assert_array_equal(init.normal_(big(3, 3)).data, a)
    np.testing.assert_array_equal(init.normal_(big(3, 3), generator=labkit.Generator(7)).data, a)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="uniform_: expected a Tensor, got ndarray"):
        init.uniform_(np.zeros(3))
    with pytest.raises(TypeError, match="normal_: expected a floating-point tensor, got int64"):
        init.normal_(labkit.zeros(3, dtype="int64"))
    with pytest.raises(TypeError, match=r"generator: expected labkit.Generator"):
        init.uniform_(big(2), generator=3)


def test_same_seed_gives_the_same_weights_on_every_device(device: str) -> None:
    host = init.kaiming_uniform_(big(4, 3, dtype="float32"), generator=labkit.Generator(9))
    t = labkit.zeros(4, 3, device=device)
    array = t.data
    init.kaiming_uniform_(t, generator=labkit.Generator(9))
    assert t.data is array and t.device == device
    np.testing.assert_array_equal(t.numpy(), host.data)
