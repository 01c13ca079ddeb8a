"""MultiheadAttention, the mask helpers and scaled_dot_product_attention: gradients, masks, PyTorch parity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.nn.attention import MultiheadAttention, causal_mask, padding_mask
from labkit.ops.attention import scaled_dot_product_attention
from labkit.testing import gradcheck


def _randn(rng: np.random.Generator, *shape: int, dtype: Any = np.float64, grad: bool = True) -> labkit.Tensor:
    return labkit.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=grad)


def _mha64(**kwargs: Any) -> MultiheadAttention:
    """A float64 MHA whose biases are random (the zero init would leave their gradients untested)."""
    m = MultiheadAttention(generator=labkit.Generator(0), **kwargs).double()
    rng = np.random.default_rng(1)
    for p in m.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    return m


# ---- mask helpers ----------------------------------------------------------------------------


def test_causal_and_padding_masks() -> None:
    np.testing.assert_array_equal(causal_mask(3).numpy(), [[False, True, True], [False, False, True], [False] * 3])
    assert causal_mask(0).shape == (0, 0)
    mask = padding_mask([3, 1, 0], 4)
    np.testing.assert_array_equal(mask.numpy(), [[0, 0, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1]])
    assert mask.dtype == np.bool_
    assert padding_mask(labkit.tensor([2, 1])).shape == (2, 2)  # max_len defaults to the longest
    with pytest.raises(ValueError, match=r"padding_mask: expected lengths in \[0, 2\], got \[3, 1\]"):
        padding_mask([3, 1], 2)
    with pytest.raises(ValueError, match="padding_mask: expected a 1-D sequence of int lengths"):
        padding_mask([[1.5]], 2)
    with pytest.raises(ValueError, match="causal_mask: expected size >= 0, got -1"):
        causal_mask(-1)


# ---- construction, init, errors -------------------------------------------------------------------


def test_parameters_names_shapes_and_init() -> None:
    m = MultiheadAttention(8, 2, generator=labkit.Generator(0))
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    assert shapes == {
        "in_proj_weight": (24, 8),
        "in_proj_bias": (24,),
        "out_proj.weight": (8, 8),
        "out_proj.bias": (8,),
    }
    assert not m.in_proj_bias.numpy().any() and not m.out_proj.bias.numpy().any()
    bound = math.sqrt(6.0 / (24 + 8))  # Xavier uniform over the (3E, E) matrix, as in PyTorch
    assert np.abs(m.in_proj_weight.numpy()).max() <= bound and m.in_proj_weight.numpy().std() > bound / 3
    same = MultiheadAttention(8, 2, generator=labkit.Generator(0))
    np.testing.assert_array_equal(same.in_proj_weight.numpy(), m.in_proj_weight.numpy())

    cross = MultiheadAttention(8, 2, bias=False, add_bias_kv=True, kdim=3, vdim=5, dtype=labkit.float64)
    shapes = {k: v.shape for k, v in cross.state_dict().items()}
    assert shapes == {
        "q_proj_weight": (8, 8),
        "k_proj_weight": (8, 3),
        "v_proj_weight": (8, 5),
        "bias_k": (1, 1, 8),
        "bias_v": (1, 1, 8),
        "out_proj.weight": (8, 8),
    }
    assert cross.in_proj_weight is None and cross.in_proj_bias is None and cross.q_proj_weight.dtype == np.float64
    assert "kdim=3, vdim=5, bias=False, add_bias_kv=True" in repr(cross)


def test_torch_parameter_names_match() -> None:
    torch = pytest.importorskip("torch")
    for kwargs in ({}, {"kdim": 3, "vdim": 5, "add_bias_kv": True}, {"bias": False}):
        ours = [name for name, _ in MultiheadAttention(8, 2, **kwargs).named_parameters()]
        theirs = [name for name, _ in torch.nn.MultiheadAttention(8, 2, **kwargs).named_parameters()]
        assert ours == theirs


def test_constructor_and_input_errors() -> None:
    with pytest.raises(ValueError, match="MultiheadAttention: expected embed_dim divisible by num_heads, got 6 and 4"):
        MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="MultiheadAttention: expected num_heads >= 1, got 0"):
        MultiheadAttention(6, 0)
    with pytest.raises(ValueError, match=r"MultiheadAttention: expected dropout in \[0, 1\), got 1.5"):
        MultiheadAttention(6, 2, dropout=1.5)
    m = MultiheadAttention(4, 2, batch_first=True)
    x = labkit.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"MultiheadAttention\(embed_dim=4, num_heads=2\): expected query \(B, L, 4\)"):
        m(labkit.randn(2, 3, 5), x, x)
    with pytest.raises(ValueError, match="all 3-D"):
        m(x, labkit.randn(3, 4), x)
    with pytest.raises(TypeError, match="expected a Tensor key, got ndarray"):
        m(x, np.zeros((2, 3, 4)), x)
    with pytest.raises(ValueError, match=r"expected key_padding_mask \(2, 3\), got \(3, 2\)"):
        m(x, x, x, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match=r"expected attn_mask \(3, 3\) or \(4, 3, 3\), got \(2, 3, 3\)"):
        m(x, x, x, attn_mask=np.zeros((2, 3, 3), bool))
    with pytest.raises(TypeError, match="expected a bool or float attn_mask, got dtype int64"):
        m(x, x, x, attn_mask=np.zeros((3, 3), np.int64))


# ---- gradients ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [True, False])
def test_gradcheck_self_attention_with_padding_and_causal_masks(batch_first: bool) -> None:
    m = _mha64(embed_dim=4, num_heads=2, batch_first=batch_first)
    rng = np.random.default_rng(2)
    x = _randn(rng, 2, 3, 4) if batch_first else _randn(rng, 3, 2, 4)
    kpm = padding_mask([3, 2], 3)

    def fn(x: labkit.Tensor, *params: labkit.Tensor) -> tuple[labkit.Tensor, ...]:
        return m(x, x, x, key_padding_mask=kpm, is_causal=True)  # output and averaged weights

    assert gradcheck(fn, [x, *m.parameters()])


def test_gradcheck_cross_attention_with_float_mask_bias_kv_and_zero_attn() -> None:
    m = _mha64(embed_dim=4, num_heads=2, kdim=3, vdim=2, add_bias_kv=True, add_zero_attn=True, batch_first=True)
    rng = np.random.default_rng(3)
    q, k, v = _randn(rng, 2, 2, 4), _randn(rng, 2, 3, 3), _randn(rng, 2, 3, 2)
    bias = _randn(rng, 4, 2, 3)  # a learnable per-head (B * H, L, S) additive mask gets its gradient too

    def fn(q: labkit.Tensor, k: labkit.Tensor, v: labkit.Tensor, bias: labkit.Tensor, *params: Any) -> Any:
        return m(q, k, v, attn_mask=bias, average_attn_weights=False)

    assert gradcheck(fn, [q, k, v, bias, *m.parameters()])


def test_fully_masked_query_gets_zero_weights_and_finite_gradients() -> None:
    m = _mha64(embed_dim=4, num_heads=2, batch_first=True)
    x = _randn(np.random.default_rng(4), 1, 3, 4)
    mask = np.zeros((3, 3), bool)
    mask[1] = True  # query 1 may attend to nothing
    out, weights = m(x, x, x, attn_mask=mask)
    np.testing.assert_array_equal(weights.numpy()[0, 1], 0.0)
    np.testing.assert_allclose(out.numpy()[0, 1], m.out_proj.bias.numpy())  # attention output 0, then out_proj
    assert gradcheck(lambda x, *p: m(x, x, x, attn_mask=mask), [x, *m.parameters()])


# ---- what masks do ----------------------------------------------------------------------------------


def test_masked_positions_get_zero_weight() -> None:
    m = MultiheadAttention(8, 4, batch_first=True, generator=labkit.Generator(5))
    x = labkit.randn(2, 5, 8, generator=labkit.Generator(6))
    kpm = padding_mask([5, 3], 5)
    _, weights = m(x, x, x, key_padding_mask=kpm, is_causal=True, average_attn_weights=False)  # (B, H, L, S)
    w = weights.numpy()
    hidden = kpm.numpy()[:, None, None, :] | causal_mask(5).numpy()[None, None]
    assert np.all(w[np.broadcast_to(hidden, w.shape)] == 0.0)
    assert np.all(w[~np.broadcast_to(hidden, w.shape)] > 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)


def test_padded_keys_never_influence_other_positions() -> None:
    m = MultiheadAttention(8, 2, generator=labkit.Generator(7))  # sequence-first (S, B, E)
    rng = np.random.default_rng(8)
    data = rng.standard_normal((5, 2, 8)).astype(np.float32)
    kpm = padding_mask([5, 3], 5)
    x = labkit.tensor(data, requires_grad=True)
    out, _ = m(x, x, x, key_padding_mask=kpm)
    changed = data.copy()
    changed[3:, 1] = 100 * rng.standard_normal((2, 8))  # rewrite the padding of sequence 1
    out2, _ = m(labkit.tensor(changed), labkit.tensor(changed), labkit.tensor(changed), key_padding_mask=kpm)
    np.testing.assert_allclose(out2.numpy()[:3, 1], out.numpy()[:3, 1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out2.numpy()[:, 0], out.numpy()[:, 0])
    # no gradient reaches the padding from the real positions' outputs
    F.sum(out[:3, 1]).backward()
    np.testing.assert_array_equal(x.grad.numpy()[3:, 1], 0.0)
    assert np.abs(x.grad.numpy()[:3, 1]).min() > 0


def test_dropout_only_in_training_and_reproducible_from_the_generator() -> None:
    x = labkit.randn(2, 4, 8, generator=labkit.Generator(0))
    outs = []
    for _ in range(2):
        m = MultiheadAttention(8, 2, dropout=0.5, batch_first=True, generator=labkit.Generator(1))
        outs.append(m(x, x, x)[1].numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    m.eval()
    plain = m(x, x, x)[1].numpy()
    np.testing.assert_allclose(plain.sum(-1), 1.0, rtol=1e-6)
    assert not np.allclose(outs[0], plain)


def test_unbatched_input() -> None:
    m = MultiheadAttention(4, 2, generator=labkit.Generator(0))
    x = labkit.randn(3, 2, 4, generator=labkit.Generator(1))
    out, weights = m(x, x, x, key_padding_mask=padding_mask([3, 2], 3), is_causal=True)
    one, w1 = m(x[:, 1], x[:, 1], x[:, 1], key_padding_mask=padding_mask([2], 3)[0], is_causal=True)
    assert one.shape == (3, 4) and w1.shape == (3, 3)
    np.testing.assert_allclose(one.numpy(), out.numpy()[:, 1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(w1.numpy(), weights.numpy()[1], rtol=1e-6, atol=1e-6)


# ---- scaled_dot_product_attention -----------------------------------------------------------------


def test_sdpa_gradcheck_and_errors() -> None:
    rng = np.random.default_rng(9)
    q, k, v = _randn(rng, 2, 3, 4), _randn(rng, 2, 5, 4), _randn(rng, 2, 5, 3)
    keep = rng.random((3, 5)) > 0.3
    assert gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=keep), [q, k, v])
    assert gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3), [q, k, v])
    with pytest.raises(ValueError, match="expected either attn_mask or is_causal=True, got both"):
        scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=True)
    with pytest.raises(ValueError, match=r"expected attn_mask broadcastable to \(2, 3, 5\), got \(3, 4\)"):
        scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), bool))
    with pytest.raises(ValueError, match=r"expected query .* and key .* to share E"):
        scaled_dot_product_attention(q, v, v)
    with pytest.raises(ValueError, match=r"expected dropout_p in \[0, 1\)"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.0)


def test_sdpa_dropout_is_reproducible() -> None:
    q = labkit.randn(2, 4, 8, generator=labkit.Generator(0))
    a = scaled_dot_product_attention(q, q, q, dropout_p=0.5, generator=labkit.Generator(3)).numpy()
    b = scaled_dot_product_attention(q, q, q, dropout_p=0.5, generator=labkit.Generator(3)).numpy()
    c = scaled_dot_product_attention(q, q, q).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sdpa_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5))]
    keep = rng.random((2, 1, 4, 6)) > 0.3
    keep[0, 0, 2] = False  # a row with nothing to attend to: zeros in both
    additive = rng.standard_normal((4, 6)).astype(np.float32)
    for kwargs in ({"attn_mask": keep}, {"attn_mask": additive}, {"is_causal": True}, {"scale": 0.7}):
        ours = [labkit.tensor(a, requires_grad=True) for a in arrays]
        theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
        tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        out = scaled_dot_product_attention(*ours, **kwargs)
        expected = torch.nn.functional.scaled_dot_product_attention(*theirs, **tkw)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-5)
        cot = rng.standard_normal(out.shape).astype(np.float32)
        F.sum(out * labkit.tensor(cot)).backward()
        (expected * torch.from_numpy(cot)).sum().backward()
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-5)


# ---- PyTorch parity ----------------------------------------------------------------------------------


def _load_into_torch(torch: Any, ours: MultiheadAttention, theirs: Any) -> None:
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})


def _torch_mask(torch: Any, mask: Any) -> Any:
    return None if mask is None else torch.from_numpy(np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask))


CASES = [
    pytest.param({"batch_first": True}, {}, id="batch_first"),
    pytest.param({"batch_first": False}, {"kpm": True, "causal": True}, id="seq_first_masks"),
    pytest.param({"batch_first": True}, {"kpm": True, "float_mask": True, "average": False}, id="float_mask_per_head"),
    pytest.param({"batch_first": True}, {"per_head_bool": True, "kpm": True}, id="per_head_bool_mask"),
    pytest.param({"batch_first": True, "kdim": 3, "vdim": 5}, {"cross": True, "kpm": True}, id="kdim_vdim"),
    pytest.param({"batch_first": False, "bias": False}, {"cross_same_dim": True}, id="no_bias_cross"),
    pytest.param({"batch_first": True, "add_bias_kv": True, "add_zero_attn": True}, {"kpm": True}, id="bias_kv_zero"),
]


@pytest.mark.parametrize(("kwargs", "case"), CASES)
def test_multihead_attention_matches_torch(kwargs: dict[str, Any], case: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    embed, heads, bsz, tgt, src = 8, 2, 2, 4, 5
    ours = MultiheadAttention(embed, heads, generator=labkit.Generator(11), **kwargs)
    if ours.in_proj_bias is not None:  # non-zero biases, so their gradients are compared meaningfully
        ours.in_proj_bias.data[...] = np.random.default_rng(12).standard_normal(3 * embed) * 0.1
    theirs = torch.nn.MultiheadAttention(embed, heads, **kwargs)
    _load_into_torch(torch, ours, theirs)
    rng = np.random.default_rng(13)
    bf = kwargs.get("batch_first", False)

    def data(n: int, d: int) -> np.ndarray:
        return rng.standard_normal((bsz, n, d) if bf else (n, bsz, d)).astype(np.float32)

    q_np = data(tgt, embed)
    if case.get("cross") or case.get("cross_same_dim"):
        k_np, v_np = data(src, kwargs.get("kdim", embed)), data(src, kwargs.get("vdim", embed))
    else:
        src = tgt
        k_np = v_np = q_np
    kpm = padding_mask([src, src - 2], src) if case.get("kpm") else None
    if case.get("float_mask"):  # a float key padding mask is added like any float mask
        kpm = np.where(kpm.numpy(), -np.inf, 0.0).astype(np.float32)
    attn_mask = None
    if case.get("causal"):
        attn_mask = causal_mask(tgt)
    elif case.get("float_mask"):
        attn_mask = rng.standard_normal((tgt, src)).astype(np.float32)
    elif case.get("per_head_bool"):
        attn_mask = rng.random((bsz * heads, tgt, src)) > 0.7
        attn_mask[..., 0] = False  # every query keeps a key (PyTorch gives NaN for fully masked rows)
    average = case.get("average", True)

    lq = labkit.tensor(q_np, requires_grad=True)
    lk, lv = (
        (lq, lq) if k_np is q_np else (labkit.tensor(k_np, requires_grad=True), labkit.tensor(v_np, requires_grad=True))
    )
    tq = torch.tensor(q_np, requires_grad=True)
    tk, tv = (
        (tq, tq) if k_np is q_np else (torch.tensor(k_np, requires_grad=True), torch.tensor(v_np, requires_grad=True))
    )
    out, weights = ours(lq, lk, lv, key_padding_mask=kpm, attn_mask=attn_mask, average_attn_weights=average)
    t_out, t_weights = theirs(
        tq, tk, tv, key_padding_mask=_torch_mask(torch, kpm), attn_mask=_torch_mask(torch, attn_mask),
        average_attn_weights=average,
    )  # fmt: skip
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights.numpy(), t_weights.detach().numpy(), rtol=1e-5, atol=1e-5)

    c_out = rng.standard_normal(out.shape).astype(np.float32)
    c_w = rng.standard_normal(weights.shape).astype(np.float32)
    (F.sum(out * labkit.tensor(c_out)) + F.sum(weights * labkit.tensor(c_w))).backward()
    ((t_out * torch.from_numpy(c_out)).sum() + (t_weights * torch.from_numpy(c_w)).sum()).backward()
    for a, b in {lq: tq, lk: tk, lv: tv}.items():
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-5)
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_runs_on_every_device(device: str) -> None:
    m = MultiheadAttention(8, 2, batch_first=True, generator=labkit.Generator(0))
    x = labkit.randn(2, 5, 8, generator=labkit.Generator(1))
    kpm = padding_mask([5, 3], 5)
    expected, expected_w = m(x, x, x, key_padding_mask=kpm, is_causal=True)
    m.to(device)
    xd = x.to(device)
    out, weights = m(xd, xd, xd, key_padding_mask=kpm, is_causal=True)  # a host mask is moved to the input's device
    assert str(out.device).startswith(device)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights.numpy(), expected_w.numpy(), rtol=1e-5, atol=1e-6)
