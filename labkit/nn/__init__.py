"""``labkit.nn``: modules, parameters, containers and initialisers.

import labkit.nn as nn

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
"""

from __future__ import annotations

from labkit.nn import init
from labkit.nn.containers import ModuleDict, ModuleList, Sequential
from labkit.nn.module import IncompatibleKeys, Module
from labkit.nn.parameter import Parameter

__all__ = ["IncompatibleKeys", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential", "init"]

# ---- layers --------------------------------------------------------------------------
# Layer modules (linear.py, conv.py, norm.py, recurrent.py, attention.py, embedding.py,
# dropout.py, activation.py ...) are imported below, one line each, and added to __all__:
#
#   from labkit.nn.linear import Linear
#   __all__ += ["Linear"]
