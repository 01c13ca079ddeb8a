"""RNN, LSTM, GRU and their cells: parameters, gradchecks, variable lengths, PyTorch parity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import labkit
from labkit.nn.cells import GRUCell, LSTMCell, RNNCell
from labkit.nn.recurrent import GRU, LSTM, RNN
from labkit.testing import gradcheck

LAYERS = {"lstm": LSTM, "gru": GRU, "rnn_tanh": RNN, "rnn_relu": RNN}
CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn_tanh": RNNCell, "rnn_relu": RNNCell}
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def make(kind: str, *args: Any, seed: int = 0, **kwargs: Any) -> Any:
    if kind == "rnn_relu":
        kwargs["nonlinearity"] = "relu"
    return LAYERS[kind](*args, generator=labkit.Generator(seed), **kwargs)


def make_cell(kind: str, *args: Any, seed: int = 0, **kwargs: Any) -> Any:
    if kind == "rnn_relu":
        kwargs["nonlinearity"] = "relu"
    return CELLS[kind](*args, generator=labkit.Generator(seed), **kwargs)


def final_states(kind: str, state: Any) -> tuple[labkit.Tensor, ...]:
    return tuple(state) if kind == "lstm" else (state,)


def rand(rng: np.random.Generator, *shape: int, grad: bool = False) -> labkit.Tensor:
    return labkit.tensor(rng.standard_normal(shape), requires_grad=grad)


# ---- construction -------------------------------------------------------------------------


def test_parameter_names_shapes_and_order_follow_pytorch() -> None:
    lstm = LSTM(3, 5, num_layers=2, bidirectional=True)
    expected = []
    for layer, width in ((0, 3), (1, 10)):
        for suffix in ("", "_reverse"):
            expected += [
                (f"weight_ih_l{layer}{suffix}", (20, width)),
                (f"weight_hh_l{layer}{suffix}", (20, 5)),
                (f"bias_ih_l{layer}{suffix}", (20,)),
                (f"bias_hh_l{layer}{suffix}", (20,)),
            ]
    assert [(n, p.shape) for n, p in lstm.named_parameters()] == expected
    assert [n for n, _ in GRU(2, 4, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert GRU(2, 4).weight_hh_l0.shape == (12, 4)
    assert [(n, p.shape) for n, p in LSTMCell(2, 3).named_parameters()] == [
        ("weight_ih", (12, 2)),
        ("weight_hh", (12, 3)),
        ("bias_ih", (12,)),
        ("bias_hh", (12,)),
    ]
    cell = GRUCell(2, 3, bias=False)
    assert cell.bias_ih is None and len(list(cell.parameters())) == 2


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_init_is_uniform_in_one_over_sqrt_hidden_and_seeded(kind: str) -> None:
    m = make(kind, 3, 16, num_layers=2)
    bound = 1 / math.sqrt(16)
    values = np.concatenate([p.numpy().ravel() for p in m.parameters()])
    assert values.min() >= -bound and values.max() <= bound
    assert values.std() > bound / 2.5  # spread over the interval (U(-b, b) has std b / sqrt(3))
    again = make(kind, 3, 16, num_layers=2)
    other = make(kind, 3, 16, num_layers=2, seed=1)
    for a, b, c in zip(m.parameters(), again.parameters(), other.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert not np.array_equal(a.numpy(), c.numpy())
    cell = make_cell(kind, 3, 16)
    assert max(float(np.abs(p.numpy()).max()) for p in cell.parameters()) <= bound


def test_dtype_and_extra_repr() -> None:
    assert LSTM(2, 3, dtype=labkit.float64).weight_hh_l0.dtype == np.float64
    assert repr(LSTM(3, 5)) == "LSTM(3, 5)"
    assert repr(GRU(3, 5, num_layers=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True)) == (
        "GRU(3, 5, num_layers=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True)"
    )
    assert repr(RNNCell(3, 5, nonlinearity="relu")) == "RNNCell(3, 5, nonlinearity=relu)"
    assert repr(LSTMCell(3, 5, bias=False)) == "LSTMCell(3, 5, bias=False)"


def test_constructor_errors_name_the_layer() -> None:
    with pytest.raises(ValueError, match="LSTM: expected a positive hidden_size, got 0"):
        LSTM(3, 0)
    with pytest.raises(TypeError, match="GRU: expected an int num_layers, got float"):
        GRU(3, 4, num_layers=1.5)
    with pytest.raises(ValueError, match=r"RNN: expected dropout as a probability in \[0, 1\), got 1.5"):
        RNN(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="RNN: expected nonlinearity 'tanh' or 'relu', got 'gelu'"):
        RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="LSTMCell: expected a positive input_size, got -1"):
        LSTMCell(-1, 4)
    with pytest.warns(UserWarning, match="dropout=0.2 acts between layers"):
        LSTM(3, 4, dropout=0.2)


def test_input_errors_name_the_layer_and_shapes() -> None:
    lstm = LSTM(4, 3)
    x = labkit.zeros(5, 2, 4)
    with pytest.raises(ValueError, match=r"LSTM\(input_size=4, hidden_size=3\): expected input \(T, B, 4\)"):
        lstm(labkit.zeros(5, 2, 3))
    with pytest.raises(ValueError, match=r"got \(2, 3, 4, 4\)"):
        lstm(labkit.zeros(2, 3, 4, 4))
    with pytest.raises(TypeError, match="expected input of the parameters' dtype float32, got float64"):
        lstm(labkit.zeros(5, 2, 4, dtype=labkit.float64))
    with pytest.raises(TypeError, match=r"expected hx as a tuple \(h_0, c_0\), got Tensor"):
        lstm(x, labkit.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"expected h_0 of shape \(1, 2, 3\), got \(2, 2, 3\)"):
        lstm(x, (labkit.zeros(2, 2, 3), labkit.zeros(1, 2, 3)))
    with pytest.raises(ValueError, match=r"expected lengths >= 0 and at most the padded length 5, got \[6, 1\]"):
        lstm(x, lengths=[6, 1])
    with pytest.raises(ValueError, match=r"expected one length per sequence, shape \(2,\), got \(3,\)"):
        lstm(x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="lengths need a batched input"):
        lstm(labkit.zeros(5, 4), lengths=[5])
    with pytest.raises(ValueError, match=r"GRUCell\(input_size=4, hidden_size=3\): expected input \(B, 4\)"):
        GRUCell(4, 3)(labkit.zeros(2, 5))
    with pytest.raises(ValueError, match=r"expected a state of shape \(2, 3\)"):
        GRUCell(4, 3)(labkit.zeros(2, 4), labkit.zeros(2, 4))


# ---- gradchecks (float64, tiny) -------------------------------------------------------------

GRADCHECK_CASES = [
    ("lstm", {}, None),
    ("lstm", {"num_layers": 2, "bidirectional": True}, [3, 1]),
    ("gru", {"batch_first": True}, None),
    ("gru", {"num_layers": 2, "bidirectional": True, "batch_first": True}, [2, 3]),
    ("rnn_tanh", {"bidirectional": True}, [1, 3]),
    ("rnn_relu", {"num_layers": 2}, [3, 2]),
]


@pytest.mark.parametrize(("kind", "options", "lengths"), GRADCHECK_CASES)
def test_layer_gradcheck(kind: str, options: dict[str, Any], lengths: Any) -> None:
    rng = np.random.default_rng(0)
    m = make(kind, 2, 3, **options).double()
    steps, batch = 3, 2
    x = rand(rng, *((batch, steps) if options.get("batch_first") else (steps, batch)), 2, grad=True)
    layers = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    states = [rand(rng, layers, batch, 3, grad=True) for _ in range(2 if kind == "lstm" else 1)]
    hx = tuple(states) if kind == "lstm" else states[0]
    params = list(m.parameters())

    def run(x: Any, *rest: Any) -> tuple[Any, ...]:  # params are perturbed in place by gradcheck
        out, state = m(x, hx, lengths=lengths)
        return (out, *final_states(kind, state))

    gradcheck(run, [x, *states, *params])


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_gradcheck(kind: str) -> None:
    rng = np.random.default_rng(1)
    cell = make_cell(kind, 2, 3).double()
    x = rand(rng, 4, 2, grad=True)
    states = [rand(rng, 4, 3, grad=True) for _ in range(2 if kind == "lstm" else 1)]
    hx = tuple(states) if kind == "lstm" else states[0]
    gradcheck(lambda *args: cell(x, hx), [x, *states, *cell.parameters()])


# ---- variable lengths ----------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_padded_batch_with_lengths_equals_each_sequence_alone(kind: str, batch_first: bool) -> None:
    rng = np.random.default_rng(2)
    m = make(kind, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first).double()
    lengths = [5, 2, 4, 1]
    steps, batch = max(lengths) + 1, len(lengths)  # one step of padding even for the longest
    seqs = [rng.standard_normal((n, 3)) for n in lengths]
    padded = np.zeros((steps, batch, 3))
    for b, s in enumerate(seqs):
        padded[: len(s), b] = s
        padded[len(s) :, b] = 7.0  # garbage padding must not leak anywhere
    x = padded.transpose(1, 0, 2) if batch_first else padded
    out, state = m(labkit.tensor(x), lengths=lengths)
    out_tb = out.numpy().transpose(1, 0, 2) if batch_first else out.numpy()  # (T, B, 2H)
    finals = [s.numpy() for s in final_states(kind, state)]
    for b, s in enumerate(seqs):
        x_alone = s[None] if batch_first else s[:, None]
        out_b, state_b = m(labkit.tensor(x_alone))
        out_b = out_b.numpy()[0] if batch_first else out_b.numpy()[:, 0]
        np.testing.assert_allclose(out_tb[: len(s), b], out_b, rtol=1e-10, atol=1e-12)
        assert not out_tb[len(s) :, b].any(), "outputs past a sequence's end must be zero"
        for got, alone in zip(finals, final_states(kind, state_b), strict=True):
            np.testing.assert_allclose(got[:, b], alone.numpy()[:, 0], rtol=1e-10, atol=1e-12)


def test_lengths_accept_lists_arrays_and_tensors_and_full_lengths_change_nothing() -> None:
    rng = np.random.default_rng(3)
    gru = make("gru", 2, 3)
    x = labkit.tensor(rng.standard_normal((4, 3, 2)).astype(np.float32))
    base_out, base_h = gru(x)
    for lengths in ([4, 4, 4], np.array([4, 4, 4]), labkit.tensor([4, 4, 4])):
        out, h = gru(x, lengths=lengths)
        np.testing.assert_array_equal(out.numpy(), base_out.numpy())
        np.testing.assert_array_equal(h.numpy(), base_h.numpy())
    out, h = gru(x, lengths=labkit.tensor(np.array([2, 0, 4], dtype=np.int32)))
    assert not out.numpy()[:, 1].any() and not h.numpy()[:, 1].any()  # length 0 keeps h0 = 0


def test_unbatched_input_matches_a_batch_of_one() -> None:
    rng = np.random.default_rng(4)
    lstm = make("lstm", 2, 3, num_layers=2, bidirectional=True)
    x = labkit.tensor(rng.standard_normal((5, 2)).astype(np.float32))
    h0 = labkit.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    out, (h, c) = lstm(x, (h0, h0))
    out_b, (_, c_b) = lstm(x.reshape(5, 1, 2), (h0.reshape(4, 1, 3), h0.reshape(4, 1, 3)))
    assert out.shape == (5, 6) and h.shape == (4, 3) and c.shape == (4, 3)
    np.testing.assert_allclose(out.numpy(), out_b.numpy()[:, 0], rtol=1e-6)
    np.testing.assert_allclose(c.numpy(), c_b.numpy()[:, 0], rtol=1e-6)
    h_cell, c_cell = LSTMCell(2, 3)(x[0])
    assert h_cell.shape == (3,) and c_cell.shape == (3,)


def test_dropout_between_layers_uses_the_generator_and_only_in_training() -> None:
    x = labkit.tensor(np.random.default_rng(5).standard_normal((4, 3, 2)).astype(np.float32))
    m = make("lstm", 2, 8, num_layers=3, dropout=0.5)
    twin = make("lstm", 2, 8, num_layers=3, dropout=0.5)
    plain = make("lstm", 2, 8, num_layers=3)
    train_a, train_b = m(x)[0].numpy(), twin(x)[0].numpy()
    np.testing.assert_array_equal(train_a, train_b)  # same seed: same weights and same masks
    assert not np.allclose(train_a, plain(x)[0].numpy())
    m.eval()
    np.testing.assert_array_equal(m(x)[0].numpy(), plain(x)[0].numpy())


# ---- PyTorch parity --------------------------------------------------------------------------

TORCH_CASES = [
    ("lstm", {}),
    ("lstm", {"num_layers": 2, "bidirectional": True}),
    ("lstm", {"batch_first": True, "bias": False}),
    ("gru", {}),
    ("gru", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("rnn_tanh", {"num_layers": 2, "bidirectional": True}),
    ("rnn_relu", {"bidirectional": True}),
]


def _torch_twin(torch: Any, m: Any, kind: str, options: dict[str, Any]) -> Any:
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(kind, torch.nn.RNN)
    extra = {"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}
    twin = cls(m.input_size, m.hidden_size, **options, **extra)
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in m.state_dict().items()})
    return twin


def _compare_grads(torch: Any, m: Any, twin: Any, atol: float) -> None:
    theirs = dict(twin.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs[name].grad.numpy(), atol=atol, err_msg=name)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize(("kind", "options"), TORCH_CASES)
def test_matches_torch_outputs_states_and_gradients(kind: str, options: dict[str, Any], with_lengths: bool) -> None:
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(6)
    m = make(kind, 3, 5, **options)
    twin = _torch_twin(torch, m, kind, options)
    steps, batch = 6, 4
    lengths = [4, 6, 1, 3] if with_lengths else None
    layers = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    bf = options.get("batch_first", False)
    x = rng.standard_normal((batch, steps, 3) if bf else (steps, batch, 3)).astype(np.float32)
    states = [rng.standard_normal((layers, batch, 5)).astype(np.float32) for _ in range(2 if kind == "lstm" else 1)]

    xl = labkit.tensor(x, requires_grad=True)
    hl = [labkit.tensor(s, requires_grad=True) for s in states]
    out, state = m(xl, tuple(hl) if kind == "lstm" else hl[0], lengths=lengths)

    xt = torch.tensor(x, requires_grad=True)
    ht = [torch.tensor(s, requires_grad=True) for s in states]
    hx_t = tuple(ht) if kind == "lstm" else ht[0]
    if lengths is None:
        out_t, state_t = twin(xt, hx_t)
    else:
        packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=bf, enforce_sorted=False)
        out_p, state_t = twin(packed, hx_t)
        out_t, _ = pad_packed_sequence(out_p, batch_first=bf, total_length=steps)

    finals = final_states(kind, state)
    finals_t = final_states(kind, state_t)
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), atol=1e-5)
    for a, b in zip(finals, finals_t, strict=True):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-5)

    # the same random weighting of every output in both frameworks
    weights = [rng.standard_normal(o.shape).astype(np.float32) for o in (out, *finals)]
    loss = sum((o * labkit.tensor(w)).sum() for o, w in zip((out, *finals), weights))
    loss_t = sum((o * torch.from_numpy(w)).sum() for o, w in zip((out_t, *finals_t), weights))
    loss.backward()
    loss_t.backward()
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), atol=1e-5)
    for a, b in zip(hl, ht, strict=True):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-5)
    _compare_grads(torch, m, twin, atol=1e-5)
    assert repr(m) == repr(twin)


def test_long_sequence_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    m = make("lstm", 8, 16)
    twin = _torch_twin(torch, m, "lstm", {})
    x = np.random.default_rng(7).standard_normal((64, 4, 8)).astype(np.float32)
    out, (_, c) = m(labkit.tensor(x))
    out_t, (_, c_t) = twin(torch.from_numpy(x))
    out.sum().backward()
    out_t.sum().backward()
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(c.numpy(), c_t.detach().numpy(), atol=1e-5)
    # 64 steps of float32 accumulate rounding in the weight gradients (sums over T*B terms
    # of size ~10): compare relative to their scale
    for name, p in twin.named_parameters():
        ours = getattr(m, name).grad.numpy()
        np.testing.assert_allclose(ours, p.grad.numpy(), rtol=1e-4, atol=1e-4 * float(np.abs(ours).max()))


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cells_match_torch(kind: str, with_state: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    cell = make_cell(kind, 3, 4, bias=with_state)  # bias=False on one of the two runs
    cls = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}.get(kind, torch.nn.RNNCell)
    twin = cls(3, 4, bias=with_state, **({"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}))
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in cell.state_dict().items()})
    x = rng.standard_normal((5, 3)).astype(np.float32)
    states = [rng.standard_normal((5, 4)).astype(np.float32) for _ in range(2 if kind == "lstm" else 1)]
    xl, xt = labkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hx_l = hx_t = None
    if with_state:
        hl = [labkit.tensor(s) for s in states]
        hx_l = tuple(hl) if kind == "lstm" else hl[0]
        ht = [torch.tensor(s) for s in states]
        hx_t = tuple(ht) if kind == "lstm" else ht[0]
    out = final_states(kind, cell(xl, hx_l))
    out_t = final_states(kind, twin(xt, hx_t))
    for a, b in zip(out, out_t, strict=True):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-5)
    sum((o * (k + 1.0)).sum() for k, o in enumerate(out)).backward()
    sum((o * (k + 1.0)).sum() for k, o in enumerate(out_t)).backward()
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), atol=1e-5)
    _compare_grads(torch, cell, twin, atol=1e-5)
    assert repr(cell) == repr(twin)


# ---- devices ----------------------------------------------------------------------------------


def test_lstm_with_lengths_on_device_matches_cpu(device: str) -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 3, 2)).astype(np.float32)
    ref = make("lstm", 2, 4, bidirectional=True)
    m = make("lstm", 2, 4, bidirectional=True).to(device)
    lengths = [5, 2, 3]
    out_ref, (h_ref, _) = ref(labkit.tensor(x), lengths=lengths)
    out, (h, _) = m(labkit.tensor(x, device=device), lengths=lengths)
    out.sum().backward()
    out_ref.sum().backward()
    assert out.device == labkit.device(device)
    np.testing.assert_allclose(out.numpy(), out_ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(h.numpy(), h_ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(m.weight_hh_l0_reverse.grad.numpy(), ref.weight_hh_l0_reverse.grad.numpy(), atol=1e-5)
