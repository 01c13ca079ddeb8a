"""``Module``: the base class of layers and models.

Assigning a ``Parameter``, a ``Module`` or a registered buffer to an attribute
registers it in an ordered registry (``_parameters``, ``_modules``, ``_buffers``)
*and* stores it in the instance ``__dict__``, so ``self.weight`` in ``forward`` is a
plain attribute read. Registries give dotted names (``encoder.layers.0.weight``)
for ``state_dict``, checkpoints and trackers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from labkit.backends.device import Device
from labkit.backends.registry import backends
from labkit.core import dtypes
from labkit.core.creation import to_array
from labkit.core.tensor import RemovableHandle, Tensor
from labkit.nn.display import module_repr, module_summary
from labkit.nn.parameter import Parameter

_REGISTRIES = ("_parameters", "_buffers", "_modules")


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` did not match: keys the model has but the state lacks, and the reverse."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer: subclasses call ``super().__init__()`` and define ``forward``."""

    training: bool
    _forward_pre_hooks: list[Callable[..., Any]] | None = None
    _forward_hooks: list[Callable[..., Any]] | None = None

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent"] = set()
        d["_modules"] = {}
        d["training"] = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: forward() is not defined")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_pre_hooks or self._forward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        for hook in list(self._forward_pre_hooks or ()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks or ()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook: Callable[[Module, tuple[Any, ...]], Any]) -> RemovableHandle:
        """Call ``hook(module, args)`` before ``forward``; a non-None result replaces the args."""
        if self._forward_pre_hooks is None:
            self.__dict__["_forward_pre_hooks"] = []
        self._forward_pre_hooks.append(hook)  # type: ignore[union-attr]
        return RemovableHandle(self._forward_pre_hooks, hook)  # type: ignore[arg-type]

    def register_forward_hook(self, hook: Callable[[Module, tuple[Any, ...], Any], Any]) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after ``forward``; a non-None result replaces the output."""
        if self._forward_hooks is None:
            self.__dict__["_forward_hooks"] = []
        self._forward_hooks.append(hook)  # type: ignore[union-attr]
        return RemovableHandle(self._forward_hooks, hook)  # type: ignore[arg-type]

    # ---- registration ------------------------------------------------------------

    def _registries(self, what: str) -> dict[str, Any]:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call in {type(self).__name__}")
        return d

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            if name not in self._registries("parameter")["_parameters"]:
                self._unregister(name)  # replacing in place keeps the registry's order
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            if name not in self._registries("module")["_modules"]:
                self._unregister(name)
            d["_modules"][name] = value
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r}: expected Parameter or None"
                )
            d["_parameters"][name] = None
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r}: expected Module or None"
                )
            d["_modules"][name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r}: expected Tensor or None")
            d["_buffers"][name] = value
        d[name] = value

    def __delattr__(self, name: str) -> None:
        self._unregister(name)
        object.__delattr__(self, name)

    def _unregister(self, name: str) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            return
        for reg in _REGISTRIES:
            d[reg].pop(name, None)
        d["_non_persistent"].discard(name)

    def _check_new_name(self, kind: str, name: Any, registry: str) -> None:
        self._registries(kind)
        if not isinstance(name, str):
            raise TypeError(f"{kind} name: expected str, got {type(name).__name__}")
        if not name or "." in name:
            raise ValueError(f"{kind} name: expected a non-empty name without '.', got {name!r}")
        if hasattr(self, name) and name not in self.__dict__[registry]:
            raise ValueError(f"{kind} name {name!r}: an attribute of {type(self).__name__} already has this name")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self._check_new_name("parameter", name, "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter {name!r}: expected Parameter or None, got {type(param).__name__}")
        if name not in self.__dict__["_parameters"]:
            self._unregister(name)
        self.__dict__["_parameters"][name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not learnable (running means); in ``state_dict`` if persistent."""
        self._check_new_name("buffer", name, "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer {name!r}: expected Tensor or None, got {type(tensor).__name__}")
        if name not in self.__dict__["_buffers"]:
            self._unregister(name)
        self.__dict__["_buffers"][name] = tensor
        if persistent:
            self.__dict__["_non_persistent"].discard(name)
        else:
            self.__dict__["_non_persistent"].add(name)
        self.__dict__[name] = tensor

    def add_module(self, name: str, module: Module | None) -> None:
        self._check_new_name("module", name, "_modules")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module {name!r}: expected Module or None, got {type(module).__name__}")
        if name not in self.__dict__["_modules"]:
            self._unregister(name)
        self.__dict__["_modules"][name] = module
        self.__dict__[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The module at dotted path ``target`` (``""`` is this module)."""
        module: Module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise ValueError(
                    f"get_submodule: no submodule {part!r} in {target!r}; children: {list(module._modules)}"
                )
            module = child
        return module

    # ---- traversal -----------------------------------------------------------------

    def named_modules(self, memo: set[int] | None = None, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """``(dotted name, module)`` for this module and every descendant, each once (pre-order)."""
        memo = set() if memo is None else memo
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:  # explicit stack: deep RNN stacks or long Sequentials must not recurse
            name, module = stack.pop()
            if id(module) in memo:
                continue
            memo.add(id(module))
            yield name, module
            kids = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix=prefix) if recurse else iter([(prefix, self)])
        for mod_name, module in modules:
            for name, value in module.__dict__[registry].items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_name}.{name}" if mod_name else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs; a shared parameter appears once, under its first name."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- modes and bulk changes ---------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise TypeError(f"train: expected mode to be a bool, got {type(mode).__name__}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            g = p.grad
            if g is None:
                continue
            if set_to_none:
                p.grad = None
            elif g.creator is not None:  # a grad from create_graph=True: cut it from its graph
                p.grad = Tensor._wrap(backends.for_array(g.data).xp.zeros_like(g.data))
            else:
                g.data[...] = 0

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every descendant (children first), then on this module."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    def to(self, target: Any = None, dtype: Any = None) -> Module:
        """Move parameters and buffers to a device and/or cast float ones to a dtype, in place.

        The same Parameter objects get new ``.data`` (and ``.grad``), so optimizers that
        hold them keep working. Integer and bool buffers keep their dtype.
        """
        device = None
        if isinstance(target, (str, Device)):
            device = Device.parse(target)
        elif target is not None:
            dtype = target
        dt = dtypes.as_dtype(dtype)
        if dt is not None and dt.kind != "f":
            raise TypeError(f"Module.to: expected a float dtype, got {dt}")

        def convert(t: Tensor) -> None:
            cast = dt if dt is not None and t.data.dtype.kind == "f" else None
            t.data = to_array(t.data, cast, device)

        seen: set[int] = set()
        for t in (*self.parameters(), *self.buffers()):
            if id(t) in seen:
                continue
            seen.add(id(t))
            convert(t)
            if t.grad is not None:
                convert(t.grad)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Module:
        return self.to("cuda" if index is None else f"cuda:{index}")

    def float(self) -> Module:
        return self.to(dtype=dtypes.float32)

    def double(self) -> Module:
        return self.to(dtype=dtypes.float64)

    def half(self) -> Module:
        return self.to(dtype=dtypes.float16)

    # ---- state -------------------------------------------------------------------

    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        """Every parameter and persistent buffer by full name (shared ones under each name)."""
        for mod_name, module in self.named_modules():
            d = module.__dict__
            dot = mod_name + "." if mod_name else ""
            for name, p in d["_parameters"].items():
                if p is not None:
                    yield dot + name, p
            for name, b in d["_buffers"].items():
                if b is not None and name not in d["_non_persistent"]:
                    yield dot + name, b

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Name -> Tensor for parameters and persistent buffers, detached and sharing memory."""
        return OrderedDict((prefix + name, t if keep_vars else Tensor._wrap(t.data)) for name, t in self._state_items())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values (Tensors or arrays) into the existing parameters and buffers.

        Nothing is copied unless every shape matches; with ``strict`` missing or
        unexpected keys are errors too. Returns ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of name -> Tensor, got {type(state_dict).__name__}")
        own = dict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if not isinstance(value, Tensor) and not (hasattr(value, "shape") and hasattr(value, "dtype")):
                raise TypeError(f"load_state_dict: expected a Tensor or array for {name!r}, got {type(value).__name__}")
            if tuple(value.shape) != tuple(target.shape):
                mismatched.append(
                    f"shape mismatch for {name}: checkpoint {tuple(value.shape)}, model {tuple(target.shape)}"
                )
        problems = mismatched
        if strict:
            problems = (
                ([f"missing keys: {missing}"] if missing else [])
                + ([f"unexpected keys: {unexpected}"] if unexpected else [])
                + mismatched
            )
        if problems:
            raise ValueError("load_state_dict: " + "; ".join(problems))
        for name, target in own.items():
            if name in state_dict:
                value = state_dict[name]
                source = value.data if isinstance(value, Tensor) else value
                target.data[...] = to_array(
                    source, target.data.dtype, backends.for_array(target.data).device_of(target.data)
                )
        return IncompatibleKeys(missing, unexpected)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of scalars in the (unique) parameters, optionally only those requiring grad."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- display -------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """Layer settings shown in ``repr`` (``in_features=3, out_features=4``)."""
        return ""

    def __repr__(self) -> str:
        return module_repr(self)

    def summary(self) -> str:
        """A table of every module with its parameter count (its own plus its descendants')."""
        return module_summary(self)
