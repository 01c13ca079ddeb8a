"""Learning-rate schedulers with PyTorch's names: ``labkit.optim.lr_scheduler.CosineAnnealingLR`` ..."""

from labkit.optim.lr_scheduler.base import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
    StepLR,
    warmup,
)
from labkit.optim.lr_scheduler.cyclic import OneCycleLR, ReduceLROnPlateau

__all__ = [
    "CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LinearLR", "MultiStepLR", "OneCycleLR",
    "ReduceLROnPlateau", "SequentialLR", "StepLR", "warmup",
]  # fmt: skip
