"""RMSprop (Hinton's lecture 6e; centered variant of Graves 2013), with PyTorch's semantics.

Per step, with ``d`` the gradient (plus ``weight_decay * p``)::

    v = alpha * v + (1 - alpha) * d**2
    avg = sqrt(v - g_avg**2) + eps   with centered (g_avg = alpha * g_avg + (1 - alpha) * d),
          sqrt(v) + eps              otherwise
    buf = momentum * buf + d / avg;  p -= lr * buf     (with momentum > 0)
    p -= lr * d / avg                                   (otherwise)
"""

from __future__ import annotations

from typing import Any

from labkit.optim.optimizer import Optimizer, ParamsLike, effective_grad


class RMSprop(Optimizer):
    """Divide the gradient by a running root-mean-square of its recent magnitudes."""

    _state_arrays = ("square_avg", "grad_avg", "momentum_buffer")
    _num_scratch = 2

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        self._check_number(group, "alpha", lo=0.0)
        self._check_number(group, "eps", lo=0.0)
        self._check_number(group, "weight_decay", lo=0.0)
        self._check_number(group, "momentum", lo=0.0)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        alpha = group["alpha"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        momentum = group["momentum"]
        centered = group["centered"]
        maximize = group["maximize"]
        state = self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            x = p.data
            xp, s, avg = self._scratch(p)
            entry = state.get(p)
            if entry is None:
                entry = state[p] = {"step": 0, "square_avg": xp.zeros_like(x)}
            entry["step"] += 1
            d = effective_grad(xp, grad.data, x, weight_decay, maximize, s)
            v = entry["square_avg"]
            xp.multiply(d, d, out=avg)
            avg *= 1.0 - alpha
            v *= alpha
            v += avg
            if centered:
                g_avg = entry.get("grad_avg")
                if g_avg is None:
                    g_avg = entry["grad_avg"] = xp.zeros_like(x)
                # g_avg = alpha * g_avg + (1 - alpha) * d, written (g_avg - d) * alpha + d
                g_avg -= d
                g_avg *= alpha
                g_avg += d
                xp.multiply(g_avg, g_avg, out=avg)
                xp.subtract(v, avg, out=avg)
                xp.sqrt(avg, out=avg)
            else:
                xp.sqrt(v, out=avg)
            avg += eps
            xp.divide(d, avg, out=avg)
            if momentum > 0:
                buf = entry.get("momentum_buffer")
                if buf is None:
                    buf = entry["momentum_buffer"] = xp.zeros_like(x)
                buf *= momentum
                buf += avg
                xp.multiply(buf, lr, out=avg)
            else:
                avg *= lr
            x -= avg
