"""The backward pass: iterative, over functions in reverse topological order.

Graph: a Tensor made by an op has ``creator`` (a ``Function``) and ``_out_idx``.
Each function holds ``next_edges``: per input, ``(creator, out_idx)`` for a
non-leaf, ``(leaf_tensor, -1)`` for a leaf that requires grad, or None. The pass
orders the reachable functions with an explicit-stack depth-first search (no
recursion, so graphs of any depth work), then walks them root first, each one
receiving the summed gradients of all its consumers before it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.backends.registry import backends
from labkit.core.function import Function, _check_finite
from labkit.core.mode import _MODE, Mode, get_mode
from labkit.core.tensor import POST_ACCUMULATE_HOOKS, Tensor

_wrap = Tensor._wrap
_ndarray = np.ndarray


def _sum(a: Any, b: Any) -> Tensor:
    """``a + b`` of two gradient arrays as a Tensor (numpy turns a sum of 0-d arrays into a scalar)."""
    s = a + b
    if type(s) is not _ndarray and isinstance(s, np.generic):
        s = np.asarray(s)
    return _wrap(s)


_SECOND_TIME = (
    "backward: trying to backward through the graph a second time ({op} was already freed); "
    "pass retain_graph=True to the first backward() if you need to call it again"
)


def _topo_order(roots: list[Function]) -> list[Function]:
    """Functions reachable from roots, each after all of its consumers (reverse post-order)."""
    order: list[Function] = []
    seen: set[int] = set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack: list[tuple[Function, int]] = [(root, 0)]
        while stack:
            fn, i = stack[-1]
            edges = fn.next_edges
            while i < len(edges):
                e = edges[i]
                i += 1
                if e is not None and e[1] >= 0 and id(e[0]) not in seen:
                    seen.add(id(e[0]))
                    stack[-1] = (fn, i)
                    stack.append((e[0], 0))
                    break
            else:
                stack.pop()
                order.append(fn)
    order.reverse()
    return order


def _root_grad(t: Tensor, g: Any) -> Tensor:
    if g is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for a tensor with one element, got shape {t.shape}; "
                "pass grad= with the same shape"
            )
        xp = backends.for_array(t.data).xp
        return Tensor._wrap(xp.ones(t.data.shape, dtype=t.data.dtype))
    if not isinstance(g, Tensor):
        g = Tensor(g, dtype=t.dtype, device=t.device)
    if g.shape != t.shape:
        raise ValueError(f"backward: grad has shape {g.shape}, expected the output's shape {t.shape}")
    return g


def _run_backward(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Any],
    retain_graph: bool,
    create_graph: bool,
    targets: Sequence[Tensor] | None,
) -> list[Tensor | None] | None:
    """Shared engine of ``Tensor.backward`` and ``labkit.grad``.

    With ``targets`` None, leaf gradients are accumulated into ``.grad``; otherwise
    the gradients of ``targets`` are returned and no ``.grad`` is touched.
    """
    roots: list[Function] = []
    pending: dict[int, list[Any]] = {}  # id(fn) -> per-output grad sums
    leaf_grads: dict[int, list[Any]] = {}  # id(leaf) -> [leaf, grad]
    for t, g in zip(outputs, grad_outputs):
        if not t.requires_grad:
            raise RuntimeError(
                "backward: element 0 of outputs does not require grad and has no creator; "
                "did you compute it under no_grad() or from tensors without requires_grad=True?"
            )
        g = _root_grad(t, g)
        if t.creator is None:
            _add_leaf(leaf_grads, t, g)
            continue
        fn = t.creator
        if fn._saved is None:
            raise RuntimeError(_SECOND_TIME.format(op=fn.op_name))
        buf = pending.setdefault(id(fn), [None] * fn._n_out)
        buf[t._out_idx] = g if buf[t._out_idx] is None else buf[t._out_idx] + g
        roots.append(fn)

    # what labkit.grad asks for: leaves by id, non-leaf outputs by (id(fn), idx)
    want_leaf: dict[int, int] = {}
    want_node: dict[tuple[int, int], int] = {}
    results: list[Any] = []
    if targets is not None:
        for k, x in enumerate(targets):
            if not x.requires_grad:
                raise RuntimeError(f"grad: input {k} does not require grad")
            if x.creator is None:
                want_leaf[id(x)] = k
            else:
                want_node[(id(x.creator), x._out_idx)] = k
        results = [None] * len(targets)

    order = _topo_order(roots)
    if targets is not None:
        order = _prune(order, want_leaf, want_node)
    # leaves with post-accumulate hooks: how many edges still owe them a gradient (their .grad is
    # final, and their hooks fire, when that reaches 0: DDP starts a bucket's all-reduce there)
    waiting = _edges_to_hooked_leaves(order) if targets is None and POST_ACCUMULATE_HOOKS.live else None
    assigned: set[int] = set()  # bases of gradient arrays already given to a leaf's .grad

    mode = get_mode()
    anomaly = mode.anomaly
    token = _MODE.set(Mode(grad_enabled=create_graph, anomaly=anomaly))
    # gradient sums travel on the functions themselves (fn._gbuf): cheaper than a dict
    touched: list[Function] = []  # every function given a _gbuf here, cleared at the end
    for fn in roots:
        if id(fn) in pending:
            fn._gbuf = pending.pop(id(fn))
    try:
        for fn in order:
            buf = fn._gbuf
            if buf is None:
                if waiting:  # no gradient flows through fn: its leaf edges owe nothing
                    _settle(fn.next_edges, waiting, leaf_grads, create_graph, assigned)
                continue  # reached only through pruned paths
            fn._gbuf = None
            if fn._saved is None:
                raise RuntimeError(_SECOND_TIME.format(op=fn.op_name))
            if fn._n_out > 1 and None in buf:
                like = next(g for g in buf if g is not None)
                buf = [_zeros_like_meta(fn, i, like) if g is None else g for i, g in enumerate(buf)]
            if fn._hooks:
                for i, hooks in fn._hooks.items():
                    for hook in list(hooks):
                        r = hook(buf[i])
                        if r is not None:
                            buf[i] = r
            if want_node:
                for i in range(fn._n_out):
                    k = want_node.get((id(fn), i))
                    if k is not None:
                        results[k] = buf[i]
            try:
                gxs = fn.backward(*buf)
            except FloatingPointError as exc:
                if not anomaly:
                    raise
                raise FloatingPointError(
                    f"anomaly detected: {fn.op_name} backward produced NaN or inf ({exc})"
                ) from None
            if type(gxs) is not tuple:
                gxs = (gxs,)
            edges = fn.next_edges
            if len(gxs) != len(edges):
                raise RuntimeError(f"{fn.op_name}.backward returned {len(gxs)} gradients for {len(edges)} inputs")
            if anomaly:
                _check_finite(fn.op_name, "backward", tuple(g.data if g is not None else None for g in gxs))
            if not retain_graph:
                fn._saved = None
                fn.next_edges = ()
                if fn._hooks is not None:
                    fn._hooks = None
            for e, gx in zip(edges, gxs):
                if e is None or gx is None:
                    continue
                node, idx = e
                if idx < 0:
                    entry = leaf_grads.get(id(node))
                    if entry is None:
                        leaf_grads[id(node)] = [node, gx]
                    else:
                        entry[1] = entry[1] + gx if create_graph else _sum(entry[1].data, gx.data)
                else:
                    nbuf = node._gbuf
                    if nbuf is None:
                        nbuf = node._gbuf = [None] * node._n_out
                        touched.append(node)
                    prev = nbuf[idx]
                    if prev is None:
                        nbuf[idx] = gx
                    else:
                        nbuf[idx] = prev + gx if create_graph else _sum(prev.data, gx.data)
            if waiting:
                _settle(edges, waiting, leaf_grads, create_graph, assigned)
    finally:
        _MODE.reset(token)
        for fn in order:
            fn._gbuf = None
        for fn in touched:  # also functions outside a pruned order (labkit.grad of some inputs)
            fn._gbuf = None

    if targets is not None:
        for leaf, g in leaf_grads.values():
            k = want_leaf.get(id(leaf))
            if k is not None:
                results[k] = _run_leaf_hooks(leaf, g)
        return results

    token = _MODE.set(Mode(grad_enabled=create_graph, anomaly=mode.anomaly))
    try:
        for leaf, g in leaf_grads.values():
            _accumulate(leaf, g, create_graph, assigned)
    finally:
        _MODE.reset(token)
    return None


def _accumulate(leaf: Tensor, g: Tensor, create_graph: bool, assigned: set[int]) -> None:
    """Add the finished gradient ``g`` into ``leaf.grad`` (after its hooks), then run its post-accumulate hooks."""
    g = _run_leaf_hooks(leaf, g)
    if g.data.dtype != leaf.data.dtype:
        g = Tensor._wrap(g.data.astype(leaf.data.dtype))
    if leaf.grad is None:
        if not create_graph:
            # keep each leaf's .grad its own memory: in-place updates of one
            # (clip_grad_norm_) must not change another that shares a gradient
            base = g.data if g.data.base is None else g.data.base
            if id(base) in assigned or g.data.base is not None:
                g = Tensor._wrap(g.data.copy())
            assigned.add(id(g.data))
        leaf.grad = g
    elif create_graph:
        leaf.grad = leaf.grad + g
    else:
        leaf.grad = _sum(leaf.grad.data, g.data)
    if leaf._post_hooks:
        for hook in list(leaf._post_hooks):
            hook(leaf)


def _edges_to_hooked_leaves(order: list[Function]) -> dict[int, int]:
    """``id(leaf) -> number of edges into it`` over ``order``, for leaves with post-accumulate hooks."""
    counts: dict[int, int] = {}
    for fn in order:
        for e in fn.next_edges:
            if e is not None and e[1] < 0 and e[0]._post_hooks:
                counts[id(e[0])] = counts.get(id(e[0]), 0) + 1
    return counts


def _settle(
    edges: Sequence[Any],
    waiting: dict[int, int],
    leaf_grads: dict[int, list[Any]],
    create_graph: bool,
    assigned: set[int],
) -> None:
    """One function's edges are done: a hooked leaf owed nothing more gets its ``.grad`` now."""
    for e in edges:
        if e is None or e[1] >= 0:
            continue
        key = id(e[0])
        left = waiting.get(key)
        if left is None:
            continue
        if left > 1:
            waiting[key] = left - 1
            continue
        del waiting[key]
        entry = leaf_grads.pop(key, None)
        if entry is not None:  # (no entry: every edge passed None, so there is no gradient to give)
            _accumulate(entry[0], entry[1], create_graph, assigned)


