"""Adagrad (Duchi, Hazan & Singer 2011), with PyTorch's semantics.

Per step ``t``, with ``d`` the gradient (plus ``weight_decay * p``)::

    sum += d**2
    p -= lr / (1 + (t - 1) * lr_decay) * d / (sqrt(sum) + eps)
"""

from __future__ import annotations

from typing import Any

from labkit.optim.optimizer import Optimizer, ParamsLike, effective_grad


class Adagrad(Optimizer):
    """Per-element learning rates that shrink with the accumulated squared gradients."""

    _state_arrays = ("sum",)
    _num_scratch = 2

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        self._check_number(group, "lr_decay", lo=0.0)
        self._check_number(group, "weight_decay", lo=0.0)
        self._check_number(group, "initial_accumulator_value", lo=0.0)
        self._check_number(group, "eps", lo=0.0)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        lr_decay = group["lr_decay"]
        weight_decay = group["weight_decay"]
        eps = group["eps"]
        maximize = group["maximize"]
        state = self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            x = p.data
            xp, s, std = self._scratch(p)
            entry = state.get(p)
            if entry is None:
                entry = state[p] = {"step": 0, "sum": xp.full_like(x, group["initial_accumulator_value"])}
            step = entry["step"] = entry["step"] + 1
            d = effective_grad(xp, grad.data, x, weight_decay, maximize, s)
            total = entry["sum"]
            xp.multiply(d, d, out=std)
            total += std
            xp.sqrt(total, out=std)
            std += eps
            xp.divide(d, std, out=std)
            std *= lr / (1.0 + (step - 1) * lr_decay)
            x -= std
