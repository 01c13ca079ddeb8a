"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's SGD)."""

from __future__ import annotations

from typing import Any

from labkit.optim.optimizer import Optimizer, ParamsLike, effective_grad


class SGD(Optimizer):
    """``p -= lr * d`` where ``d`` is the gradient (plus ``weight_decay * p``), or its momentum buffer.

    With momentum ``buf = momentum * buf + (1 - dampening) * g`` (``buf = g`` on the first
    step) and ``d = buf``, or ``d = g + momentum * buf`` with ``nesterov=True``.
    """

    _state_arrays = ("momentum_buffer",)

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        self._check_number(group, "momentum", lo=0.0)
        self._check_number(group, "dampening")
        self._check_number(group, "weight_decay", lo=0.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "SGD: nesterov=True expected momentum > 0 and dampening == 0, "
                f"got momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        momentum = group["momentum"]
        dampening = group["dampening"]
        nesterov = group["nesterov"]
        weight_decay = group["weight_decay"]
        maximize = group["maximize"]
        state = self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            x = p.data
            xp, s = self._scratch(p)
            d = effective_grad(xp, grad.data, x, weight_decay, maximize, s)
            if momentum:
                entry = state.get(p)
                if entry is None:
                    entry = state[p] = {}
                buf = entry.get("momentum_buffer")
                if buf is None:
                    buf = entry["momentum_buffer"] = d.copy()
                else:
                    buf *= momentum
                    if dampening:
                        if d is not s:
                            xp.multiply(d, 1.0 - dampening, out=s)
                        else:  # nesterov needs no d afterwards: it requires dampening == 0
                            s *= 1.0 - dampening
                        buf += s
                    else:
                        buf += d
                if nesterov:
                    # p -= lr * (d + momentum * buf), as two scaled subtractions through one scratch
                    xp.multiply(d, lr, out=s)
                    x -= s
                    xp.multiply(buf, lr * momentum, out=s)
                    x -= s
                    continue
                d = buf
            xp.multiply(d, lr, out=s)
            x -= s
