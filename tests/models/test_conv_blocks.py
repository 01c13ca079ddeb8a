"""labkit.models.vision.conv_pool_blocks / pooled_size: the conv feature extractor SmallCNN and plugin CNNs share."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn
from labkit.models import SmallCNN
from labkit.models.vision import conv_pool_blocks, pooled_size
from labkit.testing import gradcheck


@pytest.mark.parametrize(
    ("size", "halvings", "expected"),
    [((28, 28), 2, (7, 7)), ((5, 9), 2, (1, 2)), ((10, 12), 0, (10, 12)), ((3, 3), 2, None), ((1, 8), 1, None)],
)
def test_pooled_size_is_repeated_floor_halving(size, halvings, expected):
    assert pooled_size(*size, halvings) == expected


def test_blocks_match_the_composite_of_functional_ops():
    g = labkit.Generator(0)
    blocks = conv_pool_blocks(2, [3, 4], generator=g).double()
    assert [type(m).__name__ for m in blocks] == ["Conv2d", "ReLU", "MaxPool2d"] * 2
    x = labkit.randn(2, 2, 9, 11, generator=g, dtype="float64")
    h = x
    for conv in (blocks[0], blocks[3]):
        h = F.max_pool2d(F.relu(F.conv2d(h, conv.weight, conv.bias, padding=1)), 2)
    out = blocks(x)
    assert out.shape == (2, 4, *pooled_size(9, 11, 2)) and np.allclose(out.numpy(), h.numpy(), rtol=0, atol=1e-12)
    # the block stack is differentiable in float64 (finite differences through conv, relu, pool)
    assert gradcheck(lambda t: blocks(t), [x.detach().requires_grad_(True)])


def test_batch_norm_blocks_drop_the_conv_bias_and_count_parameters():
    blocks = conv_pool_blocks(1, [8, 16], batch_norm=True, generator=labkit.Generator(0))
    assert [type(m).__name__ for m in blocks] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2
    assert blocks[0].bias is None and blocks[4].bias is None
    n_params = sum(p.numpy().size for p in blocks.parameters())
    assert n_params == (1 * 8 * 9 + 2 * 8) + (8 * 16 * 9 + 2 * 16)  # conv weights + batch-norm scale and shift


def test_small_cnn_is_the_blocks_then_the_head_with_the_same_draws():
    model = SmallCNN(3, 5, image_size=[10, 12], channels=[4, 8], batch_norm=True, generator=labkit.Generator(7))
    blocks = conv_pool_blocks(3, (4, 8), batch_norm=True, generator=labkit.Generator(7))
    assert isinstance(model.features, nn.Sequential)
    ours, theirs = model.features.state_dict(), blocks.state_dict()
    assert sorted(ours) == sorted(theirs) and all(np.array_equal(ours[k].numpy(), theirs[k].numpy()) for k in ours)
    assert model.head[1].weight.shape == (model.head[1].weight.shape[0], 8 * 2 * 3)  # 10x12 -> 5x6 -> 2x3
