"""The minGRU recurrence as a parallel scan (Feng et al. 2024, "Were RNNs All We Needed?").

minGRU's state update ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t`` is a first-order LINEAR
recurrence ``h_t = a_t * h_{t-1} + b_t`` (``a = 1 - z``, ``b = z * h~``): no matmul with
``h_{t-1}``, so every step's coefficients are known up front and the whole sequence can be
computed at once. ``ParallelScan`` does it with a Hillis-Steele (doubling) scan of the
associative operator ``(a1, b1) . (a2, b2) = (a1 * a2, a2 * b1 + b2)``: ``ceil(log2 T)``
whole-array steps instead of ``T`` small ones.

Numerical stability: the scan only multiplies and adds. Each ``h_t`` comes out as
``sum_s (prod_{r=s+1..t} a_r) * b_s`` with the products formed by multiplying the given
``a``'s together, never by dividing by a cumulative product (the naive
``h_t = A_t * cumsum(b / A)`` with ``A = cumprod(a)`` overflows as soon as ``A`` underflows,
after a few dozen steps with ``z`` near 1). With minGRU's ``a = 1 - sigmoid(.)`` in (0, 1)
every partial product lies in (0, 1), so nothing overflows, an underflowing product only
drops a term that is already below the rounding of the sum, and each output is the same
sum the sequential loop computes, summed in a tree of depth log2 T instead of a chain of
depth T (rounding error O(log T) ulp instead of O(T)). Unlike the paper's log-space scan
(``logcumsumexp``) it needs no positive ``h~`` (no ``g(x)`` activation) and no log/exp.

The backward of a linear scan is the same scan run backwards in time:
``g_t = dL/dh_t + a_{t+1} * g_{t+1}``, then ``dL/db_t = g_t``, ``dL/da_t = g_t * h_{t-1}``
and ``dL/dh0 = a_1 * g_1``. ``ParallelScan.backward`` writes exactly that with labkit ops and
``ParallelScan`` itself, so it is differentiable again (double backward works).

``sequential_scan`` is the same recurrence as a Python loop of labkit ops: the composite the
tests compare the scan against.
"""

from __future__ import annotations

from typing import Any

import labkit.functional as F
from labkit.core.creation import zeros
from labkit.core.function import Function
from labkit.core.tensor import Tensor

__all__ = ["ParallelScan", "min_gru_scan", "parallel_scan", "sequential_scan"]


# ---- the scan as one Function -----------------------------------------------------------------


def _doubling_scan(a: Any, b: Any, h0: Any, reverse: bool) -> Any:
    """Hillis-Steele scan of ``h_t = a_t * h_{t-1} + b_t`` along axis 1 (from the end if ``reverse``)."""
    steps = a.shape[1]
    # after the step with offset k, at each t: coef = the product of the last 2k a's (up to t), and
    # acc = the recurrence over those 2k steps started from 0, which is h_t itself for t < 2k (h0 is in acc[0])
    coef = a.copy()
    acc = b.copy()
    first = -1 if reverse else 0
    acc[:, first] += a[:, first] * h0
    k = 1
    while k < steps:
        # each product goes to a temporary before the in-place update: the slices overlap, and
        # cupy (unlike numpy) does not guard against overlapping operands
        if reverse:
            acc[:, :-k] += coef[:, :-k] * acc[:, k:]
            if 2 * k < steps:
                coef[:, :-k] = coef[:, :-k] * coef[:, k:]
        else:
            acc[:, k:] += coef[:, k:] * acc[:, :-k]
            if 2 * k < steps:
                coef[:, k:] = coef[:, k:] * coef[:, :-k]
        k *= 2
    return acc


def _shift(x: Tensor, fill: Tensor, toward_end: bool) -> Tensor:
    """``x`` moved one step along axis 1, ``fill (B, 1, ...)`` entering at the vacated end."""
    if toward_end:  # out[:, t] = x[:, t - 1], out[:, 0] = fill
        return F.concatenate([fill, x[:, :-1]], axis=1)
    return F.concatenate([x[:, 1:], fill], axis=1)  # out[:, t] = x[:, t + 1], out[:, -1] = fill


