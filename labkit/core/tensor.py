"""``Tensor``: an array from some backend plus what autograd needs to know about it.

Arithmetic and other methods are bound to the ops in ``labkit.ops.methods``; this
module holds only the data model, conversions and the autograd entry points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.backends.device import Device, DeviceLike
from labkit.backends.registry import backends
from labkit.core import dtypes

if TYPE_CHECKING:
    from labkit.core.function import Function


_new = object.__new__


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list[Callable[..., Any]], hook: Callable[..., Any]) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class HookCount:
    """How many post-accumulate gradient hooks are registered in this process.

    Only an optimisation gate: at 0 the engine skips their bookkeeping (a pass over the
    graph's edges), so backward costs nothing extra for programs that never register one.
    """

    live = 0


POST_ACCUMULATE_HOOKS = HookCount()


class _CountedHandle(RemovableHandle):
    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)
            POST_ACCUMULATE_HOOKS.live -= 1


class Tensor:
    """An n-dimensional array that records the ops applied to it for reverse-mode autograd.

    ``data`` is the backend array (numpy on ``cpu``, cupy on ``cuda``). A tensor with
    ``requires_grad=True`` and no ``creator`` is a leaf: ``backward()`` accumulates
    into its ``.grad``. Tensors made by ops on such tensors have a ``creator``.
    """

    # Hot fields are slots; rarely set ones live in a lazily created __dict__ and read
    # their class default until set, so making a tensor costs one to three stores.
    __slots__ = ("__dict__", "__weakref__", "creator", "data", "requires_grad")
    __array_priority__ = 1000  # numpy defers `ndarray + Tensor` to Tensor.__radd__
    grad: Tensor | None = None
    _out_idx: int = 0
    _hooks: list[Callable[..., Any]] | None = None
    _post_hooks: list[Callable[..., Any]] | None = None
    name: str | None = None

    def __init__(
        self, data: Any, requires_grad: bool = False, dtype: Any = None, device: DeviceLike | None = None
    ) -> None:
        from labkit.core.creation import to_array

        self.data = to_array(data, dtype, device)
        self.creator: Function | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array: Any) -> Tensor:
        """A constant tensor around an existing backend array (no copy, no checks)."""
        t = _new(cls)
        t.data = array
        t.requires_grad = False
        t.creator = None
        return t

    @classmethod
    def _node(cls, array: Any, creator: Function, idx: int) -> Tensor:
        """An op's output inside a recorded graph."""
        t = _new(cls)
        t.data = array
        t.requires_grad = True
        t.creator = creator
        if idx:
            t._out_idx = idx
        return t

    # ---- array-like properties ---------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> Device:
        return backends.for_array(self.data).device_of(self.data)

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return int(self.data.shape[0])

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError(
                f"only integer tensors of one element can be used as an index, got {self.dtype} {self.shape}"
            )
        return int(self.item())

    # ---- conversions ---------------------------------------------------------------

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (a copy from the GPU; shared memory on the CPU)."""
        return backends.for_array(self.data).to_numpy(self.data)

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item() if hasattr(self.data, "item") else self.data

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Any:
        return self.data.__dlpack_device__()

    def to(self, target: Any = None, dtype: Any = None) -> Tensor:
        """Move to a device (``"cpu"``, ``"cuda:0"``) and/or cast to a dtype, differentiably."""
        from labkit.ops import transfer

        out = self
        if isinstance(target, str) or isinstance(target, Device):
            out = transfer.to_device(out, target)
        elif target is not None:
            dtype = target
        if dtype is not None:
            out = transfer.astype(out, dtype)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Tensor:
        return self.to("cuda" if index is None else f"cuda:{index}")

    def float(self) -> Tensor:
        return self.to(dtype=dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtype=dtypes.float64)

    def half(self) -> Tensor:
        return self.to(dtype=dtypes.float16)

    def long(self) -> Tensor:
        return self.to(dtype=dtypes.int64)

    def int(self) -> Tensor:
        return self.to(dtype=dtypes.int32)

    def bool(self) -> Tensor:
        return self.to(dtype=dtypes.bool_)

    def astype(self, dtype: Any) -> Tensor:
        return self.to(dtype=dtype)

    # ---- autograd ------------------------------------------------------------------

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self.creator is not None and not requires_grad:
            raise RuntimeError("requires_grad_: only leaf tensors can stop requiring grad; use .detach()")
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"requires_grad: only float tensors can require gradients, got {self.data.dtype}")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def backward(self, grad: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (see ``labkit.autograd``)."""
        from labkit.core.autograd import backward

        backward(self, grad, retain_graph=retain_graph, create_graph=create_graph)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self.creator is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            fn = self.creator
            if fn._hooks is None:
                fn._hooks = {}
            hooks = fn._hooks.setdefault(self._out_idx, [])
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> RemovableHandle:
        """Call ``hook(self)`` once per backward, as soon as this leaf's ``.grad`` holds its final value.

        Leaves only (parameters). The hook runs while backward goes on with earlier layers,
        which lets data-parallel training start reducing gradients early. Not called by
        ``labkit.grad`` (it fills no ``.grad``) nor for a leaf that received no gradient.
        """
        if not self.requires_grad or self.creator is not None:
            raise RuntimeError(
                "register_post_accumulate_grad_hook: expected a leaf tensor that requires grad, got "
                + (
                    "one that does not require grad"
                    if not self.requires_grad
                    else f"the output of {self.creator.op_name}"
                )
            )
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(hook)
        POST_ACCUMULATE_HOOKS.live += 1
        return _CountedHandle(self._post_hooks, hook)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        if self.creator is None:
            return
        import weakref

        ref = weakref.ref(self)

        def keep(g: Tensor) -> None:
            t = ref()
            if t is not None:
                t.grad = g if t.grad is None else t.grad + g

        self.register_hook(keep)

    def zero_grad_(self) -> None:
        self.grad = None

    # ---- display -------------------------------------------------------------------

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(", threshold=200)
        extras = []
        if self.dtype != dtypes.float32 and self.dtype != dtypes.int64:
            extras.append(f"dtype={self.dtype}")
        dev = self.device
        if dev.type != "cpu":
            extras.append(f"device='{dev}'")
        if self.creator is not None:
            extras.append(f"grad_fn={self.creator!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"
