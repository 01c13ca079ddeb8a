"""Device names: ``"cpu"``, ``"cuda"``, ``"cuda:1"``. A device only says where data lives."""

from __future__ import annotations


class Device:
    """A parsed device name with a type (``cpu``, ``cuda``, ...) and an optional index."""

    __slots__ = ("index", "type")

    def __init__(self, type: str, index: int | None = None) -> None:  # noqa: A002
        self.type = type
        self.index = index

    @classmethod
    def parse(cls, spec: DeviceLike) -> Device:
        if isinstance(spec, Device):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {type(spec).__name__}")
        name, sep, idx = spec.strip().partition(":")
        if not name or (sep and not idx.isdigit()):
            raise ValueError(f"device: expected 'TYPE' or 'TYPE:INDEX' like 'cuda:0', got {spec!r}")
        return cls(name, int(idx) if sep else None)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = Device.parse(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, Device):
            return NotImplemented
        if self.type != other.type:
            return False
        # "cuda" means the current device, which is index 0 unless a backend says otherwise
        return (self.index or 0) == (other.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))


DeviceLike = str | Device
CPU = Device("cpu")
