"""The kernels this plugin registers, by the built-in ``Function`` whose forward each replaces.

Each is ``forward(fn_self, *arrays)`` on numpy arrays, returns what the built-in returns and
saves for backward exactly what the built-in saves (the built-in backward runs on it).

- ``convgradinput`` -> ``conv_grad_input_forward``: one GEMM per cache-sized chunk of images
  for every kernel offset, instead of one thin GEMM per offset over the whole batch;
- ``maxpool2d`` -> ``max_pool2d_forward``: the strided column views of the windows copied to
  contiguous arrays first, so the comparisons run as vectorised loops.
"""

from labkit_fastkernels.conv import conv_grad_input_forward
from labkit_fastkernels.pool import max_pool2d_forward

__all__ = ["conv_grad_input_forward", "max_pool2d_forward"]
