"""Fused backward ops (one array pass instead of several ops) against their composites."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
from labkit.ops.activation import MaskGrad, SigmoidGrad, TanhGrad
from labkit.testing import gradcheck, gradgradcheck

COMPOSITES = {
    "tanh_grad": (TanhGrad, lambda y, gy: gy * (1.0 - y * y)),
    "sigmoid_grad": (SigmoidGrad, lambda y, gy: gy * y * (1.0 - y)),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_fused_grad_matches_composite(name: str) -> None:
    fused_cls, composite = COMPOSITES[name]
    rng = np.random.default_rng(0)
    y0, gy0 = rng.uniform(-0.9, 0.9, (3, 4)), rng.standard_normal((3, 4))
    y = labkit.tensor(y0, requires_grad=True)
    gy = labkit.tensor(gy0, requires_grad=True)
    fused = fused_cls()(y, gy)
    ref = composite(y, gy)
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), rtol=1e-12)
    v = labkit.tensor(rng.standard_normal((3, 4)))
    g_fused = labkit.grad((fused * v).sum(), [y, gy])
    g_ref = labkit.grad((ref * v).sum(), [y, gy])
    for a, b in zip(g_fused, g_ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    gradcheck(lambda a, b: fused_cls()(a, b), [y, gy])
    gradgradcheck(lambda a, b: fused_cls()(a, b), [y, gy])


def test_mask_grad_matches_multiplying_by_the_mask() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((4, 5)) > 0.5
    gy = labkit.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    out = MaskGrad(mask)(gy)
    np.testing.assert_array_equal(out.numpy(), gy.numpy() * mask)
    gradcheck(lambda t: MaskGrad(mask)(t), [gy])
    gradgradcheck(lambda t: MaskGrad(mask)(t), [gy])
