"""The numerical half of the conformance kit: ops, modules and kernels of one plugin.

Each function checks one thing and raises on failure (``GradcheckError``, ``AssertionError``,
``TypeError`` ...) with a message that says what disagreed; :mod:`labkit.plugins.conformance`
turns every call into one report item. All checks run in float64 (kernels also in float32).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from labkit.core.autograd import grad as autograd_grad
from labkit.core.creation import tensor
from labkit.core.function import Function
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.plugins.api import call_meta
from labkit.plugins.registry import Entry, Registry
from labkit.testing.gradcheck import GradcheckError, gradcheck, gradgradcheck
from labkit.testing.opspec import OpSpec, make_inputs

#: backend name of a kernel -> the device its arrays live on
BACKEND_DEVICES = {"numpy": "cpu", "cupy": "cuda"}
#: kernel vs built-in tolerances (rtol, atol) per dtype: summation order may differ, nothing else
KERNEL_TOLERANCES = {np.float64: (1e-7, 1e-9), np.float32: (2e-4, 2e-5)}


def load_specs(entry: Entry, registry: Registry) -> list[OpSpec]:
    """The ``OpSpec`` rows an op or kernel entry registered (``specs=``); errors say how to add them."""
    registry.get(entry.kind, entry.name)  # the object itself must import
    hook = entry.meta.get("specs")
    if hook is None:
        how = (
            "registry.op(name, fn, specs=...)"
            if entry.kind == "op"
            else "registry.kernel(function, backend, forward, specs=...)"
        )
        raise ValueError(f"no specs registered: pass {how} with labkit.testing.opspec.OpSpec rows")
    specs = call_meta(hook)
    specs = list(specs) if isinstance(specs, Sequence | Iterator) else specs
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"specs of {entry.kind} {entry.name!r}: expected a non-empty list of OpSpec, got {specs!r}")
    bad = [s for s in specs if not isinstance(s, OpSpec)]
    if bad:
        raise TypeError(f"specs of {entry.kind} {entry.name!r}: expected OpSpec rows, got {type(bad[0]).__name__}")
    return specs


# ---- modules ----------------------------------------------------------------------------------


def _on_device(x: Any, device: str) -> Any:
    if not isinstance(x, Tensor) or device == "cpu":
        return x
    return tensor(x.numpy(), device=device, requires_grad=x.requires_grad)


def _float64_inputs(inputs: Sequence[Any], where: str) -> None:
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.data.dtype.kind == "f" and x.data.dtype != np.float64:
            raise TypeError(f"{where}: input {i} is {x.data.dtype}; expected float64 (finite differences need it)")


def check_module(entry: Entry, registry: Registry, device: str) -> str:
    """``example(Generator(0)) -> (module, inputs)``: forward, gradcheck w.r.t. inputs and parameters,
    gradgradcheck w.r.t. the differentiable inputs (the parameters when no input is differentiable)."""
    from labkit.nn.module import Module

    cls = registry.get("module", entry.name)
    hook = entry.meta.get("example")
    if hook is None:
        raise ValueError(
            "no example registered: pass registry.module(name, cls, example=...) returning "
            "(float64 module, tuple of float64 inputs) for a labkit.Generator"
        )
    made = call_meta(hook, Generator(0))
    if not (isinstance(made, tuple | list) and len(made) == 2):
        raise TypeError(f"example of {entry.name!r}: expected (module, inputs), got {type(made).__name__}")
    module, inputs = made
    inputs = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    if not isinstance(module, Module):
        raise TypeError(f"example of {entry.name!r}: expected a labkit.nn.Module, got {type(module).__name__}")
    if isinstance(cls, type) and not isinstance(module, cls):
        raise TypeError(
            f"example of {entry.name!r}: expected an instance of {cls.__name__}, got {type(module).__name__}"
        )
    params = [p for p in module.parameters() if p.requires_grad]
    for name, p in module.named_parameters():
        if p.data.dtype != np.float64:
            raise TypeError(f"example of {entry.name!r}: parameter {name!r} is {p.data.dtype}; call module.double()")
    _float64_inputs(inputs, f"example of {entry.name!r}")
    if device != "cpu":
        module.to(device)
        inputs = tuple(_on_device(x, device) for x in inputs)
    n = len(inputs)
    out = module(*inputs)
    outs = out if isinstance(out, tuple | list) else (out,)
    if not any(isinstance(o, Tensor) and o.data.dtype.kind == "f" for o in outs):
        raise TypeError(f"{entry.name}: forward returned no float Tensor, got {type(out).__name__}")

    def forward(*args: Any) -> Any:  # parameters ride along as extra inputs: gradcheck perturbs them in place
        return module(*args[:n])

    diff_inputs = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    gradcheck(forward, [*inputs, *params], name=f"gradcheck[{entry.name}]")
    if diff_inputs:
        gradgradcheck(forward, list(inputs))
        double = f"{len(diff_inputs)} input(s)"
    else:
        hessian_vector_check(forward, list(inputs), params, name=entry.name)
        double = "the parameters (Hessian-vector products; no differentiable input)"
    values = sum(int(p.data.size) for p in params)
    return f"gradcheck over {len(diff_inputs)} input(s) + {len(params)} parameters ({values} values); double backward w.r.t. {double}"


def hessian_vector_check(
    forward: Callable[..., Any],
    inputs: list[Any],
    params: list[Tensor],
    *,
    n_directions: int = 2,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    name: str = "module",
) -> None:
    """Double backward w.r.t. the parameters along random directions ``v``: ``H v`` from autograd
    (the gradient of ``<grad, v>`` built with ``create_graph=True``) against the central difference
    of the gradients ``(g(p + eps v) - g(p - eps v)) / (2 eps)``. A few passes instead of
    gradgradcheck's two per parameter value, for modules whose inputs are not differentiable
    (token ids)."""
    from labkit.backends.registry import array_module

    rng = np.random.default_rng(seed)
    outs = [o for o in _float_outputs(forward(*inputs)) if o.requires_grad]
    if not outs or not params:
        raise ValueError(f"{name}: no differentiable output or no parameter to check double backward on")
    cotangents = [rng.standard_normal(o.shape) for o in outs]
    device = outs[0].device

    def gradients(create_graph: bool) -> list[Tensor | None]:
        os = [o for o in _float_outputs(forward(*inputs)) if o.requires_grad]
        cots = [tensor(c.astype(o.data.dtype), device=device) for c, o in zip(cotangents, os)]
        return list(autograd_grad(os, params, cots, create_graph=create_graph, allow_unused=True))

    def host(g: Tensor | None, p: Tensor) -> np.ndarray:
        return np.zeros(p.shape) if g is None else g.numpy()

    for d in range(n_directions):
        vs = [rng.standard_normal(p.shape) for p in params]
        gs = gradients(create_graph=True)
        terms = [(g * tensor(v, device=device)).sum() for g, v in zip(gs, vs) if g is not None]
        hv: list[Tensor | None] = [None] * len(params)
        if terms and any(t.requires_grad for t in terms):
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            hv = list(autograd_grad([total], params, allow_unused=True))
        originals = [p.data for p in params]
        try:
            for p, v in zip(params, vs):
                p.data = p.data + array_module(p.data).asarray(eps * v)
            plus = [host(g, p) for g, p in zip(gradients(False), params)]
            for p, o, v in zip(params, originals, vs):
                p.data = o - array_module(o).asarray(eps * v)
            minus = [host(g, p) for g, p in zip(gradients(False), params)]
        finally:
            for p, o in zip(params, originals):
                p.data = o
        for k, (p, h) in enumerate(zip(params, hv)):
            numeric = (plus[k] - minus[k]) / (2 * eps)
            analytic = host(h, p)
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                j = (
                    np.unravel_index(int(np.argmax(np.abs(analytic - numeric))), analytic.shape)
                    if analytic.size
                    else ()
                )
                raise GradcheckError(
                    f"double backward of {name}: parameter {k} {tuple(p.shape)}, direction {d}, element "
                    f"{tuple(int(i) for i in j)}: Hessian-vector product {analytic[j]:.6g}, numerical {numeric[j]:.6g}"
                )


def _float_outputs(out: Any) -> list[Tensor]:
    outs = out if isinstance(out, tuple | list) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and o.data.dtype.kind == "f"]


# ---- kernels ----------------------------------------------------------------------------------


def _evaluate(spec: OpSpec, device: str, dtype: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outputs of ``spec.fn`` on its seeded inputs and (when ``spec.grad``) the inputs' gradients."""
    xs = make_inputs(spec, device, dtype)
    extra = [tensor(e, device=device) if isinstance(e, np.ndarray) else e for e in spec.extra]
    out = spec.fn(*xs, *extra, **spec.kwargs)
    outs = [o for o in (out if isinstance(out, tuple | list) else (out,)) if isinstance(o, Tensor)]
    values = [o.numpy() for o in outs]
    grads: list[np.ndarray] = []
    diff = [o for o in outs if o.requires_grad]
    if spec.grad and diff:
        rng = np.random.default_rng(spec.seed + 7)
        cotangents = [tensor(rng.standard_normal(o.shape).astype(o.data.dtype), device=device) for o in diff]
        gs = autograd_grad(diff, xs, cotangents, allow_unused=True)
        grads = [np.zeros(x.shape) if g is None else g.numpy() for x, g in zip(xs, gs)]
    return values, grads


