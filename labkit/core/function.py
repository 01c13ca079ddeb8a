"""``Function``: the base of every differentiable op, built-in or from a plugin.

An op subclasses ``Function``, takes its non-tensor arguments in ``__init__``,
computes ``forward(*arrays)`` on raw backend arrays and ``backward(*grads)`` with
labkit ops on Tensors (so one body serves every backend and double backward
works). ``forward`` calls ``self.save_for_backward(...)`` with exactly the arrays
that ``backward`` needs; an array that is one of the op's inputs or outputs comes
back in ``self.saved_tensors`` as that Tensor, so gradients flow through it when
``create_graph=True``.

A backend may register a faster kernel for an op (``Function.register_kernel``):
it replaces ``forward`` for arrays of that backend without editing the op.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from labkit.backends.registry import backends
from labkit.core.mode import get_mode as _get_mode
from labkit.core.tensor import Tensor


class _SavedOutput:
    """An output saved for backward, held by weak reference (no cycle through the graph)."""

    __slots__ = ("array", "idx", "ref")

    def __init__(self, tensor: Tensor, array: Any, idx: int) -> None:
        self.ref = weakref.ref(tensor)
        self.array = array
        self.idx = idx

    def unpack(self, fn: Function) -> Tensor:
        t = self.ref()
        if t is None:
            # the caller dropped this output (exp(x).sum()); under create_graph it must
            # still lead back to its function, so rebuild it as that function's output
            t = Tensor._node(self.array, fn, self.idx) if _get_mode().grad_enabled else Tensor._wrap(self.array)
        return t


_ndarray = np.ndarray
_wrap = Tensor._wrap
_NO_GRAD = tuple((False,) * n for n in range(16))
_node = Tensor._node


class Function:
    """Base class of differentiable ops. See the module docstring for the contract."""

    # backend name -> replacement forward, filled by register_kernel
    _kernels: ClassVar[dict[str, Callable[..., Any]]] = {}
    #: name used in error messages; defaults to the lowercase class name
    op_name: ClassVar[str] = ""

    # class defaults, overridden per instance only when needed (cheaper op calls)
    _to_save: tuple[Any, ...] = ()
    _saved: tuple[Any, ...] | None = ()  # None once released by backward
    _hooks: dict[int, list[Callable[..., Any]]] | None = None
    _n_out: int = 1
    _gbuf: list[Any] | None = None  # gradient sums while a backward pass runs
    # instance state set by __call__ (not __slots__: subclasses keep their own params)
    next_edges: tuple[Any, ...]
    needs_input_grad: tuple[bool, ...]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._kernels = {}
        if not cls.__dict__.get("op_name"):
            cls.op_name = cls.__name__.lower()

    # ---- the op author's API -------------------------------------------------

    def forward(self, *xs: Any) -> Any:
        """Compute outputs from raw arrays; return one array or a tuple of arrays."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *gys: Tensor) -> Tensor | tuple[Tensor | None, ...] | None:
        """Gradients of the inputs from gradients of the outputs, written with labkit ops."""
        raise NotImplementedError(f"{self.op_name}: backward is not defined (the op is not differentiable)")

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep these arrays (inputs, outputs or new arrays) for ``backward``."""
        self._to_save = arrays

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        saved = self._saved
        if saved is None:
            raise RuntimeError(
                f"{self.op_name}: trying to backward through the graph a second time; "
                "its saved tensors were freed after the first backward. "
                "Pass retain_graph=True to the first backward() if you need to call it again."
            )
        return tuple([item.unpack(self) if type(item) is _SavedOutput else item for item in saved])

    @classmethod
    def register_kernel(cls, backend: str, forward: Callable[..., Any]) -> None:
        """Use ``forward(self, *arrays)`` instead of ``cls.forward`` for arrays of ``backend``."""
        cls._kernels[backend] = forward

    @classmethod
    def apply(cls, *inputs: Any, **params: Any) -> Any:
        """PyTorch-style entry point: ``MyOp.apply(x, y, alpha=2.0)``."""
        return cls(**params)(*inputs)

    # ---- running it ------------------------------------------------------------

    def __call__(self, *inputs: Any) -> Any:
        # The hot path of every op: flat, special-cased for one and two inputs, and
        # storing on self only what a recorded graph needs (the rest are class defaults).
        n = len(inputs)
        try:
            if n == 1:
                x0 = inputs[0]
                arrays: tuple[Any, ...] = (x0.data,)
                any_grad = x0.requires_grad
                first = arrays[0]
            elif n == 2:
                x0, x1 = inputs
                first = x0.data
                arrays = (first, x1.data)
                any_grad = x0.requires_grad or x1.requires_grad
                if type(arrays[1]) is not type(first):
                    _device_mismatch(self.op_name, inputs)
            else:
                arrays = tuple([x.data for x in inputs])
                any_grad = any([x.requires_grad for x in inputs])
                first = arrays[0] if arrays else None
                for a in arrays:
                    if type(a) is not type(first):
                        _device_mismatch(self.op_name, inputs)
        except AttributeError:
            bad = next(x for x in inputs if not isinstance(x, Tensor))
            raise TypeError(
                f"{self.op_name}: expected Tensor inputs, got {type(bad).__name__}; wrap arrays with labkit.tensor(...)"
            ) from None
        kernel = None
        if type(first) is not _ndarray or self._kernels:
            backend = self._check_devices(arrays, inputs)
            if self._kernels and backend is not None:
                kernel = self._kernels.get(backend.name)

        mode = _get_mode()
        requires = any_grad and mode.grad_enabled
        if requires:
            if n == 1:
                self.needs_input_grad = (True,)
            elif n == 2:
                self.needs_input_grad = (x0.requires_grad, x1.requires_grad)
            else:
                self.needs_input_grad = tuple([x.requires_grad for x in inputs])
        else:
            self.needs_input_grad = _NO_GRAD[n] if n < 16 else (False,) * n
        ys = kernel(self, *arrays) if kernel is not None else self.forward(*arrays)
        if mode.anomaly:
            _check_finite(self.op_name, "forward", ys if isinstance(ys, tuple) else (ys,))

        if not requires:  # nothing recorded: this Function object is dropped on return
            if type(ys) is _ndarray:
                return _wrap(ys)
            if isinstance(ys, tuple):
                return tuple([_wrap(np.asarray(y) if isinstance(y, np.generic) else y) for y in ys])
            return _wrap(np.asarray(ys) if isinstance(ys, np.generic) else ys)

        if n == 1:
            c = x0.creator
            self.next_edges = ((c, x0._out_idx) if c is not None else (x0, -1),)
        else:
            self.next_edges = tuple(
                [
                    (x.creator, x._out_idx) if x.creator is not None else ((x, -1) if x.requires_grad else None)
                    for x in inputs
                ]
            )
        if isinstance(ys, tuple):
            ys = tuple([np.asarray(y) if isinstance(y, np.generic) else y for y in ys])
            outs = tuple([_node(y, self, i) for i, y in enumerate(ys)])
            self._n_out = len(ys)
            self._out_meta = tuple([(y.shape, y.dtype) for y in ys])
            if self._to_save:
                self._saved = self._resolve_saved(arrays, inputs, ys, outs)
                self._to_save = ()
            return outs
        if type(ys) is not _ndarray and isinstance(ys, np.generic):
            ys = np.asarray(ys)  # numpy reductions return scalars; tensors hold arrays
        out = _node(ys, self, 0)
        if self._to_save:
            self._saved = self._resolve_saved(arrays, inputs, (ys,), (out,))
            self._to_save = ()
        return out

    def _check_devices(self, arrays: tuple[Any, ...], inputs: tuple[Any, ...]) -> Any:
        """The backend of the arrays; raises if they live on different devices."""
        if not arrays:
            return None
        backend = backends.for_array(arrays[0])
        if backend.device_type != "cpu" and len(arrays) > 1:
            devs = {str(backend.device_of(a)) for a in arrays if type(a) is type(arrays[0])}
            if len(devs) > 1:
                _device_mismatch(self.op_name, inputs)
        return backend

    def _resolve_saved(
        self, arrays: tuple[Any, ...], inputs: tuple[Tensor, ...], ys: tuple[Any, ...], outs: tuple[Tensor, ...]
    ) -> tuple[Any, ...]:
        """Saved arrays as what backward will see: input Tensors, output references, constants."""
        saved = []
        for item in self._to_save:
            if item is None or isinstance(item, Tensor):
                saved.append(item)
                continue
            for a, x in zip(arrays, inputs):
                if item is a:
                    saved.append(x)
                    break
            else:
                for k, (y, t) in enumerate(zip(ys, outs)):
                    if item is y:
                        saved.append(_SavedOutput(t, y, k))
                        break
                else:
                    saved.append(_wrap(item))
        return tuple(saved)

    def release(self) -> None:
        """Free saved arrays and graph edges (after a backward without retain_graph)."""
        self._saved = None
        self.next_edges = ()
        self._hooks = None

    def __repr__(self) -> str:
        return f"<{self.op_name} backward>"


def _device_mismatch(op: str, inputs: tuple[Any, ...]) -> None:
    devices = ", ".join(f"input {i} on {t.device}" for i, t in enumerate(inputs))
    raise ValueError(f"{op}: all inputs must be on the same device, got {devices}")


def _check_finite(op: str, phase: str, arrays: tuple[Any, ...]) -> None:
    for i, a in enumerate(arrays):
        if a is None:
            continue
        xp = backends.for_array(a).xp
        if a.dtype.kind in "fc" and not bool(xp.isfinite(a).all()):
            raise FloatingPointError(
                f"anomaly detected: {op} {phase} produced NaN or inf in output {i} (shape {tuple(a.shape)})"
            )
