"""Fused recurrent steps: one Function per LSTM, GRU and Elman RNN time step.

A recurrent layer spends its time in many small steps, so each step is kept to two
recorded ops: one GEMM ``h @ W_hh.T`` for all gates (done by the caller) and one of
these fused pointwise Functions, which turns the pre-activation gates into the new
state in a single forward and produces every input gradient in a single backward.

Inputs are the two halves of the pre-activation gates, ``x_gates = x @ W_ih.T + b``
and ``h_gates = h @ W_hh.T + b``, kept apart because the GRU needs ``h_gates`` alone
inside its candidate, ``n = tanh(x_n + r * h_n)``; gate order is PyTorch's (LSTM
i, f, g, o; GRU r, z, n). An optional per-step ``mask`` (bool ``(B, 1)``, True where a
row's sequence is running) keeps the previous state of the other rows, which is how
variable-length batches run without packing.

Each backward is one pass of plain array code (``_lstm_grad`` ...), so it is first order
only: a backward with ``create_graph=True`` through a fused step raises a clear
``NotImplementedError`` instead of silently treating the gradient as a constant.
"""

from __future__ import annotations

import contextlib
from typing import Any

from labkit.backends.registry import array_module, backends
from labkit.core.function import Function
from labkit.core.mode import is_grad_enabled
from labkit.core.tensor import Tensor

__all__ = ["gru_step", "lstm_step", "rnn_step"]


def _sigmoid_(xp: Any, a: Any, tanh_block: slice | None = None) -> None:
    """In-place ``sigmoid(a) = 1 / (1 + exp(-a))``; columns in ``tanh_block`` get ``tanh(a)``.

    One exp pass over every gate: ``tanh(a) = 2 sigmoid(2a) - 1``. ``exp(-a)`` overflows to inf
    for very negative ``a``, which gives the exact limit 0 (the warning is silenced).
    """
    xp.negative(a, out=a)
    if tanh_block is not None:
        a[:, tanh_block] *= 2
    with _quiet_overflow(xp):
        xp.exp(a, out=a)
    a += 1
    xp.divide(1, a, out=a)
    if tanh_block is not None:
        g = a[:, tanh_block]
        g *= 2
        g -= 1


def _quiet_overflow(xp: Any) -> Any:
    errstate = getattr(xp, "errstate", None)  # numpy warns on overflow, cupy does not
    return errstate(over="ignore") if errstate is not None else contextlib.nullcontext()


class _FusedStep(Function):
    """Base of the fused steps: their backward kernels are not differentiable."""

    def _first_order_only(self) -> None:
        if is_grad_enabled():  # backward runs with grad enabled only under create_graph=True
            raise NotImplementedError(
                f"{self.op_name}: double backward through the fused recurrent step is not implemented "
                "(backward was called with create_graph=True); build the step from primitive ops "
                "(linear, sigmoid, tanh, mul) if you need second derivatives"
            )


def _wrap_all(arrays: tuple[Any, ...], wanted: tuple[bool, ...]) -> list[Tensor | None]:
    """Kernel outputs (one per True in ``wanted``) as Tensors, None where not wanted."""
    it = iter(arrays)
    return [Tensor._wrap(next(it)) if w else None for w in wanted]


# ---- LSTM -------------------------------------------------------------------------------


