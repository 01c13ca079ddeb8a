"""Table-driven op checks: forward against a numpy reference, gradcheck, gradgradcheck.

Each row of an op family's table is an ``OpSpec``; ``check_op(spec, device)``
runs all three checks for it. labkit's op tests and plugin conformance checks use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labkit.core.creation import tensor
from labkit.core.tensor import Tensor
from labkit.testing.gradcheck import gradcheck, gradgradcheck


def _uniform(low: float, high: float) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    return lambda rng, shape: rng.uniform(low, high, size=shape)


#: input domains: where an op is smooth and defined
REAL = _uniform(-2.0, 2.0)
POSITIVE = _uniform(0.5, 2.0)
UNIT = _uniform(-0.9, 0.9)


@dataclass
class OpSpec:
    """One row of an op table.

    ``fn(*tensors, **kwargs)`` is the labkit op and ``ref(*arrays, **kwargs)`` its numpy
    reference. ``shapes`` gives each differentiable input's shape; ``extra`` are further
    positional arguments passed as they are (index arrays, masks...). ``domain`` draws
    inputs (one callable, or one per input). ``double`` asks for a gradgradcheck.
    """

    name: str
    fn: Callable[..., Any]
    ref: Callable[..., Any] | None
    shapes: Sequence[tuple[int, ...]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    extra: Sequence[Any] = ()
    domain: Any = REAL
    double: bool = True
    grad: bool = True
    atol: float = 1e-5
    rtol: float = 1e-3
    seed: int = 0

    def __str__(self) -> str:
        return self.name


def make_inputs(spec: OpSpec, device: str = "cpu", dtype: Any = np.float64) -> list[Tensor]:
    rng = np.random.default_rng(spec.seed)
    domains = spec.domain if isinstance(spec.domain, (list, tuple)) else [spec.domain] * len(spec.shapes)
    return [
        tensor(d(rng, s).astype(dtype), requires_grad=spec.grad, device=device) for d, s in zip(domains, spec.shapes)
    ]


def _host(a: Any) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.numpy()
    return np.asarray(a)


def _extra(spec: OpSpec, device: str) -> list[Any]:
    return [tensor(e, device=device) if isinstance(e, np.ndarray) else e for e in spec.extra]


def check_forward(spec: OpSpec, device: str = "cpu", dtype: Any = np.float64) -> None:
    if spec.ref is None:
        return
    xs = make_inputs(spec, device, dtype)
    out = spec.fn(*xs, *_extra(spec, device), **spec.kwargs)
    ref = spec.ref(*[x.numpy() for x in xs], *spec.extra, **spec.kwargs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    refs = ref if isinstance(ref, (tuple, list)) else (ref,)
    assert len(outs) == len(refs), f"{spec.name}: {len(outs)} outputs, reference has {len(refs)}"
    tol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-10
    for k, (o, r) in enumerate(zip(outs, refs)):
        o, r = _host(o), np.asarray(r)
        assert o.shape == r.shape, f"{spec.name}: output {k} has shape {o.shape}, reference {r.shape}"
        if o.dtype.kind == "f":
            assert o.dtype == np.dtype(dtype), f"{spec.name}: output {k} is {o.dtype}, expected {np.dtype(dtype)}"
        np.testing.assert_allclose(o, r, rtol=tol * 10, atol=tol, err_msg=f"{spec.name}: output {k}")


def check_op(spec: OpSpec, device: str = "cpu") -> None:
    """Forward in float64 and float32, gradients by finite differences, and double backward."""
    check_forward(spec, device, np.float64)
    check_forward(spec, device, np.float32)
    if not spec.grad:
        return
    xs = make_inputs(spec, device)
    extra = _extra(spec, device)

    def fn(*args: Any) -> Any:
        return spec.fn(*args, *extra, **spec.kwargs)

    gradcheck(fn, xs, atol=spec.atol, rtol=spec.rtol, name=f"gradcheck[{spec.name}]")
    if spec.double:
        gradgradcheck(fn, xs, atol=spec.atol, rtol=spec.rtol)