def _add_leaf(leaf_grads: dict[int, list[Any]], leaf: Tensor, g: Tensor) -> None:
    entry = leaf_grads.get(id(leaf))
    if entry is None:
        leaf_grads[id(leaf)] = [leaf, g]
    else:
        entry[1] = entry[1] + g


def _run_leaf_hooks(leaf: Tensor, g: Tensor) -> Tensor:
    if leaf._hooks:
        for hook in list(leaf._hooks):
            r = hook(g)
            if r is not None:
                g = r
    return g


def _zeros_like_meta(fn: Function, i: int, like: Tensor) -> Tensor:
    """Zeros for an unused output of a multi-output function, on the device of ``like``."""
    shape, dtype = fn._out_meta[i]
    xp = backends.for_array(like.data).xp
    return Tensor._wrap(xp.zeros(shape, dtype=dtype))


def _prune(order: list[Function], want_leaf: dict[int, int], want_node: dict[tuple[int, int], int]) -> list[Function]:
    """Keep only functions on a path to a wanted tensor (order is consumers first)."""
    useful: set[int] = set()
    for fn in reversed(order):  # producers first
        if any((id(fn), i) in want_node for i in range(fn._n_out)):
            useful.add(id(fn))
            continue
        for e in fn.next_edges:
            if e is None:
                continue
            node, idx = e
            if (idx < 0 and id(node) in want_leaf) or (idx >= 0 and id(node) in useful):
                useful.add(id(fn))
                break
    return [fn for fn in order if id(fn) in useful]


def backward(tensor: Tensor, grad: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
    """Compute gradients of ``tensor`` and accumulate them into the leaves' ``.grad``."""
    _run_backward([tensor], [grad], retain_graph or create_graph, create_graph, None)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned rather than accumulated.

    With ``create_graph=True`` the result is itself differentiable (gradient
    penalties, Hessian-vector products).
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        gouts: list[Any] = [None] * len(outs)
    elif isinstance(grad_outputs, Tensor):
        gouts = [grad_outputs]
    else:
        gouts = list(grad_outputs)
    if len(gouts) != len(outs):
        raise ValueError(f"grad: got {len(gouts)} grad_outputs for {len(outs)} outputs")
    keep = create_graph if retain_graph is None else retain_graph
    res = _run_backward(outs, gouts, keep, create_graph, ins)
    assert res is not None
    for k, r in enumerate(res):
        if r is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {k} was not used to compute the outputs; pass allow_unused=True to get None for it"
            )
    return tuple(res)