class LSTMStep(_FusedStep):
    """``(h, c)`` from gates ``x_gates + h_gates`` (B, 4H) and ``c_prev`` (B, H).

    ``i, f, o = sigmoid(.)``, ``g = tanh(.)``, ``c = f * c_prev + i * g``, ``h = o * tanh(c)``;
    with a mask, rows where it is False keep ``h_prev`` and ``c_prev``.
    """

    op_name = "lstm_step"

    def __init__(self, mask: Any = None) -> None:
        self.mask = mask

    def forward(self, x_gates: Any, h_gates: Any, c_prev: Any, h_prev: Any = None) -> tuple[Any, Any]:
        xp = array_module(x_gates)
        hid = c_prev.shape[-1]
        act = x_gates + h_gates  # (B, 4H), becomes the activated gates in place
        _sigmoid_(xp, act, slice(2 * hid, 3 * hid))
        c = act[:, hid : 2 * hid] * c_prev
        c += act[:, :hid] * act[:, 2 * hid : 3 * hid]
        tanh_c = xp.tanh(c)
        h = act[:, 3 * hid :] * tanh_c
        if self.mask is not None:
            h = xp.where(self.mask, h, h_prev)
            c = xp.where(self.mask, c, c_prev)
        self.save_for_backward(act, c_prev, tanh_c)
        return h, c

    def backward(self, gh: Tensor, gc: Tensor) -> tuple[Tensor | None, ...]:
        self._first_order_only()
        act, c_prev, tanh_c = self.saved_tensors
        needs = self.needs_input_grad
        wanted = (needs[0] or needs[1], needs[2], len(needs) > 3 and needs[3])
        arrays = _lstm_grad(gh.data, gc.data, act.data, c_prev.data, tanh_c.data, self.mask, wanted)
        g_gates, g_c, g_h = _wrap_all(arrays, wanted)
        # x_gates and h_gates enter as a sum, so they share one gradient
        return (g_gates if needs[0] else None, g_gates if needs[1] else None, g_c, g_h)[: len(needs)]


def _lstm_grad(
    gh: Any, gc: Any, act: Any, c_prev: Any, tanh_c: Any, mask: Any, wanted: tuple[bool, ...]
) -> tuple[Any, ...]:
    """``d(gates)`` (B, 4H), ``d(c_prev)`` and, with a mask, ``d(h_prev)``: those ``wanted``, in one pass."""
    xp = array_module(gh)
    hid = gh.shape[-1]
    i, f, g, o = (act[:, k * hid : (k + 1) * hid] for k in range(4))
    gh_run, gc_run = (gh, gc) if mask is None else (gh * mask, gc * mask)
    # dL/dc through both c and h = o * tanh(c)
    g_c = 1 - tanh_c * tanh_c
    g_c *= o
    g_c *= gh_run
    g_c += gc_run
    out = []
    if wanted[0]:
        g_act = xp.empty_like(act)
        xp.multiply(g_c, g, out=g_act[:, :hid])
        xp.multiply(g_c, c_prev, out=g_act[:, hid : 2 * hid])
        xp.multiply(g_c, i, out=g_act[:, 2 * hid : 3 * hid])
        xp.multiply(gh_run, tanh_c, out=g_act[:, 3 * hid :])
        slope = 1 - act  # sigmoid' = a (1 - a); tanh' = 1 - a^2 for the g block
        slope *= act
        g_block = slope[:, 2 * hid : 3 * hid]
        xp.multiply(g, g, out=g_block)
        xp.subtract(1, g_block, out=g_block)
        g_act *= slope
        out.append(g_act)
    if wanted[1]:
        g_c_prev = g_c * f
        out.append(g_c_prev if mask is None else xp.where(mask, g_c_prev, gc))
    if wanted[2]:
        out.append(gh * ~mask)
    return tuple(out)


# ---- GRU --------------------------------------------------------------------------------


class GRUStep(_FusedStep):
    """``h`` from ``x_gates`` (B, 3H), ``h_gates`` (B, 3H) and ``h_prev`` (B, H), PyTorch's GRU.

    ``r, z = sigmoid(x_rz + h_rz)``, ``n = tanh(x_n + r * h_n)``, ``h = (1 - z) * n + z * h_prev``;
    with a mask, rows where it is False keep ``h_prev``.
    """

    op_name = "gru_step"

    def __init__(self, mask: Any = None) -> None:
        self.mask = mask

    def forward(self, x_gates: Any, h_gates: Any, h_prev: Any) -> Any:
        xp = array_module(x_gates)
        hid = h_prev.shape[-1]
        rz = x_gates[:, : 2 * hid] + h_gates[:, : 2 * hid]  # (B, 2H)
        _sigmoid_(xp, rz)
        h_n = h_gates[:, 2 * hid :]
        n = rz[:, :hid] * h_n
        n += x_gates[:, 2 * hid :]
        xp.tanh(n, out=n)
        h = h_prev - n
        h *= rz[:, hid:]
        h += n
        if self.mask is not None:
            h = xp.where(self.mask, h, h_prev)
        self.save_for_backward(rz, n, h_n, h_prev)
        return h

    def backward(self, gh: Tensor) -> tuple[Tensor | None, ...]:
        self._first_order_only()
        rz, n, h_n, h_prev = self.saved_tensors
        wanted = self.needs_input_grad
        return tuple(_wrap_all(_gru_grad(gh.data, rz.data, n.data, h_n.data, h_prev.data, self.mask, wanted), wanted))


