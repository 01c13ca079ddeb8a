"""labkit: define-by-run autograd on numpy and cupy, with PyTorch-like names.

import labkit
import labkit.functional as F

x = labkit.randn(4, 3, requires_grad=True)
loss = F.relu(x @ w).sum()
loss.backward()
"""

from __future__ import annotations

from labkit import functional, io, nn, optim
from labkit.backends import Device, backends
from labkit.backends.device import Device as device  # noqa: N813 - torch.device
from labkit.core.autograd import grad
from labkit.core.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from labkit.core.dtypes import bool_, float16, float32, float64, int8, int16, int32, int64, uint8
from labkit.core.function import Function
from labkit.core.mode import detect_anomaly, enable_grad, is_anomaly_enabled, is_grad_enabled, no_grad, set_grad_enabled
from labkit.core.random import Generator, default_generator, manual_seed
from labkit.core.tensor import Tensor
from labkit.io import load, save
from labkit.plugins.registry import registry

__version__ = "0.1.1"


def cuda_is_available() -> bool:
    """Whether cupy imports and sees at least one NVIDIA GPU (never raises)."""
    try:
        return backends.for_device("cuda").is_available()
    except Exception:
        return False


__all__ = [
    "Device",
    "Function",
    "Generator",
    "Tensor",
    "arange",
    "as_tensor",
    "bool_",
    "cuda_is_available",
    "default_generator",
    "io",
    "load",
    "nn",
    "optim",
    "save",
    "detect_anomaly",
    "device",
    "empty",
    "empty_like",
    "enable_grad",
    "eye",
    "float16",
    "float32",
    "float64",
    "from_dlpack",
    "from_numpy",
    "full",
    "full_like",
    "functional",
    "grad",
    "int8",
    "int16",
    "int32",
    "int64",
    "is_anomaly_enabled",
    "is_grad_enabled",
    "linspace",
    "manual_seed",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "registry",
    "set_grad_enabled",
    "tensor",
    "uint8",
    "zeros",
    "zeros_like",
]
