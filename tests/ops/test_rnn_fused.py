"""Fused recurrent steps and the scan against composites of primitive ops; gradchecks; errors."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.ops.rnn import gru_step, lstm_step, rnn_step
from labkit.ops.rnn_scan import StackSteps, UnbindSteps, rnn_scan
from labkit.testing import gradcheck, gradgradcheck

B, H = 4, 3

# ---- composites from primitive labkit ops (the reference the fused ops must match) ---------


def _masked(mask: Any, new: labkit.Tensor, old: labkit.Tensor) -> labkit.Tensor:
    return new if mask is None else F.where(labkit.tensor(mask[:, None], device=new.device), new, old)


def lstm_composite(xg: Any, hg: Any, c: Any, h: Any = None, mask: Any = None) -> tuple[Any, Any]:
    gates = xg + hg
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
    c_new = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    h_new = F.sigmoid(o) * F.tanh(c_new)
    return _masked(mask, h_new, h), _masked(mask, c_new, c)


def gru_composite(xg: Any, hg: Any, h: Any, mask: Any = None) -> Any:
    r = F.sigmoid(xg[:, :H] + hg[:, :H])
    z = F.sigmoid(xg[:, H : 2 * H] + hg[:, H : 2 * H])
    n = F.tanh(xg[:, 2 * H :] + r * hg[:, 2 * H :])
    return _masked(mask, (1.0 - z) * n + z * h, h)


def rnn_composite(nonlinearity: str) -> Callable[..., Any]:
    act = F.tanh if nonlinearity == "tanh" else F.relu

    def step(xg: Any, hg: Any, h: Any = None, mask: Any = None) -> Any:
        return _masked(mask, act(xg + hg), h)

    return step


def _fused(kind: str) -> Callable[..., Any]:
    if kind == "lstm":
        return lambda xg, hg, c, h=None, mask=None: lstm_step(xg, hg, c, h, mask=mask)
    if kind == "gru":
        return lambda xg, hg, h, mask=None: gru_step(xg, hg, h, mask=mask)
    nonlinearity = kind[4:]
    return lambda xg, hg, h=None, mask=None: rnn_step(xg, hg, h, mask=mask, nonlinearity=nonlinearity)


COMPOSITES = {
    "lstm": lstm_composite,
    "gru": gru_composite,
    "rnn_tanh": rnn_composite("tanh"),
    "rnn_relu": rnn_composite("relu"),
}
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
MASK = np.array([True, False, True, False])


def _step_inputs(kind: str, masked: bool, rng: np.random.Generator, device: str = "cpu") -> list[labkit.Tensor]:
    """x_gates, h_gates, then the states the step takes: c (and h if masked) for LSTM, h otherwise."""
    g = GATES[kind] * H

    def t(*shape: int) -> labkit.Tensor:
        return labkit.tensor(rng.standard_normal(shape) * 1.5, requires_grad=True, device=device)

    states = [t(B, H), t(B, H)] if kind == "lstm" else [t(B, H)]
    if not masked and kind != "gru":  # h_prev only matters for rows a mask holds back
        states = states[:-1]
    return [t(B, g), t(B, g), *states]


def _as_tuple(out: Any) -> tuple[labkit.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


# ---- fused step == composite -------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("kind", sorted(COMPOSITES))
def test_fused_step_matches_composite_values_and_gradients(kind: str, masked: bool, device: str) -> None:
    rng = np.random.default_rng(0)
    inputs = _step_inputs(kind, masked, rng, device)
    mask = MASK if masked else None
    fused = _as_tuple(_fused(kind)(*inputs, mask=mask))
    ref = _as_tuple(COMPOSITES[kind](*inputs, mask=mask))
    for a, b in zip(fused, ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)
    cotangents = [labkit.tensor(rng.standard_normal(o.shape), device=device) for o in fused]
    loss_fused = sum(((o * v).sum() for o, v in zip(fused, cotangents)), start=labkit.tensor(0.0, device=device))
    loss_ref = sum(((o * v).sum() for o, v in zip(ref, cotangents)), start=labkit.tensor(0.0, device=device))
    g_fused = labkit.grad(loss_fused, inputs)
    g_ref = labkit.grad(loss_ref, inputs)
    for k, (a, b) in enumerate(zip(g_fused, g_ref, strict=True)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"input {k}")
    if masked:  # rows that are not running pass their state through untouched
        for out, state in zip(fused, inputs[2:][::-1] if kind == "lstm" else inputs[2:]):
            np.testing.assert_array_equal(out.numpy()[~MASK], state.numpy()[~MASK])


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("kind", sorted(COMPOSITES))
def test_fused_step_gradcheck(kind: str, masked: bool) -> None:
    inputs = _step_inputs(kind, masked, np.random.default_rng(1))
    mask = MASK if masked else None
    gradcheck(lambda *xs: _fused(kind)(*xs, mask=mask), inputs)


def test_lstm_step_with_a_partial_set_of_inputs_needing_grad() -> None:
    rng = np.random.default_rng(2)
    xg, hg, c, h = _step_inputs("lstm", True, rng)
    hg = hg.detach()
    c = c.detach()
    gradcheck(lambda a, b: lstm_step(a, hg, c, b, mask=MASK), [xg, h])
    h_new, c_new = lstm_step(xg, hg, c, h, mask=MASK)
    gx, gh = labkit.grad((h_new * 2.0 + c_new).sum(), [xg, h])
    assert gx.shape == (B, 4 * H) and gh.shape == (B, H)


@pytest.mark.parametrize("kind", sorted(COMPOSITES))
def test_fused_step_refuses_double_backward_clearly(kind: str) -> None:
    inputs = _step_inputs(kind, True, np.random.default_rng(3))
    out = _as_tuple(_fused(kind)(*inputs, mask=MASK))[0]
    # raising at create_graph time, not later: a silently constant gradient would be wrong
    with pytest.raises(NotImplementedError, match=rf"{kind[:4].rstrip('_')}_step: double backward through the fused"):
        labkit.grad(out.sum(), [inputs[0]], create_graph=True)
    (g,) = labkit.grad(out.sum(), [inputs[0]])  # first order still works on the same graph shape
    assert g.shape == inputs[0].shape


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fused_step_saturates_without_overflow_warnings(kind: str) -> None:
    # float32 exp overflows past |x| ~ 88: the gates must still reach their exact limits
    hidden = 6
    extremes = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0, 50.0], dtype=np.float32)
    xg = labkit.tensor(np.tile(extremes, GATES[kind])[None, :])  # (1, G * 6)
    hg = labkit.zeros(1, GATES[kind] * hidden)
    state = labkit.ones(1, hidden)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = lstm_step(xg, hg, state)[0] if kind == "lstm" else gru_step(xg, hg, state)
    assert np.isfinite(out.numpy()).all()
    assert np.all(np.abs(out.numpy()) <= 1.0 + 1e-6)


# ---- argument checks ----------------------------------------------------------------------


def test_fused_step_errors_name_the_op() -> None:
    rng = np.random.default_rng(4)
    xg, hg, c, h = _step_inputs("lstm", True, rng)
    with pytest.raises(ValueError, match=r"lstm_step: expected h_gates of shape \(4, 12\), got \(4, 9\)"):
        lstm_step(xg, hg[:, :9], c)
    with pytest.raises(ValueError, match="lstm_step: a mask keeps h_prev"):
        lstm_step(xg, hg, c, mask=MASK)
    with pytest.raises(TypeError, match="lstm_step: expected a bool mask, got int64"):
        lstm_step(xg, hg, c, h, mask=np.array([1, 0, 1, 0]))
    with pytest.raises(ValueError, match=r"lstm_step: expected a mask of shape \(4,\) or \(4, 1\), got \(3,\)"):
        lstm_step(xg, hg, c, h, mask=MASK[:3])
    with pytest.raises(TypeError, match="gru_step: expected a Tensor for h_prev, got ndarray"):
        gru_step(xg[:, :9], hg[:, :9], h.numpy())
    with pytest.raises(TypeError, match="gru_step: expected every input in one float dtype"):
        gru_step(xg[:, :9], hg[:, :9], h.to(dtype=labkit.float32))
    with pytest.raises(ValueError, match="rnn_step: expected nonlinearity 'tanh' or 'relu', got 'gelu'"):
        rnn_step(xg[:, :3], hg[:, :3], nonlinearity="gelu")


# ---- unbind / stack_steps -------------------------------------------------------------------


def test_unbind_and_stack_steps_are_inverse_and_twice_differentiable() -> None:
    x = labkit.tensor(np.random.default_rng(5).standard_normal((3, 2, 2)), requires_grad=True)
    pieces = UnbindSteps()(x)
    assert len(pieces) == 3 and pieces[1].shape == (2, 2)
    np.testing.assert_array_equal(StackSteps()(*pieces).numpy(), x.numpy())
    gradcheck(lambda t: UnbindSteps()(t), [x])
    gradgradcheck(lambda t: UnbindSteps()(t), [x])
    ys = [labkit.tensor(np.full((2,), float(k)), requires_grad=True) for k in range(3)]
    gradgradcheck(lambda *ts: StackSteps()(*ts), ys)


# ---- the scan -------------------------------------------------------------------------------


def scan_composite(
    kind: str, x_gates: Any, w_hh: Any, b_hh: Any, h0: Any, c0: Any, lengths: Any, reverse: bool
) -> tuple[Any, Any, Any]:
    """The time loop with composite steps and explicit per-step masks (no skipped steps)."""
    steps, batch = x_gates.shape[:2]
    lens = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    h, c = h0, c0
    outs = [None] * steps
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        mask = t < lens
        hg = F.linear(h, w_hh, b_hh)
        if kind == "lstm":
            h, c = lstm_composite(x_gates[t], hg, c, h, mask)
        elif kind == "gru":
            h = gru_composite(x_gates[t], hg, h, mask)
        else:
            h = rnn_composite(kind[4:])(x_gates[t], hg, h, mask)
        outs[t] = h * labkit.tensor(mask[:, None].astype(np.float64))
    return F.stack(outs), h, c


SCAN_CASES = [
    ("lstm", None, False),
    ("lstm", [3, 1, 4], False),
    ("lstm", [3, 1, 0], True),
    ("gru", [2, 4, 1], False),
    ("gru", [2, 4, 1], True),
    ("rnn_tanh", [4, 2, 3], True),
    ("rnn_relu", [1, 3, 2], False),
]


@pytest.mark.parametrize(("kind", "lengths", "reverse"), SCAN_CASES)
def test_scan_matches_composite_loop_and_gradchecks(kind: str, lengths: Any, reverse: bool) -> None:
    rng = np.random.default_rng(6)
    steps, batch, g = 4, 3, GATES[kind] * H

    def t(*shape: int) -> labkit.Tensor:
        return labkit.tensor(rng.standard_normal(shape) * 0.7, requires_grad=True)

    x_gates, w_hh, b_hh, h0 = t(steps, batch, g), t(g, H), t(g), t(batch, H)
    c0 = t(batch, H) if kind == "lstm" else None
    args = [x_gates, w_hh, b_hh, h0] + ([c0] if c0 is not None else [])

    def fused(xg: Any, w: Any, b: Any, h: Any, c: Any = None) -> tuple[Any, ...]:
        out, h_n, c_n = rnn_scan(kind, xg, w, b, h, c, lengths=lengths, reverse=reverse)
        return (out, h_n) if c_n is None else (out, h_n, c_n)

    def ref(xg: Any, w: Any, b: Any, h: Any, c: Any = None) -> tuple[Any, ...]:
        out, h_n, c_n = scan_composite(kind, xg, w, b, h, c, lengths, reverse)
        return (out, h_n) if c_n is None else (out, h_n, c_n)

    got, want = fused(*args), ref(*args)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    if lengths is not None:  # zero past each end
        for row, n in enumerate(lengths):
            assert not got[0].numpy()[n:, row].any()
    gradcheck(fused, args)


def test_scan_from_zero_state_skips_nothing_observable() -> None:
    rng = np.random.default_rng(7)
    x_gates = labkit.tensor(rng.standard_normal((3, 2, 3 * H)), requires_grad=True)
    w_hh = labkit.tensor(rng.standard_normal((3 * H, H)), requires_grad=True)
    b_hh = labkit.tensor(rng.standard_normal(3 * H), requires_grad=True)
    zeros = labkit.zeros(2, H, dtype=labkit.float64)
    implicit = rnn_scan("gru", x_gates, w_hh, b_hh, None, lengths=[3, 2], reverse=True)
    explicit = rnn_scan("gru", x_gates, w_hh, b_hh, zeros, lengths=[3, 2], reverse=True)
    for a, b in zip(implicit[:2], explicit[:2], strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    gradcheck(lambda xg, w, b: rnn_scan("gru", xg, w, b, None, lengths=[3, 2])[:2], [x_gates, w_hh, b_hh])


def test_scan_errors_name_the_op() -> None:
    x_gates = labkit.zeros(3, 2, 4 * H)
    w_hh = labkit.zeros(4 * H, H)
    with pytest.raises(ValueError, match="rnn_scan: unknown mode 'lstm2'"):
        rnn_scan("lstm2", x_gates, w_hh)
    with pytest.raises(ValueError, match=r"rnn_scan: expected x_gates of shape \(T, B, 9\), got \(3, 2, 12\)"):
        rnn_scan("gru", x_gates, labkit.zeros(3 * H, H))
    with pytest.raises(ValueError, match=r"rnn_scan: expected lengths >= 0 and at most the padded length 3"):
        rnn_scan("lstm", x_gates, w_hh, lengths=[4, 1])
    with pytest.raises(ValueError, match=r"rnn_scan: expected one length per sequence, shape \(2,\), got \(3,\)"):
        rnn_scan("lstm", x_gates, w_hh, lengths=[1, 1, 1])
    with pytest.raises(TypeError, match="rnn_scan: expected integer lengths, got dtype float64"):
        rnn_scan("lstm", x_gates, w_hh, lengths=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"rnn_scan: expected h0 of shape \(2, 3\), got \(3, 3\)"):
        rnn_scan("lstm", x_gates, w_hh, h0=labkit.zeros(3, H))
    with pytest.raises(ValueError, match="rnn_scan: c0 is the LSTM's cell state"):
        rnn_scan("gru", labkit.zeros(3, 2, 3 * H), labkit.zeros(3 * H, H), c0=labkit.zeros(2, H))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_scan_weight_gradients_with_frozen_parts_and_retain_graph(kind: str) -> None:
    rng = np.random.default_rng(8)
    g = GATES[kind] * H
    x_gates = labkit.tensor(rng.standard_normal((4, 2, g)), requires_grad=True)
    w_hh = labkit.tensor(rng.standard_normal((g, H)) * 0.5, requires_grad=True)
    b_hh = labkit.tensor(rng.standard_normal(g), requires_grad=True)
    h0 = labkit.tensor(rng.standard_normal((2, H)))

    def loss(w: Any, b: Any) -> labkit.Tensor:
        out, h_n, _ = rnn_scan(kind, x_gates, w, b, h0, lengths=[4, 2])
        return (out * out).sum() + h_n.sum()

    ref = scan_composite(kind, x_gates, w_hh, b_hh, h0, labkit.zeros(2, H, dtype=labkit.float64), [4, 2], False)
    want = labkit.grad((ref[0] * ref[0]).sum() + ref[1].sum(), [w_hh, b_hh])
    total = loss(w_hh, b_hh)
    total.backward(retain_graph=True)
    total.backward()  # a second pass over the same graph adds the same gradients again
    for got, expected in zip((w_hh.grad, b_hh.grad), want, strict=True):
        np.testing.assert_allclose(got.numpy(), 2 * expected.numpy(), rtol=1e-10)
    # a frozen weight with a trainable bias, and the reverse
    (g_b,) = labkit.grad(loss(w_hh.detach(), b_hh), [b_hh])
    np.testing.assert_allclose(g_b.numpy(), want[1].numpy(), rtol=1e-10)
    (g_w,) = labkit.grad(loss(w_hh, b_hh.detach()), [w_hh])
    np.testing.assert_allclose(g_w.numpy(), want[0].numpy(), rtol=1e-10)
