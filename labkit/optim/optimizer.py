"""``Optimizer``: parameter groups, per-parameter state, ``state_dict`` and the in-place update loop.

Subclasses give their hyper-parameter defaults, check a group's values in ``_check_group``
and update one group in ``_update_group``, working on the backend arrays ``p.data`` and
``p.grad.data`` with ``out=`` ufuncs: the update records no graph and, after the first
step, allocates nothing. Temporaries go into scratch views (``_scratch``) into a few flat
buffers shared by all parameters of one dtype and device, since parameters update one
after another.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from labkit.backends.registry import array_module, backends
from labkit.core.creation import to_array
from labkit.core.mode import enable_grad
from labkit.core.tensor import Tensor

ParamsLike = Iterable[Tensor] | Iterable[dict[str, Any]]


class _Required:
    """Marks a hyper-parameter with no default: every group must give it."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of optimizers, with PyTorch's semantics.

    ``params`` is an iterable of Tensors, or of dicts (parameter groups) each with a
    ``"params"`` entry and optional hyper-parameters overriding ``defaults``::

        SGD([{"params": body, "lr": 0.1}, {"params": head}], lr=0.01, momentum=0.9)

    ``state[p]`` holds per-parameter state (step counts, moment arrays), created on the
    first step that sees a gradient for ``p``. Parameters whose ``grad`` is None are skipped.
    """

    # state entries shaped like their parameter; load_state_dict checks their shapes
    _state_arrays: tuple[str, ...] = ()
    # scratch arrays (parameter-shaped temporaries) one parameter's update needs
    _num_scratch = 1

    def __init__(self, params: ParamsLike, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._scratch_views: dict[Tensor, tuple[Any, ...]] = {}
        self._scratch_bufs: dict[tuple[Any, ...], list[Any]] = {}
        name = type(self).__name__
        if isinstance(params, Tensor) or isinstance(params, dict):
            raise TypeError(f"{name}: params expected an iterable of Tensors or of dicts, got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: params expected at least one parameter, got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])

    # ---- parameter groups ----------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (``{"params": ..., "lr": ...}``); unset hyper-parameters take the defaults."""
        name = type(self).__name__
        if not isinstance(param_group, Mapping):
            raise TypeError(f"{name}: a parameter group expected a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group expected a 'params' key, got keys {sorted(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: params expected an ordered iterable (list, tuple, generator), got a set")
        else:
            params = list(params)
        seen: set[int] = set()
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: params expected Tensors, got {type(p).__name__}")
            if p.creator is not None:
                raise ValueError(f"{name}: params expected leaf tensors, got a tensor made by {p.creator!r}")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: params expected floating-point tensors, got dtype {p.dtype}")
            if id(p) in seen:
                raise ValueError(f"{name}: params expected each parameter once, got one twice in the same group")
            seen.add(id(p))
        for group in self.param_groups:
            if any(id(p) in seen for p in group["params"]):
                raise ValueError(f"{name}: params expected each parameter in one group, got one in two groups")
        group = {"params": params}
        for key, value in param_group.items():
            if key != "params":
                group[key] = value
        for key, default in self.defaults.items():
            if key not in group:
                if default is required:
                    raise ValueError(f"{name}: parameter group expected a value for {key!r} (no default), got none")
                group[key] = default
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError/TypeError naming the hyper-parameter when a group's value is invalid."""
        if "lr" in group:
            self._check_number(group, "lr", lo=0.0)

    def _check_number(
        self, group: dict[str, Any], key: str, lo: float | None = None, hi: float | None = None, hi_open: bool = False
    ) -> None:
        """Check ``lo <= group[key] <= hi`` (or ``< hi`` with ``hi_open``)."""
        value = group[key]
        name = type(self).__name__
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: {key} expected a real number, got {type(value).__name__}")
        too_high = hi is not None and (value >= hi if hi_open else value > hi)
        if (lo is not None and not value >= lo) or too_high or value != value:
            lo_s = "-inf" if lo is None else f"{lo}"
            hi_s = "inf)" if hi is None else f"{hi}{')' if hi_open else ']'}"
            raise ValueError(f"{name}: {key} expected a value in [{lo_s}, {hi_s}, got {value}")

    # ---- the update ----------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: ``grad = None`` (default) or fill it with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if grad.creator is not None:
                        grad = p.grad = grad.detach()
                    grad.data.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` recomputes and returns the loss first."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _update_group(group)")

    def _scratch(self, p: Tensor) -> tuple[Any, ...]:
        """``(xp, s0, s1, ...)``: the array module and ``_num_scratch`` temporaries shaped like ``p``.

        The temporaries are views into flat buffers shared by every parameter of the same
        array type, dtype and device, sized for the largest; valid until the next parameter's.
        """
        views = self._scratch_views.get(p)
        data = p.data
        # p.data may have been replaced (moved, cast) since the views were made
        if views is not None and views[1].shape == data.shape and views[1].dtype == data.dtype:
            if type(views[1]) is type(data):
                return views
        key = self._scratch_key(data)
        bufs = self._scratch_bufs.get(key)
        if bufs is None or bufs[0].size < data.size:
            # size for every parameter of this kind at once, so the buffers rarely grow
            size = max(q.data.size for g in self.param_groups for q in g["params"] if self._scratch_key(q.data) == key)
            size = max(size, data.size)
            xp = array_module(data)
            bufs = self._scratch_bufs[key] = [xp.empty(size, dtype=data.dtype) for _ in range(self._num_scratch)]
            self._scratch_views.clear()  # drop views of the old buffers so they can be freed
        xp = array_module(data)
        views = (xp, *(b[: data.size].reshape(data.shape) for b in bufs))
        self._scratch_views[p] = views
        return views

    @staticmethod
    def _scratch_key(data: Any) -> tuple[Any, ...]:
        return (type(data), data.dtype, backends.for_array(data).device_of(data))

    # ---- state dict ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A snapshot: ``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``.

        Parameters are replaced by their position across all groups (as in PyTorch); state
        arrays are copied into labkit Tensors, everything else is plain JSON-able data.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, entry in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: _export(v) for k, v in entry.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyper-parameters and state saved by ``state_dict`` (from this or an identical optimizer).

        State arrays are copied onto each parameter's device (floating ones cast to its dtype).
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            got = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(f"{name}: expected a dict with keys 'state' and 'param_groups', got {got}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: expected {len(self.param_groups)} parameter groups (as this optimizer has), "
                f"got {len(saved_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}: parameter group {i} expected {len(group['params'])} parameters (as this optimizer has), "
                    f"got {len(saved['params'])}"
                )
            by_index.update((int(k), p) for k, p in zip(saved["params"], group["params"], strict=True))
            restored = {"params": group["params"]}
            for key, value in saved.items():
                if key != "params":
                    value = copy.deepcopy(value)
                    # JSON turns tuples (betas) into lists
                    restored[key] = (
                        tuple(value) if isinstance(group.get(key), tuple) and isinstance(value, list) else value
                    )
            self._check_group(restored)
            new_groups.append(restored)
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, entry in state_dict["state"].items():
            if isinstance(key, str) and key.isdigit():
                key = int(key)  # after a JSON round trip
            if not isinstance(key, int) or key not in by_index:
                raise ValueError(f"{name}: state key expected a parameter index in {sorted(by_index)}, got {key!r}")
            p = by_index[key]
            new_state[p] = {k: self._import(p, key, k, v) for k, v in entry.items()}
        for group, restored in zip(self.param_groups, new_groups, strict=True):
            group.clear()
            group.update(restored)
        self.state = new_state

    def _import(self, p: Tensor, index: int, key: str, value: Any) -> Any:
        """One state value from a state dict, as this optimizer keeps it."""
        data = value.data if isinstance(value, Tensor) else value
        if not (hasattr(data, "shape") and hasattr(data, "dtype")):
            return copy.deepcopy(value)
        if data.ndim == 0 and key not in self._state_arrays:
            return data.item()  # step counts saved as 0-d arrays
        if key in self._state_arrays and tuple(data.shape) != p.shape:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state[{index}][{key!r}] expected shape {p.shape} "
                f"(the parameter's), got {tuple(data.shape)}"
            )
        dtype = p.dtype if data.dtype.kind == "f" else None
        out = to_array(data, dtype, p.device)
        return out.copy() if out is data else out


def effective_grad(xp: Any, grad: Any, param: Any, weight_decay: float, maximize: bool, out: Any) -> Any:
    """The gradient an update uses, ``(-grad if maximize else grad) + weight_decay * param``.

    Returns ``grad`` itself when nothing changes it, else ``out`` holding the result.
    """
    if weight_decay:
        xp.multiply(param, weight_decay, out=out)
        (xp.subtract if maximize else xp.add)(out, grad, out=out)
        return out
    if maximize:
        return xp.negative(grad, out=out)
    return grad


def _export(value: Any) -> Any:
    """A state value as ``state_dict`` gives it: arrays copied into Tensors, the rest deep-copied."""
    if isinstance(value, Tensor):
        return Tensor._wrap(value.data.copy())
    if hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "copy"):
        return Tensor._wrap(value.copy())
    return copy.deepcopy(value)
