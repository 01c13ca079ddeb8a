"""Regressions of the backward engine found by plugin authors."""

from __future__ import annotations

import numpy as np

import labkit
from labkit.testing import gradcheck


def test_grad_of_a_subset_leaves_no_stale_sums_for_the_next_pass():
    # labkit.grad(..., [a]) prunes the path to b; b's slice still got a gradient sum that
    # used to survive and be added into the next backward pass
    a = labkit.tensor([0.5, 2.0], requires_grad=True)
    b = labkit.tensor([3.0, -1.0], requires_grad=True)
    (ga,) = labkit.grad((a * b[0:1]).sum(), [a], create_graph=True)  # ga = [b0, b0]
    (gb,) = labkit.grad((ga * ga).sum(), [b])  # d/db0 of 2 b0^2 = 4 b0
    np.testing.assert_allclose(gb.numpy(), [12.0, 0.0])


def test_gradient_sums_of_zero_dim_tensors_stay_arrays():
    b = labkit.tensor([1.0, 2.0], requires_grad=True)
    s = b.sum()
    (s * s + s).backward()  # two paths into s: their 0-d sums must stay arrays
    np.testing.assert_allclose(b.grad.numpy(), [7.0, 7.0])
    x = labkit.tensor(3.0, requires_grad=True)
    (x * x + x * x).backward()
    (x * x).backward()  # accumulating into a 0-d .grad
    assert isinstance(x.grad.data, np.ndarray) and x.grad.shape == ()
    assert x.grad.item() == 18.0
    assert gradcheck(
        lambda t: (t.sum() * t.sum()).sum(), [labkit.tensor([0.3, -0.2], dtype="float64", requires_grad=True)]
    )
