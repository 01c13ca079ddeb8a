"""Containers: ``Sequential``, ``ModuleList`` and ``ModuleDict``.

Children of ``Sequential`` and ``ModuleList`` are named ``"0"``, ``"1"``, ... so
parameters read ``0.weight``, ``layers.1.bias`` as in PyTorch. Deleting or
inserting renumbers the children to keep the names dense.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, overload

from labkit.nn.module import Module


def _check_module(owner: str, value: Any) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{owner}: expected a Module, got {type(value).__name__}")
    return value


class _IndexedContainer(Module):
    """Shared behaviour of Sequential and ModuleList: children keyed by their position."""

    def _normalize_index(self, idx: Any) -> int:
        if not isinstance(idx, int):
            raise TypeError(f"{type(self).__name__} index: expected int or slice, got {type(idx).__name__}")
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__} index {idx} is out of range for length {n}")
        return idx % n

    def _set_all(self, modules: list[Module]) -> None:
        for name in list(self._modules):
            delattr(self, name)
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, str(self._normalize_index(idx)), _check_module(type(self).__name__, module))

    def __delitem__(self, idx: int | slice) -> None:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            del mods[idx]
        else:
            del mods[self._normalize_index(idx)]
        self._set_all(mods)

    def append(self, module: Module) -> Any:
        self.add_module(str(len(self)), _check_module(f"{type(self).__name__}.append", module))
        return self

    def extend(self, modules: Iterable[Module]) -> Any:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, _check_module(f"{type(self).__name__}.insert", module))
        self._set_all(mods)

    def pop(self, index: int = -1) -> Module:
        module = self[index]
        del self[index]
        return module


class Sequential(_IndexedContainer):
    """Calls its modules in order: ``Sequential(Linear(2, 8), ReLU(), Linear(8, 1))``.

    ``Sequential(OrderedDict(fc=..., act=...))`` names the children instead.
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, m in modules[0].items():
                self.add_module(name, _check_module("Sequential", m))
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), _check_module("Sequential", m))

    @overload
    def __getitem__(self, idx: int) -> Module: ...

    @overload
    def __getitem__(self, idx: slice) -> Sequential: ...

    def __getitem__(self, idx: int | slice) -> Module:
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        return items[self._normalize_index(idx)][1]

    def __setitem__(self, idx: int, module: Module) -> None:
        name = list(self._modules)[self._normalize_index(idx)]
        setattr(self, name, _check_module("Sequential", module))

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(_IndexedContainer):
    """A list of modules whose parameters are registered; it has no ``forward``."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    @overload
    def __getitem__(self, idx: int) -> Module: ...

    @overload
    def __getitem__(self, idx: slice) -> ModuleList: ...

    def __getitem__(self, idx: int | slice) -> Module:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[self._normalize_index(idx)]

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])


class ModuleDict(Module):
    """A dict of modules (insertion-ordered) whose parameters are registered.

    Keys must be valid attribute-free names: ``"train"`` or ``"to"`` would shadow
    Module methods and are refused.
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"ModuleDict: no key {key!r}; keys: {list(self._modules)}") from None

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, _check_module("ModuleDict", module))

    def __delitem__(self, key: str) -> None:
        self[key]  # raises a KeyError listing the keys
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> list[str]:
        return list(self._modules.keys())

    def values(self) -> list[Module]:
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._modules.items())

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: expected (key, module) pairs, got {pair!r}")
            self[pair[0]] = pair[1]

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            delattr(self, key)
