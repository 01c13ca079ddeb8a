"""Optimizers, learning-rate schedulers and gradient clipping, with PyTorch's names and semantics.

opt = labkit.optim.AdamW(model.parameters(), lr=3e-4)
sched = labkit.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
loss.backward()
labkit.optim.clip_grad_norm_(model.parameters(), 1.0)
opt.step(); opt.zero_grad(); sched.step()
"""

from __future__ import annotations

from labkit.optim import lr_scheduler
from labkit.optim.adagrad import Adagrad
from labkit.optim.adam import Adam, AdamW
from labkit.optim.clip import clip_grad_norm_, clip_grad_value_, grad_norm
from labkit.optim.optimizer import Optimizer
from labkit.optim.rmsprop import RMSprop
from labkit.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "clip_grad_norm_",
    "clip_grad_value_",
    "grad_norm",
    "lr_scheduler",
]