def _gru_grad(gh: Any, rz: Any, n: Any, h_n: Any, h_prev: Any, mask: Any, wanted: tuple[bool, ...]) -> tuple[Any, ...]:
    """``d(x_gates)``, ``d(h_gates)`` (B, 3H) and ``d(h_prev)`` (B, H): those ``wanted``, in one pass."""
    xp = array_module(gh)
    hid = gh.shape[-1]
    r, z = rz[:, :hid], rz[:, hid:]
    gh_run = gh if mask is None else gh * mask
    g_n = 1 - n * n  # through n = tanh(.)
    g_n *= 1 - z
    g_n *= gh_run
    g_x = xp.empty((*gh.shape[:-1], 3 * hid), dtype=gh.dtype)
    slope = 1 - rz
    slope *= rz
    xp.multiply(g_n, h_n, out=g_x[:, :hid])
    xp.multiply(h_prev - n, gh_run, out=g_x[:, hid : 2 * hid])
    g_x[:, : 2 * hid] *= slope
    g_x[:, 2 * hid :] = g_n
    out = []
    if wanted[0]:
        out.append(g_x)
    if wanted[1]:
        g_h = g_x.copy() if wanted[0] else g_x
        xp.multiply(g_n, r, out=g_h[:, 2 * hid :])
        out.append(g_h)
    if wanted[2]:
        g_prev = gh_run * z
        out.append(g_prev if mask is None else xp.where(mask, g_prev, gh))
    return tuple(out)


# ---- Elman RNN --------------------------------------------------------------------------


class RNNStep(_FusedStep):
    """``h = act(x_gates + h_gates)`` (B, H), ``act`` tanh or relu; a mask keeps ``h_prev``."""

    op_name = "rnn_step"

    def __init__(self, nonlinearity: str = "tanh", mask: Any = None) -> None:
        self.nonlinearity = nonlinearity
        self.mask = mask

    def forward(self, x_gates: Any, h_gates: Any, h_prev: Any = None) -> Any:
        xp = array_module(x_gates)
        h = x_gates + h_gates
        if self.nonlinearity == "tanh":
            xp.tanh(h, out=h)
        else:
            xp.maximum(h, 0, out=h)
        self.save_for_backward(h)
        return h if self.mask is None else xp.where(self.mask, h, h_prev)

    def backward(self, gh: Tensor) -> tuple[Tensor | None, ...]:
        self._first_order_only()
        (h,) = self.saved_tensors
        needs = self.needs_input_grad
        wanted = (needs[0] or needs[1], len(needs) > 2 and needs[2])
        g_pre, g_h = _wrap_all(_rnn_grad(gh.data, h.data, self.nonlinearity, self.mask, wanted), wanted)
        return (g_pre if needs[0] else None, g_pre if needs[1] else None, g_h)[: len(needs)]


def _rnn_grad(gh: Any, h: Any, nonlinearity: str, mask: Any, wanted: tuple[bool, ...]) -> tuple[Any, ...]:
    """``d(pre-activation)`` (B, H) and, with a mask, ``d(h_prev)``: those ``wanted``, in one pass."""
    gh_run = gh if mask is None else gh * mask
    out = []
    if wanted[0]:
        if nonlinearity == "tanh":
            g_pre = 1 - h * h
            g_pre *= gh_run
        else:
            g_pre = gh_run * (h > 0)
        out.append(g_pre)
    if wanted[1]:
        out.append(gh * ~mask)
    return tuple(out)


# ---- wrappers ---------------------------------------------------------------------------


def _step_mask(mask: Any, like: Tensor, op: str) -> Any:
    """A mask as a bool ``(B, 1)`` array on ``like``'s device, or None."""
    if mask is None:
        return None
    batch = like.shape[0]
    backend = backends.for_array(like.data)
    data = mask.data if isinstance(mask, Tensor) else mask
    if not hasattr(data, "dtype"):
        data = backends.for_device("cpu").xp.asarray(data)
    if data.dtype.kind != "b":
        raise TypeError(f"{op}: expected a bool mask, got {data.dtype}")
    if tuple(data.shape) not in ((batch,), (batch, 1)):
        raise ValueError(f"{op}: expected a mask of shape ({batch},) or ({batch}, 1), got {tuple(data.shape)}")
    return backend.asarray(data, data.dtype, backend.device_of(like.data)).reshape(batch, 1)


