"""``OpSpec`` rows that run each kernel's ``Function``, with plain numpy references.

The conformance kit (``labkit plugins check fastkernels``) runs every row twice, with the
kernel selected and without, and compares outputs and input gradients; the plugin's tests
also run them through ``labkit.testing.opspec.check_op`` (forward vs the reference below,
gradcheck, gradgradcheck) with the kernel active. Rows cover the fast paths and the
fallbacks: groups, strides, dilation, padding, conv1d, overlapping, padded and stride-1 pools.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import labkit.functional as F
from labkit.plugins import registry
from labkit.testing.opspec import OpSpec


@contextmanager
def only_kernel(function: str, forward: Callable[..., Any] | None) -> Iterator[list[int]]:
    """Inside the block, the built-in Function ``function`` runs ``forward`` on numpy arrays (None:
    its built-in forward), whatever was selected before; yields the kernel's call count (a list of one)."""
    cls = registry.get("function", function)
    calls = [0]
    previous = cls._kernels.get("numpy")
    if forward is None:
        cls._kernels.pop("numpy", None)
    else:

        def counted(fn: Any, *arrays: Any) -> Any:
            calls[0] += 1
            return forward(fn, *arrays)

        cls.register_kernel("numpy", counted)
    try:
        yield calls
    finally:
        if previous is None:
            cls._kernels.pop("numpy", None)
        else:
            cls._kernels["numpy"] = previous


# ---- numpy references ------------------------------------------------------------------------


def conv2d_ref(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> np.ndarray:
    """Direct cross-correlation: x (N, C, H, W), w (O, C/G, KH, KW), b (O,) -> (N, O, OH, OW)."""
    n, _, h, wd = x.shape
    o, c_g, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, o, oh, ow), dtype=x.dtype)
    o_g = o // groups
    for g in range(groups):
        xs = xp[:, g * c_g : (g + 1) * c_g]
        ws = w[g * o_g : (g + 1) * o_g]
        for i in range(kh):
            for j in range(kw):
                top, left = i * dilation, j * dilation
                patch = xs[
                    :, :, top : top + stride * (oh - 1) + 1 : stride, left : left + stride * (ow - 1) + 1 : stride
                ]
                y[:, g * o_g : (g + 1) * o_g] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def conv1d_ref(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> np.ndarray:
    """conv1d as conv2d over a padded (N, C, 1, L): x (N, C, L), w (O, C/G, K) -> (N, O, OL)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    return conv2d_ref(xp[:, :, None], w[:, :, None], b, stride, 0, dilation, groups)[:, :, 0]


def max_pool2d_ref(x: np.ndarray, kernel_size: int, stride: int | None = None, padding: int = 0) -> np.ndarray:
    """Max over windows, -inf padding: x (N, C, H, W) -> (N, C, OH, OW)."""
    stride = kernel_size if stride is None else stride
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=-np.inf)
    oh = (xp.shape[2] - kernel_size) // stride + 1
    ow = (xp.shape[3] - kernel_size) // stride + 1
    y = np.full((*x.shape[:2], oh, ow), -np.inf, dtype=x.dtype)
    for i in range(kernel_size):
        for j in range(kernel_size):
            y = np.maximum(y, xp[:, :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride])
    return y


# ---- the rows the kit and the tests run --------------------------------------------------------


def conv_specs() -> list[OpSpec]:
    """conv2d/conv1d rows: the input gradient goes through ``ConvGradInput`` (the kernel)."""
    return [
        OpSpec("conv2d 3x3 pad 1", F.conv2d, conv2d_ref, [(2, 3, 6, 5), (4, 3, 3, 3), (4,)], {"padding": 1}),
        OpSpec("conv2d no bias", F.conv2d, conv2d_ref, [(2, 2, 5, 5), (3, 2, 3, 3)]),
        OpSpec(
            "conv2d stride 2", F.conv2d, conv2d_ref, [(2, 2, 7, 6), (3, 2, 3, 3), (3,)], {"stride": 2, "padding": 1}
        ),
        OpSpec("conv2d dilation 2", F.conv2d, conv2d_ref, [(1, 2, 7, 7), (2, 2, 3, 3)], {"dilation": 2, "padding": 2}),
        OpSpec(
            "conv2d groups 2", F.conv2d, conv2d_ref, [(2, 4, 5, 5), (6, 2, 3, 3), (6,)], {"groups": 2, "padding": 1}
        ),
        OpSpec("conv2d 1x1", F.conv2d, conv2d_ref, [(2, 3, 4, 4), (5, 3, 1, 1)]),
        OpSpec("conv1d k3 pad 1", F.conv1d, conv1d_ref, [(2, 3, 9), (4, 3, 3), (4,)], {"padding": 1}),
    ]


def pool_specs() -> list[OpSpec]:
    """max_pool2d rows: 2x2 and 3x3 pools, overlapping, padded, odd sizes, and the stride-1 fallback."""
    return [
        OpSpec("max_pool2d 2", F.max_pool2d, max_pool2d_ref, [(2, 3, 6, 8)], {"kernel_size": 2}),
        OpSpec("max_pool2d 2 odd size", F.max_pool2d, max_pool2d_ref, [(2, 2, 7, 5)], {"kernel_size": 2}),
        OpSpec("max_pool2d 3", F.max_pool2d, max_pool2d_ref, [(1, 2, 9, 9)], {"kernel_size": 3}),
        OpSpec("max_pool2d 3 stride 2", F.max_pool2d, max_pool2d_ref, [(2, 2, 7, 7)], {"kernel_size": 3, "stride": 2}),
        OpSpec("max_pool2d 3 pad 1", F.max_pool2d, max_pool2d_ref, [(2, 2, 6, 6)], {"kernel_size": 3, "padding": 1}),
        OpSpec("max_pool2d 2 stride 1", F.max_pool2d, max_pool2d_ref, [(1, 2, 5, 5)], {"kernel_size": 2, "stride": 1}),
    ]
