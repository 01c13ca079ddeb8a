"""Learning-rate schedulers with PyTorch's names and semantics.

A scheduler sets ``group["lr"]`` of its optimizer's parameter groups; call ``step()``
once per epoch (or per batch, for ``OneCycleLR``) after ``optimizer.step()``.
Constructing one takes the first step (epoch 0). Most compute the next lr from the
current one (so several schedulers on one optimizer compose, as in PyTorch) and also
have a closed form used when ``SequentialLR`` restarts them. ``state_dict()`` is plain
JSON-able data.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from typing import Any

from labkit.optim.optimizer import Optimizer


def _check_optimizer(optimizer: Any, name: str) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{name}: optimizer expected a labkit.optim.Optimizer, got {type(optimizer).__name__}")
    return optimizer


def _per_group(optimizer: Optimizer, value: float | Iterable[float], key: str, name: str) -> list[float]:
    """One value per parameter group from a scalar or a list of them."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name}: {key} expected one value per parameter group ({len(optimizer.param_groups)}), "
                f"got {len(value)}"
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class: subclasses give ``get_lr()`` (the next lrs from the current ones) and
    optionally ``_closed_form_lr()`` (the lrs at ``last_epoch`` from ``base_lrs``).

    ``last_epoch=-1`` starts afresh; another value resumes, and needs each group's
    ``initial_lr`` (restored by the optimizer's ``load_state_dict``).
    """

    #: stepped with a metric (ReduceLROnPlateau) rather than once per epoch
    metric_driven: bool = False

    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        self.optimizer = _check_optimizer(optimizer, type(self).__name__)
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise ValueError(
                    f"{type(self).__name__}: resuming with last_epoch={last_epoch} expected 'initial_lr' in "
                    f"param_groups[{i}] (load the optimizer's state first), got keys {sorted(group)}"
                )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr()")

    def step(self) -> None:
        """Advance one epoch and set the groups' learning rates."""
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step()`` set, one per parameter group."""
        return list(self._last_lr)

    def _current(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (plain data)."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}: expected a dict from state_dict(), got {type(state_dict).__name__}")
        unknown = sorted(set(state_dict) - set(self.__dict__))
        if unknown:
            raise ValueError(
                f"{name}: expected keys {sorted(k for k in self.__dict__ if k != 'optimizer')}, got {unknown}"
            )
        base_lrs = state_dict.get("base_lrs", self.base_lrs)
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"{name}: base_lrs expected {len(self.optimizer.param_groups)} entries (one per parameter group), "
                f"got {len(base_lrs)}"
            )
        self.__dict__.update(copy.deepcopy(dict(state_dict)))


# ---- fixed decays ------------------------------------------------------------------


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if not isinstance(step_size, int) or step_size <= 0:
            raise ValueError(f"StepLR: step_size expected a positive integer, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]

    def _closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch (by ``gamma**k`` for one listed k times)."""

    def __init__(
        self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.milestones = sorted(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        hits = self.milestones.count(self.last_epoch)
        if not hits:
            return self._current()
        return [lr * self.gamma**hits for lr in self._current()]

    def _closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** bisect_right(self.milestones, self.last_epoch) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current()
        return [lr * self.gamma for lr in self._current()]

    def _closed_form_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2`` (SGDR without restarts)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:  # noqa: N803
        if not isinstance(T_max, int) or T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max expected a positive integer, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, t_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current()
        if self._step_count == 1 and t > 0:
            return self._closed_form_lr()
        if (t - 1 - t_max) % (2 * t_max) == 0:
            return [
                lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                for lr, base in zip(self._current(), self.base_lrs, strict=True)
            ]
        ratio = (1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current()]

    def _closed_form_lr(self) -> list[float]:
        cos = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the lr by a factor going linearly from ``start_factor`` to ``end_factor`` over ``total_iters``."""

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if not 0 < start_factor <= 1:
            raise ValueError(f"LinearLR: start_factor expected a value in (0, 1], got {start_factor}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: end_factor expected a value in [0, 1], got {end_factor}")
        if not isinstance(total_iters, int) or total_iters <= 0:
            raise ValueError(f"LinearLR: total_iters expected a positive integer, got {total_iters!r}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        start, end, total = self.start_factor, self.end_factor, self.total_iters
        if self.last_epoch == 0:
            return [lr * start for lr in self._current()]
        if self._is_initial or self.last_epoch > total:
            return self._current()
        scale = 1.0 + (end - start) / (total * start + (self.last_epoch - 1) * (end - start))
        return [lr * scale for lr in self._current()]

    def _closed_form_lr(self) -> list[float]:
        progress = min(self.total_iters, self.last_epoch) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * progress
        return [base * factor for base in self.base_lrs]


# ---- composition -------------------------------------------------------------------


class SequentialLR(LRScheduler):
    """Run ``schedulers[i]`` from epoch ``milestones[i-1]`` on, each restarted at its epoch 0."""

    def __init__(
        self, optimizer: Optimizer, schedulers: list[LRScheduler], milestones: list[int], last_epoch: int = -1
    ) -> None:
        self.optimizer = _check_optimizer(optimizer, "SequentialLR")
        if not schedulers:
            raise ValueError("SequentialLR: schedulers expected at least one scheduler, got none")
        for i, sched in enumerate(schedulers):
            if not isinstance(sched, LRScheduler) or sched.metric_driven:
                raise TypeError(f"SequentialLR: schedulers[{i}] expected an epoch-driven LRScheduler, got {sched!r}")
            if sched.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: schedulers[{i}] expected to drive the same optimizer, got another")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"SequentialLR: milestones expected {len(schedulers) - 1} entries (one fewer than schedulers), "
                f"got {len(milestones)}"
            )
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        # undo the first step each scheduler took when it was made, then take scheduler 0's
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for sched in self._schedulers:
            sched.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            sched._update_lr(0)
        else:
            sched.step()
        self._last_lr = sched.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        sd = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        sd["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        state_dict = dict(state_dict)
        inner = state_dict.pop("_schedulers", None)
        if inner is None or len(inner) != len(self._schedulers):
            got = "none" if inner is None else len(inner)
            raise ValueError(
                f"SequentialLR.load_state_dict: _schedulers expected {len(self._schedulers)} entries, got {got}"
            )
        super().load_state_dict(state_dict)
        for sched, sd in zip(self._schedulers, inner, strict=True):
            sched.load_state_dict(sd)


def warmup(optimizer: Optimizer, scheduler: LRScheduler, warmup_steps: int, start_factor: float = 1e-3) -> SequentialLR:
    """Linear warm-up from ``start_factor * lr`` to ``lr`` over ``warmup_steps`` steps, then ``scheduler``.

    ``scheduler`` (made on the same optimizer) starts at its epoch 0 once the warm-up ends.
    """
    ramp = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [ramp, scheduler], milestones=[warmup_steps])
