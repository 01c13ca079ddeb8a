"""``Parameter``: a Tensor that a ``Module`` registers as a learnable weight.

A Parameter is a leaf that requires grad by default and shares the array it is
given (no copy), so an initialiser or optimizer that writes ``param.data`` in place
is seen by every holder. Ops on Parameters return plain Tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.core import dtypes
from labkit.core.creation import to_array
from labkit.core.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor registered by ``Module.__setattr__``; ``requires_grad=True`` by default.

    ``data`` may be a Tensor (its array is shared), a backend array (shared), or a
    Python number/list (converted, float32 for floats). ``None`` gives an empty float32
    parameter to be filled later.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            array = np.empty((0,), dtype=dtypes.default_float)
        elif isinstance(data, Tensor):
            array = data.data
        else:
            array = to_array(data)  # backend arrays pass through without a copy
        if requires_grad and array.dtype.kind not in "fc":
            raise TypeError(
                f"Parameter: only float data can require gradients, expected a float dtype, got {array.dtype}"
            )
        self.data = array
        self.creator = None
        self.requires_grad = bool(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
