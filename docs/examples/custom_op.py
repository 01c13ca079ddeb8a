"""A differentiable op written outside labkit: the worked example of docs/writing-ops.md.

Run it: ``python docs/examples/custom_op.py`` (it checks itself with gradcheck).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import labkit
import labkit.functional as F
from labkit.backends.registry import array_module
from labkit.testing import gradcheck, gradgradcheck


class Softsign(labkit.Function):
    """y = x / (1 + |x|), elementwise."""

    def forward(self, x: Any) -> Any:
        xp = array_module(x)  # numpy or cupy: one body for both
        d = 1 + xp.abs(x)
        self.save_for_backward(x)  # only what backward needs
        return x / d

    def backward(self, gy: labkit.Tensor) -> labkit.Tensor:
        (x,) = self.saved_tensors  # the input Tensor itself: double backward works
        d = 1.0 + F.abs(x)
        return gy / (d * d)


def softsign(x: labkit.Tensor) -> labkit.Tensor:
    if not isinstance(x, labkit.Tensor):
        raise TypeError(f"softsign: expected a Tensor, got {type(x).__name__}")
    return Softsign()(x)


if __name__ == "__main__":
    x = labkit.tensor(np.linspace(-3, 3, 11), requires_grad=True)
    gradcheck(softsign, [x])
    gradgradcheck(softsign, [x])
    labkit.registry.register("op", "myplugin.softsign", softsign, owner="myplugin")
    print("softsign passes gradcheck and gradgradcheck; owner:", labkit.registry.owner("op", "myplugin.softsign"))
