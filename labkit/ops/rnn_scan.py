"""The time loop of a recurrent layer: one direction over a padded, variable-length batch.

``rnn_scan`` takes the input projection of the whole sequence (one GEMM done by the
caller), splits it into steps with a single ``UnbindSteps`` op, and records two ops per
step: the hidden GEMM for all gates and a fused step from ``labkit.ops.rnn``. The
hidden weights' gradient is summed over the steps as one GEMM (``HiddenTaps``).

Lengths replace PyTorch's packed sequences: at step t the rows with ``t >= length``
are masked inside the fused step, so they keep their state (a finished row keeps its
last state; in the reverse direction a row waits at ``h0`` until its true end), and
their outputs are zeroed once after the loop. Steps past the longest sequence are
not computed at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.backends.registry import array_module, backends
from labkit.core.function import Function
from labkit.core.mode import is_grad_enabled
from labkit.core.tensor import Tensor
from labkit.ops.broadcast import broadcast_to
from labkit.ops.math import where
from labkit.ops.rnn import GRUStep, LSTMStep, RNNStep

__all__ = ["rnn_scan"]

#: gates per mode, stacked along the first axis of the weights in PyTorch's order
GATE_COUNT = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


class UnbindSteps(Function):
    """``(T, ...)`` -> T views ``(...)``: one op, where T ``getitem`` calls would each
    scatter into a full-size gradient."""

    op_name = "unbind_steps"

    def forward(self, x: Any) -> tuple[Any, ...]:
        return tuple(x[t] for t in range(x.shape[0]))

    def backward(self, *gys: Tensor) -> Tensor:
        return StackSteps()(*gys)


class StackSteps(Function):
    """T tensors ``(...)`` -> ``(T, ...)``; the inverse of ``UnbindSteps``, whose backward it is (and
    the other way round), so the gradient of T steps is one op, not T reshapes."""

    op_name = "stack_steps"

    def forward(self, *xs: Any) -> Any:
        return array_module(xs[0]).stack(xs)

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        return tuple(g if need else None for g, need in zip(UnbindSteps()(gy), self.needs_input_grad, strict=True))


# ---- the hidden GEMMs, with the weight gradient as one GEMM -------------------------------


def _first_order_only(op: str) -> None:
    if is_grad_enabled():  # backward runs with grad enabled only under create_graph=True
        raise NotImplementedError(f"{op}: double backward through a recurrent scan is not implemented")


class HiddenTaps(Function):
    """The weight side of a scan's hidden GEMMs ``h_{t-1} @ W_hh.T + b_hh``, as one op.

    Outputs ``count`` zero tensors ``(B, G*H)``, one per step, each added (as ``tap``) to
    that step's ``HiddenGates``: so each receives its step's gate gradient, and this op's
    backward computes ``dW_hh = sum_t dG_t^T h_{t-1}`` as ONE GEMM of depth ``T*B`` (and
    ``db_hh`` as one sum) instead of T thin GEMMs that the engine would add one by one.
    The scan appends each step's ``h_{t-1}`` array to ``h_prev`` as it runs.
    """

    op_name = "hidden_taps"

    def __init__(self, count: int, batch: int) -> None:
        self.count = count
        self.batch = batch
        self.h_prev: list[Any] = []

    def forward(self, weight: Any, bias: Any = None) -> tuple[Any, ...]:
        xp = array_module(weight)
        zero = xp.broadcast_to(xp.zeros((), dtype=weight.dtype), (self.batch, weight.shape[0]))  # no memory
        return (zero,) * self.count

    def backward(self, *g_taps: Tensor) -> Any:
        _first_order_only(self.op_name)
        xp = array_module(g_taps[0].data)
        grads = xp.stack([g.data for g in g_taps]).reshape(-1, g_taps[0].shape[-1])  # (n*B, G*H)
        needs = self.needs_input_grad
        g_weight = g_bias = None
        if needs[0]:
            h_all = xp.stack(self.h_prev).reshape(grads.shape[0], -1)  # (n*B, H)
            g_weight = Tensor._wrap(xp.matmul(grads.T, h_all))
        if len(needs) > 1 and needs[1]:
            g_bias = Tensor._wrap(grads.sum(axis=0))
        return (g_weight, g_bias) if len(needs) > 1 else g_weight


class HiddenGates(Function):
    """``h @ W.T (+ b)`` ``(B, G*H)`` for one step; W and b are held as arrays and get their
    gradient through ``tap`` (a zero from ``HiddenTaps``, whose value is never read)."""

    op_name = "hidden_gates"

    def __init__(self, weight: Any, bias: Any) -> None:
        self.weight = weight
        self.bias = bias

    def forward(self, h: Any, tap: Any) -> Any:
        y = array_module(h).matmul(h, self.weight.T)
        if self.bias is not None:
            y += self.bias
        return y

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        _first_order_only(self.op_name)
        n_h, n_tap = self.needs_input_grad
        g_h = Tensor._wrap(array_module(gy.data).matmul(gy.data, self.weight)) if n_h else None
        return g_h, (gy if n_tap else None)


# ---- the scan ---------------------------------------------------------------------------------


def as_lengths(lengths: Any, batch: int, max_len: int | None, op: str) -> np.ndarray:
    """Sequence lengths as a host int64 array ``(batch,)``, each in ``[0, max_len]``.

    Accepts a list, a numpy/cupy array or an integer Tensor.
    """
    data = lengths.data if isinstance(lengths, Tensor) else lengths
    if hasattr(data, "dtype"):
        host = backends.for_array(data).to_numpy(data) if not isinstance(data, np.ndarray) else data
    elif isinstance(data, (list, tuple)):
        host = np.asarray(data)
        if host.size == 0:
            host = host.astype(np.int64)
    else:
        raise TypeError(f"{op}: expected lengths as a list, array or integer Tensor, got {type(lengths).__name__}")
    if host.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer lengths, got dtype {host.dtype}")
    if host.shape != (batch,):
        raise ValueError(f"{op}: expected one length per sequence, shape ({batch},), got {tuple(host.shape)}")
    if host.size and (host.min() < 0 or (max_len is not None and host.max() > max_len)):
        bound = "" if max_len is None else f" and at most the padded length {max_len}"
        raise ValueError(f"{op}: expected lengths >= 0{bound}, got {host.tolist()}")
    return host.astype(np.int64, copy=False)


def _check_state(name: str, t: Any, shape: tuple[int, int], dtype: Any) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"rnn_scan: expected a Tensor or None for {name}, got {type(t).__name__}")
    if t.shape != shape:
        raise ValueError(f"rnn_scan: expected {name} of shape {shape}, got {t.shape}")
    if t.dtype != dtype:
        raise TypeError(f"rnn_scan: expected {name} in the gates' dtype {dtype}, got {t.dtype}")


def rnn_scan(
    mode: str,
    x_gates: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None = None,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
    lengths: Any = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run one direction of a recurrent layer over a sequence.

    Args:
        mode: ``"lstm"``, ``"gru"``, ``"rnn_tanh"`` or ``"rnn_relu"``.
        x_gates: ``(T, B, G*H)`` input projection ``x @ W_ih.T`` plus the biases that add
            to the gates (for LSTM and RNN both may be folded in here; for GRU only b_ih).
        weight_hh: ``(G*H, H)``; ``bias_hh``: ``(G*H,)`` or None, added to ``h @ W_hh.T`` at
            every step (the GRU needs its ``b_hh`` there, inside ``r * (W_hn h + b_hn)``).
        h0, c0: initial states ``(B, H)`` (zeros when None; ``c0`` for LSTM only).
        lengths: ``(B,)`` ints in ``[0, T]`` (list, array or Tensor), or None for all ``T``.
        reverse: run from each sequence's true last step back to step 0.

    Returns:
        ``(output, h_n, c_n)``: output ``(T, B, H)``, zero past each row's length;
        ``h_n``, ``c_n`` ``(B, H)``, the state at each row's last step (``c_n`` None unless LSTM).
    """
    if mode not in GATE_COUNT:
        raise ValueError(f"rnn_scan: unknown mode {mode!r}; expected one of {sorted(GATE_COUNT)}")
    for name, t in (("x_gates", x_gates), ("weight_hh", weight_hh)):
        if not isinstance(t, Tensor):
            raise TypeError(f"rnn_scan: expected a Tensor for {name}, got {type(t).__name__}")
    gates = GATE_COUNT[mode]
    if weight_hh.ndim != 2 or weight_hh.shape[0] != gates * weight_hh.shape[1]:
        raise ValueError(f"rnn_scan: expected weight_hh of shape ({gates}*H, H) for {mode}, got {weight_hh.shape}")
    hid = weight_hh.shape[1]
    if x_gates.ndim != 3 or x_gates.shape[2] != gates * hid:
        raise ValueError(f"rnn_scan: expected x_gates of shape (T, B, {gates * hid}), got {x_gates.shape}")
    steps, batch = x_gates.shape[:2]
    dtype = x_gates.dtype
    if weight_hh.dtype != dtype:
        raise TypeError(f"rnn_scan: expected weight_hh in the gates' dtype {dtype}, got {weight_hh.dtype}")
    if bias_hh is not None:
        _check_state("bias_hh", bias_hh, (gates * hid,), dtype)  # type: ignore[arg-type]
    if c0 is not None and mode != "lstm":
        raise ValueError(f"rnn_scan: c0 is the LSTM's cell state, got one for mode {mode!r}")
    xp = backends.for_array(x_gates.data).xp
    zero = Tensor._wrap(xp.zeros((batch, hid), dtype=dtype))
    if h0 is not None:
        _check_state("h0", h0, (batch, hid), dtype)
    h = zero if h0 is None else h0
    c = None
    if mode == "lstm":
        if c0 is not None:
            _check_state("c0", c0, (batch, hid), dtype)
        c = zero if c0 is None else c0
    lens = None if lengths is None else as_lengths(lengths, batch, steps, "rnn_scan")
    run_to = steps if lens is None else int(lens.max(initial=0))
    full_to = steps if lens is None else int(lens.min(initial=steps))
    masks = None
    if full_to < steps:
        backend = backends.for_array(x_gates.data)
        host = np.arange(steps)[:, None, None] < lens[None, :, None]  # (T, B, 1)
        masks = backend.asarray(host, host.dtype, backend.device_of(x_gates.data))

    x_steps = UnbindSteps()(x_gates) if steps else ()
    outs = [zero] * steps
    nonlinearity = mode[4:]
    # from a zero state the first hidden GEMM is known: skip it (and its backward GEMMs)
    zero_state = h0 is None
    gemms = max(run_to - zero_state, 0)
    taps_op = HiddenTaps(gemms, batch)
    taps = (taps_op(weight_hh) if bias_hh is None else taps_op(weight_hh, bias_hh)) if gemms else ()
    w_array = weight_hh.data
    b_array = None if bias_hh is None else bias_hh.data
    k = 0
    for t in range(run_to - 1, -1, -1) if reverse else range(run_to):
        m = None if t < full_to else masks[t]  # type: ignore[index]
        if zero_state:
            zero_state = False
            shape = (batch, gates * hid)
            h_gates = Tensor._wrap(xp.zeros(shape, dtype=dtype)) if bias_hh is None else broadcast_to(bias_hh, shape)
        else:
            taps_op.h_prev.append(h.data)
            h_gates = HiddenGates(w_array, b_array)(h, taps[k])  # (B, G*H), one GEMM for every gate
            k += 1
        if mode == "lstm":
            h, c = LSTMStep(m)(x_steps[t], h_gates, c) if m is None else LSTMStep(m)(x_steps[t], h_gates, c, h)
        elif mode == "gru":
            h = GRUStep(m)(x_steps[t], h_gates, h)
        else:
            step = RNNStep(nonlinearity, m)
            h = step(x_steps[t], h_gates) if m is None else step(x_steps[t], h_gates, h)
        outs[t] = h
    if not steps:
        return Tensor._wrap(xp.zeros((0, batch, hid), dtype=dtype)), h, c
    output = StackSteps()(*outs)  # (T, B, H)
    if masks is not None:
        output = where(Tensor._wrap(masks), output, 0.0)
    return output, h, c
