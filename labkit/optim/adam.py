"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), with PyTorch's semantics.

Per step, with ``d`` the gradient (plus ``weight_decay * p`` for Adam; AdamW instead
scales ``p`` by ``1 - lr * weight_decay``)::

    m = beta1 * m + (1 - beta1) * d
    v = beta2 * v + (1 - beta2) * d**2          (v_max = max(v_max, v) with amsgrad)
    p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
"""

from __future__ import annotations

import math
from typing import Any

from labkit.optim.optimizer import Optimizer, ParamsLike, effective_grad


class Adam(Optimizer):
    """Adam: per-element steps scaled by running estimates of the gradient's first two moments."""

    _state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas expected a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            self._check_number({f"betas[{i}]": beta}, f"betas[{i}]", lo=0.0, hi=1.0, hi_open=True)
        self._check_number(group, "eps", lo=0.0)
        self._check_number(group, "weight_decay", lo=0.0)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        amsgrad = group["amsgrad"]
        maximize = group["maximize"]
        decoupled = self._decoupled
        state = self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            x = p.data
            xp, s = self._scratch(p)
            entry = state.get(p)
            if entry is None:
                entry = state[p] = {"step": 0, "exp_avg": xp.zeros_like(x), "exp_avg_sq": xp.zeros_like(x)}
            step = entry["step"] = entry["step"] + 1
            m = entry["exp_avg"]
            v = entry["exp_avg_sq"]
            if decoupled:
                if weight_decay:
                    x *= 1.0 - lr * weight_decay
                d = effective_grad(xp, grad.data, x, 0.0, maximize, s)
            else:
                d = effective_grad(xp, grad.data, x, weight_decay, maximize, s)
            # m = beta1 * m + (1 - beta1) * d, written (m - d) * beta1 + d to need no temporary
            m -= d
            m *= beta1
            m += d
            # d is no longer needed: square it in the scratch (it may be the scratch)
            xp.multiply(d, d, out=s)
            s *= 1.0 - beta2
            v *= beta2
            v += s
            if amsgrad:
                v_max = entry.get("max_exp_avg_sq")
                if v_max is None:
                    v_max = entry["max_exp_avg_sq"] = xp.zeros_like(x)
                v = xp.maximum(v_max, v, out=v_max)
            bias_correction1 = 1.0 - beta1**step
            bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
            # m / (sqrt(v) / c2 + eps) == c2 * m / (sqrt(v) + eps * c2): one pass fewer
            xp.sqrt(v, out=s)
            s += eps * bias_correction2_sqrt
            xp.divide(m, s, out=s)
            s *= lr * bias_correction2_sqrt / bias_correction1
            x -= s


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam step."""

    _decoupled = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