class ParallelScan(Function):
    """``h_t = a_t * h_{t-1} + b_t`` for all t at once; ``h_{-1} = h0``.

    Inputs ``a, b (B, T, *F)`` and ``h0 (B, *F)``, one float dtype; output ``h (B, T, *F)``.
    With ``reverse=True`` time runs backwards: ``h_t = a_t * h_{t+1} + b_t``, ``h_T = h0``.
    """

    op_name = "parallel_scan"

    def __init__(self, reverse: bool = False) -> None:
        self.reverse = bool(reverse)

    def forward(self, a: Any, b: Any, h0: Any) -> Any:
        h = _doubling_scan(a, b, h0, self.reverse)
        self.save_for_backward(a, h0, h)
        return h

    def backward(self, gh: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        a, h0, h = self.saved_tensors
        no_step = zeros((a.shape[0], 1, *a.shape[2:]), dtype=a.dtype, device=a.device)  # (B, 1, *F)
        # the gradient flows against the direction of time: a reverse scan of a forward scan
        a_next = _shift(a, no_step, toward_end=self.reverse)  # the coefficient one step later in the scan
        g = ParallelScan(reverse=not self.reverse)(a_next, gh, zeros(h0.shape, dtype=gh.dtype, device=gh.device))
        ga = None
        if self.needs_input_grad[0]:
            h_prev = _shift(h, F.unsqueeze(h0, 1), toward_end=not self.reverse)  # h_{t-1} (h_{t+1} reversed)
            ga = g * h_prev
        gh0 = None
        if self.needs_input_grad[2]:
            first = -1 if self.reverse else 0
            gh0 = a[:, first] * g[:, first]
        return ga, (g if self.needs_input_grad[1] else None), gh0


# ---- user-facing ops ---------------------------------------------------------------------------


def _check_scan_inputs(op: str, a: Any, b: Any, h0: Any, names: tuple[str, str] = ("a", "b")) -> Tensor:
    """Validate ``a, b (B, T, *F)`` and ``h0 (B, *F)`` (or None); returns ``h0`` as a Tensor."""
    for name, x in zip(names, (a, b)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(x).__name__}")
        if x.ndim < 3 or x.dtype.kind != "f":
            raise ValueError(f"{op}: expected {name} to be a float tensor (B, T, ...), got {x.dtype} {x.shape}")
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(
            f"{op}: expected a and b of one shape and dtype, got {a.dtype} {a.shape} and {b.dtype} {b.shape}"
        )
    if a.shape[1] == 0:
        raise ValueError(f"{op}: expected at least one time step (axis 1), got shape {a.shape}")
    state_shape = a.shape[:1] + a.shape[2:]
    if h0 is None:
        return zeros(state_shape, dtype=a.dtype, device=a.device)
    if not isinstance(h0, Tensor):
        raise TypeError(f"{op}: expected h0 to be a Tensor or None, got {type(h0).__name__}")
    if h0.shape != state_shape or h0.dtype != a.dtype:
        raise ValueError(f"{op}: expected h0 {a.dtype} {state_shape} (B, ...), got {h0.dtype} {h0.shape}")
    return h0


def parallel_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, *, reverse: bool = False) -> Tensor:
    """The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` over axis 1, computed as a parallel scan.

    Args:
        a, b: ``(B, T, *F)`` float tensors (coefficients and inputs), one dtype.
        h0: the state before the first step, ``(B, *F)``; None: zeros.
        reverse: run from the last step to the first (``h_t = a_t * h_{t+1} + b_t``).

    Returns:
        ``h (B, T, *F)``, every state of the sequence.
    """
    h0 = _check_scan_inputs("parallel_scan", a, b, h0)
    return ParallelScan(reverse=reverse)(a, b, h0)


def min_gru_scan(z: Tensor, h_tilde: Tensor, h0: Tensor | None = None) -> Tensor:
    """minGRU's states ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t`` for all t.

    Args:
        z: the update gates ``(B, T, H)`` (in (0, 1) in minGRU: ``sigmoid(linear(x))``).
        h_tilde: the candidate states ``(B, T, H)`` (``linear(x)``), same dtype.
        h0: the state before the first step, ``(B, H)``; None: zeros.

    Returns:
        ``h (B, T, H)``.
    """
    h0 = _check_scan_inputs("min_gru_scan", z, h_tilde, h0, ("z", "h_tilde"))
    return ParallelScan()(1.0 - z, z * h_tilde, h0)


def sequential_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, *, reverse: bool = False) -> Tensor:
    """The composite reference: ``parallel_scan``'s recurrence as a Python loop of labkit ops (T steps)."""
    h = _check_scan_inputs("sequential_scan", a, b, h0)
    steps = range(a.shape[1] - 1, -1, -1) if reverse else range(a.shape[1])
    states = []
    for t in steps:
        h = a[:, t] * h + b[:, t]  # (B, *F)
        states.append(h)
    if reverse:
        states.reverse()
    return F.stack(states, axis=1)  # (B, T, *F)
