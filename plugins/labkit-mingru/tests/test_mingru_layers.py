"""MinGRU and MinGRUBlock: the paper's equations, shapes, carried state, gradients in float64, errors."""

from __future__ import annotations

import numpy as np
import pytest
from labkit_mingru.checks import block_example, mingru_example
from labkit_mingru.layers import MinGRU, MinGRUBlock

import labkit
from labkit.testing import gradcheck, gradgradcheck


def _numpy_mingru(layer: MinGRU, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """Feng et al.'s minGRU, step by step: z = sigmoid(W_z x + b_z), h~ = W_h x + b_h, h = (1 - z) h + z h~."""
    w, b, hidden = layer.proj.weight.numpy(), layer.proj.bias.numpy(), layer.hidden_size
    h, out = h0, []
    for t in range(x.shape[1]):
        pre = x[:, t] @ w.T + b
        z = 1 / (1 + np.exp(-pre[:, :hidden]))
        h = (1 - z) * h + z * pre[:, hidden:]
        out.append(h)
    return np.stack(out, axis=1)


def test_mingru_follows_the_paper_step_by_step():
    g = labkit.Generator(0)
    layer = MinGRU(3, 5, generator=g).double()
    x = labkit.randn(4, 9, 3, generator=g, dtype="float64")
    h0 = labkit.randn(4, 5, generator=g, dtype="float64")
    out, last = layer(x, h0)
    assert out.shape == (4, 9, 5) and last.shape == (4, 5)
    expected = _numpy_mingru(layer, x.numpy(), h0.numpy())
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(last.numpy(), out.numpy()[:, -1])
    zero_start, _ = layer(x)  # h0=None means zeros
    np.testing.assert_allclose(zero_start.numpy(), _numpy_mingru(layer, x.numpy(), np.zeros((4, 5))), atol=1e-12)


def test_mingru_state_continues_a_sequence():
    g = labkit.Generator(1)
    layer = MinGRU(3, 4, generator=g)
    x = labkit.randn(2, 10, 3, generator=g)
    full, last = layer(x)
    first, state = layer(x[:, :6])
    second, last2 = layer(x[:, 6:], state)
    np.testing.assert_allclose(np.concatenate([first.numpy(), second.numpy()], axis=1), full.numpy(), atol=1e-6)
    np.testing.assert_allclose(last2.numpy(), last.numpy(), atol=1e-6)
    assert full.dtype == np.float32


@pytest.mark.parametrize("example", [mingru_example, block_example], ids=lambda f: f.__name__)
def test_gradients_wrt_inputs_and_parameters(example):
    module, inputs = example(labkit.Generator(2))
    params = list(module.parameters())
    assert params and all(p.dtype == np.float64 for p in params)
    n = len(inputs)

    def fn(*args):
        out, last = module(*args[:n])
        return out, last

    assert gradcheck(fn, [*inputs, *params])
    assert gradgradcheck(fn, list(inputs))


def test_block_shapes_residual_and_dropout_modes():
    g = labkit.Generator(3)
    block = MinGRUBlock(6, expansion=2, dropout=0.5, generator=g)
    x = labkit.randn(3, 7, 6, generator=g)
    y, last = block(x)
    assert y.shape == (3, 7, 6) and last.shape == (3, 6)
    block.eval()
    y1, _ = block(x)
    y2, _ = block(x)
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())  # no dropout in eval mode
    # with the MLP's last layer and the minGRU's candidate rows zeroed, the block is the identity
    # (h~ = 0 and h0 = 0 keep every state at 0), so the output is the input
    block.fc2.weight.data[...] = 0
    block.fc2.bias.data[...] = 0
    block.rnn.proj.weight.data[6:] = 0
    block.rnn.proj.bias.data[6:] = 0
    y3, _ = block(x)
    np.testing.assert_allclose(y3.numpy(), x.numpy(), atol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh", "silu"])
def test_block_activations(activation):
    block = MinGRUBlock(4, expansion=1, activation=activation, generator=labkit.Generator(4))
    y, _ = block(labkit.randn(2, 3, 4, generator=labkit.Generator(5)))
    assert y.shape == (2, 3, 4) and np.isfinite(y.numpy()).all()
    assert f"activation={activation}" in repr(block)


def test_errors_name_the_layer_and_what_was_expected():
    layer = MinGRU(3, 4)
    with pytest.raises(
        ValueError, match=r"MinGRU: expected a float input \(B, T, 3\) \(batch_first\), got float32 \(2, 5, 2\)"
    ):
        layer(labkit.randn(2, 5, 2))
    with pytest.raises(ValueError, match=r"min_gru_scan: expected h0 float32 \(2, 4\)"):
        layer(labkit.randn(2, 5, 3), labkit.zeros(3, 4))
    with pytest.raises(TypeError, match=r"MinGRU: expected an int hidden_size, got float 4.0"):
        MinGRU(3, 4.0)
    with pytest.raises(ValueError, match=r"MinGRUBlock: expected dropout in \[0, 1\), got 1.5"):
        MinGRUBlock(4, dropout=1.5)
    with pytest.raises(ValueError, match=r"MinGRUBlock: unknown activation 'tanh'; expected one of"):
        MinGRUBlock(4, activation="tanh")
