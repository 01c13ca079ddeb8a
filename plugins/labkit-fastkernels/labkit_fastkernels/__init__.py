"""labkit-fastkernels: faster numpy forwards for two of labkit's hot CNN ops, off until a run selects them.

- ``convgradinput``: the input gradient of ``conv1d``/``conv2d`` as one GEMM per cache-sized
  chunk of images plus the col2im adds, instead of one thin GEMM per kernel offset.
- ``maxpool2d``: strided pooling windows gathered into contiguous arrays first, so the
  comparisons run as vectorised loops instead of strided ones.

Select them with ``backend.kernels: [fastkernels]`` (``labkit train backend=cpu_fast``) or
``with labkit.plugins.use_kernels(["fastkernels"]): ...``. Importing this package is light: the
kernels live in :mod:`labkit_fastkernels.kernels`, imported when first selected.
"""

__version__ = "0.1.0"
