"""The entry point labkit's plugin discovery calls (``labkit.plugins`` group, name ``fastkernels``).

Light on purpose: every kernel is named by a ``"module:attr"`` string and imported only when a
run selects the plugin's kernels, so discovering the plugin imports nothing but this file.
"""

from __future__ import annotations

from typing import Any

#: built-in Function name -> (kernel, its OpSpec rows), all for numpy arrays
KERNELS = {
    "convgradinput": ("labkit_fastkernels.kernels:conv_grad_input_forward", "labkit_fastkernels.checks:conv_specs"),
    "maxpool2d": ("labkit_fastkernels.kernels:max_pool2d_forward", "labkit_fastkernels.checks:pool_specs"),
}


def register(registry: Any) -> None:
    """Register the numpy kernels (stored as ``fastkernels.<function>@numpy``, inactive until selected)."""
    for function, (forward, specs) in KERNELS.items():
        registry.kernel(function, "numpy", forward, specs=specs)