@contextmanager
def _kernel(function_cls: type[Function], backend: str, forward: Callable[..., Any] | None) -> Iterator[list[int]]:
    """Only ``forward`` (None: the built-in) on ``backend`` inside the block; yields its call count."""
    calls = [0]
    saved = function_cls._kernels.get(backend)
    if forward is None:
        function_cls._kernels.pop(backend, None)
    else:

        def counted(fn_self: Any, *arrays: Any) -> Any:
            calls[0] += 1
            return forward(fn_self, *arrays)

        function_cls.register_kernel(backend, counted)
    try:
        yield calls
    finally:
        if saved is None:
            function_cls._kernels.pop(backend, None)
        else:
            function_cls._kernels[backend] = saved


def _compare(what: str, got: list[np.ndarray], want: list[np.ndarray], dtype: Any) -> None:
    if len(got) != len(want):
        raise AssertionError(f"{what}: the kernel gives {len(got)} arrays, the built-in {len(want)}")
    rtol, atol = KERNEL_TOLERANCES[dtype]
    for k, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape or g.dtype != w.dtype:
            raise AssertionError(f"{what} {k}: kernel {g.shape} {g.dtype}, built-in {w.shape} {w.dtype}")
        if not np.allclose(g, w, rtol=rtol, atol=atol):
            worst = np.unravel_index(int(np.argmax(np.abs(g - w))), g.shape) if g.size else ()
            raise AssertionError(
                f"{what} {k} ({np.dtype(dtype).name}): kernel {g[worst]:.8g} vs built-in {w[worst]:.8g} at "
                f"{tuple(int(i) for i in worst)} (rtol {rtol}, atol {atol})"
            )


def check_kernel(entry: Entry, registry: Registry, spec: OpSpec, device: str) -> str:
    """With the kernel selected, ``spec``'s outputs and input gradients equal the built-in's."""
    function_cls = registry.get("function", entry.meta["function"])
    forward = registry.get("kernel", entry.name)
    backend = entry.meta["backend"]
    calls = 0
    for dtype in (np.float64, np.float32):
        with _kernel(function_cls, backend, None):
            want_out, want_grad = _evaluate(spec, device, dtype)
        with _kernel(function_cls, backend, forward) as counter:
            got_out, got_grad = _evaluate(spec, device, dtype)
        calls += counter[0]
        _compare("output", got_out, want_out, dtype)
        _compare("gradient of input", got_grad, want_grad, dtype)
    if calls == 0:
        raise AssertionError(
            f"spec {spec.name!r} never called {function_cls.__name__} on {backend!r} arrays: the kernel was not exercised"
        )
    return f"outputs and gradients equal the built-in {function_cls.__name__} in float64 and float32 ({calls} kernel calls)"
