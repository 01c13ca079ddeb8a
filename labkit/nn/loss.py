"""Loss modules over ``labkit.functional``'s losses, with PyTorch's constructor arguments.

``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"``; the deprecated
``size_average`` / ``reduce`` flags map onto it as in PyTorch. Class weights and
``pos_weight`` are buffers (``weight``, ``pos_weight``), so ``.to(device)`` moves them
and a ``state_dict`` matches PyTorch's. Errors from the functional op are re-raised
with the module's name in front.

``sequence_cross_entropy`` is the helper for language-model logits laid out
``(B, T, C)``, which ``CrossEntropyLoss`` (class axis 1, like PyTorch) does not take directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import labkit.functional as F
from labkit.core.tensor import Tensor
from labkit.nn.module import Module

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "L1Loss",
    "MSELoss",
    "NLLLoss",
    "SmoothL1Loss",
    "sequence_cross_entropy",
]

REDUCTIONS = ("mean", "sum", "none")


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    """PyTorch's mapping of the deprecated flags: reduce=False -> none, size_average=False -> sum."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _constant(loss: str, name: str, value: Any) -> Tensor | None:
    """A weight given as a Tensor or array-like, as a constant float Tensor (or None)."""
    if value is None:
        return None
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    if np.dtype(dtype).kind not in "iuf":
        raise TypeError(f"{loss}: expected a numeric tensor for {name}, got {dtype}")
    t = value.detach() if isinstance(value, Tensor) else Tensor(value if hasattr(value, "dtype") else np.asarray(value))
    return t if t.dtype.kind == "f" else t.float()


class _Loss(Module):
    """Holds ``reduction``; ``_call`` runs a functional loss and names this module in its errors."""

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: expected reduction to be one of {list(REDUCTIONS)}, got {reduction!r}"
            )
        self.reduction = reduction

    def _call(self, fn: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{type(self).__name__}: {exc}") from None


class _WeightedLoss(_Loss):
    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        weight = _constant(type(self).__name__, "weight", weight)
        if weight is not None and weight.ndim != 1:
            raise ValueError(f"{type(self).__name__}: expected a 1-d weight (C,), got shape {weight.shape}")
        self.register_buffer("weight", weight)


# ---- classification ----------------------------------------------------------------------


def _check_label_smoothing(loss: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{loss}: expected label_smoothing in [0, 1], got {value!r}")
    return float(value)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy from logits and class indices (PyTorch semantics).

    Shapes: input ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; target ``(N,)``, ``(N, d1, ...)``
    or ``()`` of integer class ids. ``weight (C,)`` rescales classes; targets equal to
    ``ignore_index`` are skipped, and ``"mean"`` divides by the summed weight of the rest.
    For ``(B, T, C)`` sequence logits use ``sequence_cross_entropy``.
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = _check_label_smoothing("CrossEntropyLoss", label_smoothing)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002 - PyTorch's name
        return self._call(
            F.cross_entropy,
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            reduction=self.reduction,
        )


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood from log-probabilities (e.g. ``LogSoftmax(dim=1)`` output).

    Shapes as ``CrossEntropyLoss``: input ``(N, C, ...)``, target ``(N, ...)`` class ids.
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = int(ignore_index)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(
            F.nll_loss, input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )


def sequence_cross_entropy(
    logits_btc: Tensor,
    targets_bt: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy for sequence logits ``(B, T, C)`` and targets ``(B, T)``.

    Flattens to ``(B*T, C)`` / ``(B*T,)`` and calls ``F.cross_entropy``, so ``"mean"``
    averages over every (non-ignored) token of the batch; ``"none"`` returns ``(B, T)``.
    Padding tokens are skipped by setting them to ``ignore_index``.
    """
    op = "sequence_cross_entropy"
    if not isinstance(logits_btc, Tensor):
        raise TypeError(f"{op}: expected a Tensor of logits (B, T, C), got {type(logits_btc).__name__}")
    if logits_btc.ndim != 3:
        raise ValueError(f"{op}: expected logits (B, T, C), got {logits_btc.shape}")
    b, t, c = logits_btc.shape
    target_shape = tuple(getattr(targets_bt, "shape", np.shape(targets_bt)))
    if target_shape != (b, t):
        raise ValueError(f"{op}: expected targets ({b}, {t}) to match logits {logits_btc.shape}, got {target_shape}")
    flat_targets = (
        F.reshape(targets_bt, (b * t,)) if isinstance(targets_bt, Tensor) else np.asarray(targets_bt).reshape(b * t)
    )
    loss = F.cross_entropy(
        F.reshape(logits_btc, (b * t, c)),  # (B*T, C)
        flat_targets,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
    return F.reshape(loss, (b, t)) if reduction == "none" else loss


# ---- regression ---------------------------------------------------------------------------


class MSELoss(_Loss):
    """Mean squared error ``(input - target) ** 2``; input and target of the same shape."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.mse_loss, input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ``|input - target|``; input and target of the same shape."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.l1_loss, input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = input - target``)."""

    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
            raise ValueError(f"SmoothL1Loss: expected beta >= 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(F.smooth_l1_loss, input, target, reduction=self.reduction, beta=self.beta)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy from logits, stable for large ``|input|``.

    Input and target (probabilities in [0, 1]) share a shape ``(*)``; ``weight`` broadcasts
    against it and ``pos_weight`` against its last (class) axis, as in PyTorch.
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _constant("BCEWithLogitsLoss", "weight", weight))
        self.register_buffer("pos_weight", _constant("BCEWithLogitsLoss", "pos_weight", pos_weight))

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return self._call(
            F.binary_cross_entropy_with_logits,
            input,
            target,
            weight=self.weight,
            pos_weight=self.pos_weight,
            reduction=self.reduction,
        )