def _check_step(op: str, gate_count: int, x_gates: Any, h_gates: Any, state: dict[str, Any]) -> int:
    """Validate a step's tensors: gates (B, G*H), states (B, H), one float dtype. Returns H."""
    named = {"x_gates": x_gates, "h_gates": h_gates, **state}
    for name, t in named.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a Tensor for {name}, got {type(t).__name__}")
        if t.ndim != 2:
            raise ValueError(f"{op}: expected {name} of shape (B, features), got {t.shape}")
    first = next(iter(state.values()))
    batch, hid = first.shape
    for name, t in named.items():
        want = (batch, gate_count * hid) if name.endswith("gates") else (batch, hid)
        if t.shape != want:
            raise ValueError(f"{op}: expected {name} of shape {want}, got {t.shape}")
        if t.dtype != x_gates.dtype or t.dtype.kind != "f":
            raise TypeError(
                f"{op}: expected every input in one float dtype, got {name} {t.dtype}, x_gates {x_gates.dtype}"
            )
    return hid


def lstm_step(
    x_gates: Tensor, h_gates: Tensor, c_prev: Tensor, h_prev: Tensor | None = None, mask: Any = None
) -> tuple[Tensor, Tensor]:
    """One fused LSTM step: ``(h, c)``, each (B, H).

    ``x_gates`` and ``h_gates`` (B, 4H) are ``x @ W_ih.T + b_ih`` and ``h_prev @ W_hh.T + b_hh``
    (any split of the sum works: only ``x_gates + h_gates`` matters). With ``mask`` (bool
    (B,) or (B, 1)), rows where it is False return ``h_prev`` and ``c_prev`` unchanged, so
    ``h_prev`` is required then.
    """
    state = {"c_prev": c_prev} if mask is None else {"c_prev": c_prev, "h_prev": h_prev}
    if mask is not None and h_prev is None:
        raise ValueError("lstm_step: a mask keeps h_prev for finished rows, so expected h_prev, got None")
    _check_step("lstm_step", 4, x_gates, h_gates, state)
    m = _step_mask(mask, c_prev, "lstm_step")
    return LSTMStep(m)(x_gates, h_gates, *state.values())


def gru_step(x_gates: Tensor, h_gates: Tensor, h_prev: Tensor, mask: Any = None) -> Tensor:
    """One fused GRU step (PyTorch's formula): ``h`` (B, H).

    ``x_gates = x @ W_ih.T + b_ih`` and ``h_gates = h_prev @ W_hh.T + b_hh``, both (B, 3H) in
    r, z, n order. With ``mask`` (bool (B,) or (B, 1)), rows where it is False keep ``h_prev``.
    """
    _check_step("gru_step", 3, x_gates, h_gates, {"h_prev": h_prev})
    return GRUStep(_step_mask(mask, h_prev, "gru_step"))(x_gates, h_gates, h_prev)


def rnn_step(
    x_gates: Tensor, h_gates: Tensor, h_prev: Tensor | None = None, mask: Any = None, nonlinearity: str = "tanh"
) -> Tensor:
    """One fused Elman RNN step: ``h = act(x_gates + h_gates)`` (B, H), ``act`` tanh or relu.

    With ``mask`` (bool (B,) or (B, 1)), rows where it is False keep ``h_prev`` (required then).
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_step: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
    if mask is not None and h_prev is None:
        raise ValueError("rnn_step: a mask keeps h_prev for finished rows, so expected h_prev, got None")
    if not isinstance(x_gates, Tensor):
        raise TypeError(f"rnn_step: expected a Tensor for x_gates, got {type(x_gates).__name__}")
    state = {"h_prev": h_prev if h_prev is not None else x_gates}
    _check_step("rnn_step", 1, x_gates, h_gates, state)
    m = _step_mask(mask, x_gates, "rnn_step")
    return RNNStep(nonlinearity, m)(x_gates, h_gates, *(() if m is None else (h_prev,)))
