"""How a Module shows itself: the nested ``repr`` and the ``summary()`` table of parameter counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labkit.nn.module import Module

__all__ = ["module_repr", "module_summary"]


def _indent(text: str, spaces: int = 2) -> str:
    """Indent every line but the first (PyTorch's ``_addindent``)."""
    return text.replace("\n", "\n" + " " * spaces)


def module_repr(module: Module) -> str:
    """``Name(extra)`` for a leaf; ``Name(\n  extra\n  (child): ...\n)`` with the children indented."""
    lines = [f"({name}): " + _indent(repr(m)) for name, m in module._modules.items() if m is not None]
    extra = module.extra_repr()
    if not lines:
        return f"{type(module).__name__}({extra})"
    body = ([_indent(extra)] if extra else []) + lines
    return type(module).__name__ + "(\n  " + "\n  ".join(body) + "\n)"


def module_summary(module: Module) -> str:
    """A table of every module with its parameter count (its own plus its descendants'), then the totals."""
    rows = [("name", "type", "params")]
    for name, m in module.named_modules():
        depth = name.count(".") + 1 if name else 0
        label = "  " * depth + (name or "(root)")
        rows.append((label, type(m).__name__, f"{m.num_parameters():,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    w0, w1, w2 = widths
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in [rows[0], tuple("-" * w for w in widths), *rows[1:]]]
    total, trainable = module.num_parameters(), module.num_parameters(trainable_only=True)
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
    ]
    return "\n".join(lines)
