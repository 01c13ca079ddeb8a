"""Shape ops: forward against numpy, gradients, double backward, aliases and error messages."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import OpSpec, check_op


def _np_pad(x: np.ndarray, pad: tuple[int, ...], mode: str = "constant", value: float = 0.0) -> np.ndarray:
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}.get(mode)
    if np_mode is None:
        return np.pad(x, widths, constant_values=value)
    return np.pad(x, widths, mode=np_mode)


def _np_split(x: np.ndarray, sizes: list[int], axis: int) -> tuple[np.ndarray, ...]:
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


SPECS = [
    # reshape family
    OpSpec("reshape_varargs", lambda x: F.reshape(x, 4, 6), lambda x: x.reshape(4, 6), [(2, 3, 4)]),
    OpSpec("reshape_tuple_minus1", lambda x: F.reshape(x, (-1, 2)), lambda x: x.reshape(-1, 2), [(2, 3, 4)]),
    OpSpec("view_method", lambda x: x.view(3, 8), lambda x: x.reshape(3, 8), [(2, 3, 4)]),
    OpSpec("reshape_to_scalar", lambda x: F.reshape(x, ()), lambda x: x.reshape(()), [(1, 1)], double=False),
    OpSpec("flatten_all", F.flatten, lambda x: x.reshape(-1), [(2, 3, 4)]),
    OpSpec("flatten_range", lambda x: x.flatten(1, -2), lambda x: x.reshape(2, 12, 2), [(2, 3, 4, 2)]),
    OpSpec("flatten_0d", F.flatten, lambda x: x.reshape(1), [()], grad=False),
    OpSpec("squeeze_all", F.squeeze, np.squeeze, [(2, 1, 3, 1)]),
    OpSpec("squeeze_axis", lambda x: F.squeeze(x, -1), lambda x: np.squeeze(x, -1), [(2, 1, 3, 1)]),
    OpSpec("squeeze_dims", lambda x: x.squeeze(dim=(1, 3)), lambda x: np.squeeze(x, (1, 3)), [(2, 1, 3, 1)]),
    OpSpec("unsqueeze", lambda x: F.unsqueeze(x, 1), lambda x: np.expand_dims(x, 1), [(2, 3)]),
    OpSpec("unsqueeze_end", lambda x: x.unsqueeze(dim=-1), lambda x: np.expand_dims(x, -1), [(2, 3)]),
    # axis permutations
    OpSpec("transpose_reverse", F.transpose, np.transpose, [(2, 3, 4)]),
    OpSpec("T_property", lambda x: x.T, lambda x: x.T, [(3, 4)]),
    OpSpec("mT_property", lambda x: x.mT, lambda x: np.swapaxes(x, -1, -2), [(2, 3, 4)]),
    OpSpec("transpose_swap", lambda x: x.transpose(0, 2), lambda x: np.swapaxes(x, 0, 2), [(2, 3, 4)]),
    OpSpec("transpose_swap_2d", lambda x: x.transpose(0, 1), lambda x: x.T, [(3, 4)]),
    OpSpec("transpose_perm", lambda x: x.transpose((1, 2, 0)), lambda x: x.transpose(1, 2, 0), [(2, 3, 4)]),
    OpSpec("transpose_perm_varargs", lambda x: x.transpose(2, 0, 1), lambda x: x.transpose(2, 0, 1), [(2, 3, 4)]),
    OpSpec("permute", lambda x: x.permute(1, 0, 2), lambda x: x.transpose(1, 0, 2), [(2, 3, 4)]),
    OpSpec("permute_tuple_neg", lambda x: F.permute(x, (-1, 0, 1)), lambda x: x.transpose(2, 0, 1), [(2, 3, 4)]),
    OpSpec("swapaxes", lambda x: x.swapaxes(-1, 0), lambda x: np.swapaxes(x, -1, 0), [(2, 3, 4)]),
    # joining
    OpSpec(
        "concatenate_axis0", lambda a, b: F.concatenate([a, b]), lambda a, b: np.concatenate([a, b]), [(2, 3), (4, 3)]
    ),
    OpSpec(
        "concatenate_axis1_three",
        lambda a, b, c: F.concatenate((a, b, c), axis=1),
        lambda a, b, c: np.concatenate([a, b, c], axis=1),
        [(2, 1, 3), (2, 2, 3), (2, 4, 3)],
    ),
    OpSpec(
        "cat_dim_neg", lambda a, b: F.cat([a, b], dim=-1), lambda a, b: np.concatenate([a, b], -1), [(2, 3), (2, 2)]
    ),
    OpSpec("stack", lambda a, b: F.stack([a, b]), lambda a, b: np.stack([a, b]), [(2, 3), (2, 3)]),
    OpSpec(
        "stack_dim_last",
        lambda a, b, c: F.stack([a, b, c], dim=-1),
        lambda a, b, c: np.stack([a, b, c], -1),
        [(2, 3), (2, 3), (2, 3)],
    ),
    OpSpec("stack_0d", lambda a, b: F.stack([a, b]), lambda a, b: np.stack([a, b]), [(), ()], grad=False),
    # splitting
    OpSpec("split_int", lambda x: F.split(x, 2, 1), lambda x: _np_split(x, [2, 2, 1], 1), [(2, 5)]),
    OpSpec("split_sections", lambda x: x.split([1, 3, 0], dim=0), lambda x: _np_split(x, [1, 3, 0], 0), [(4, 2)]),
    OpSpec("split_exact", lambda x: F.split(x, 3, axis=-1), lambda x: _np_split(x, [3, 3], -1), [(2, 6)]),
    OpSpec("split_one_piece_used", lambda x: F.split(x, 2)[1], lambda x: x[2:4], [(5, 2)]),
    OpSpec("chunk", lambda x: x.chunk(3, dim=1), lambda x: _np_split(x, [2, 2, 1], 1), [(2, 5)]),
    OpSpec("chunk_fewer", lambda x: F.chunk(x, 4), lambda x: _np_split(x, [2, 2, 1], 0), [(5,)]),
    # padding
    OpSpec("pad_constant_last", lambda x: F.pad(x, (1, 2)), lambda x: _np_pad(x, (1, 2)), [(2, 3)]),
    OpSpec(
        "pad_constant_value_two_dims",
        lambda x: F.pad(x, (0, 1, 2, 0), value=1.5),
        lambda x: _np_pad(x, (0, 1, 2, 0), value=1.5),
        [(2, 3, 2)],
    ),
    OpSpec(
        "pad_reflect",
        lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"),
        lambda x: _np_pad(x, (2, 1, 1, 2), "reflect"),
        [(2, 3, 4)],
    ),
    OpSpec(
        "pad_replicate",
        lambda x: F.pad(x, (3, 1, 0, 2), mode="replicate"),
        lambda x: _np_pad(x, (3, 1, 0, 2), "replicate"),
        [(2, 3, 2)],
    ),
    OpSpec(
        "pad_circular", lambda x: F.pad(x, (2, 3), mode="circular"), lambda x: _np_pad(x, (2, 3), "circular"), [(2, 3)]
    ),
    # flip and tile
    OpSpec("flip_one", lambda x: x.flip(0), lambda x: np.flip(x, 0), [(2, 3)]),
    OpSpec("flip_tuple", lambda x: F.flip(x, (0, -1)), lambda x: np.flip(x, (0, 2)), [(2, 3, 4)]),
    OpSpec("flip_all", F.flip, np.flip, [(2, 3)]),
    OpSpec("repeat", lambda x: x.repeat(2, 3), lambda x: np.tile(x, (2, 3)), [(2, 3)]),
    OpSpec("repeat_more_dims", lambda x: x.repeat(2, 1, 2), lambda x: np.tile(x, (2, 1, 2)), [(2, 3)]),
    OpSpec("tile_short_reps", lambda x: x.tile(3), lambda x: np.tile(x, 3), [(2, 2)]),
    OpSpec("tile_zero", lambda x: F.tile(x, (0, 2)), lambda x: np.tile(x, (0, 2)), [(2, 2)], grad=False),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_shape(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


def test_zero_dim_gradients() -> None:
    # gradcheck cannot perturb 0-d inputs yet (see the 0-d rows above), so check these by hand
    x = labkit.tensor(np.array(2.0), requires_grad=True)
    y = labkit.tensor(np.array(3.0), requires_grad=True)
    out = F.stack([F.flatten(x).reshape(()), y]) * labkit.tensor([5.0, 7.0], dtype=labkit.float64)
    gx, gy = labkit.grad(out, [x, y], labkit.ones(2, dtype=labkit.float64))
    assert gx.shape == () and float(gx) == 5.0 and float(gy) == 7.0


def test_concatenate_mixed_dtypes_promotes_and_keeps_grad_dtypes() -> None:
    a = labkit.ones(2, requires_grad=True)
    b = labkit.ones(3, dtype=labkit.float64, requires_grad=True)
    y = F.cat([a, b])
    assert y.dtype == labkit.float64 and y.shape == (5,)
    ga, gb = labkit.grad(y, [a, b], labkit.ones(5, dtype=labkit.float64))
    assert ga.dtype == labkit.float32 and gb.dtype == labkit.float64


def test_float32_stays_float32() -> None:
    x = labkit.ones(2, 3)
    outs = [x.reshape(3, 2), x.T, F.pad(x, (1, 1), value=0.5), F.pad(x, (1, 1), mode="reflect"), x.repeat(2, 1)]
    outs += [*x.split(1), F.stack([x, x]), x.flip(0), x[0]]
    assert all(o.dtype == labkit.float32 for o in outs)


def test_unused_split_pieces_get_zero_gradient() -> None:
    x = labkit.tensor(np.arange(6.0), requires_grad=True)
    a, _, c = x.split(2)
    (a * 2 + c).backward(labkit.ones(2, dtype=labkit.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 0, 0, 1, 1])


def test_reshape_errors() -> None:
    x = labkit.ones(2, 3)
    with pytest.raises(
        ValueError, match=r"reshape: cannot reshape \(2, 3\) \(6 elements\) into \(4, 2\) \(8 elements\)"
    ):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape \(2, 3\) \(6 elements\) into \(4, -1\)"):
        x.reshape(4, -1)
    with pytest.raises(ValueError, match="only one dimension can be -1"):
        x.reshape(-1, -1)
    with pytest.raises(TypeError, match="reshape: expected ints"):
        x.reshape(2.0, 3)


def test_squeeze_unsqueeze_flatten_errors() -> None:
    x = labkit.ones(2, 1, 3)
    with pytest.raises(ValueError, match=r"squeeze: cannot squeeze axis 0 of size 2 \(shape \(2, 1, 3\)\)"):
        x.squeeze(0)
    with pytest.raises(ValueError, match="squeeze: axis 3 is out of range"):
        x.squeeze(3)
    with pytest.raises(ValueError, match="unsqueeze: axis 4 is out of range"):
        x.unsqueeze(4)
    with pytest.raises(TypeError, match="unsqueeze: got both axis=0 and dim=1"):
        F.unsqueeze(x, 0, dim=1)
    with pytest.raises(ValueError, match="flatten: start_dim 2 comes after end_dim 0"):
        x.flatten(2, 0)


def test_transpose_permute_errors() -> None:
    x = labkit.ones(2, 3, 4)
    with pytest.raises(ValueError, match=r"permute: expected 3 axes for shape \(2, 3, 4\), got \(1, 0\)"):
        x.permute(1, 0)
    with pytest.raises(ValueError, match="permute: repeated axis"):
        x.permute(0, 0, 1)
    with pytest.raises(ValueError, match="swapaxes: axis 5 is out of range"):
        x.transpose(0, 5)


def test_concatenate_errors_name_the_input() -> None:
    a, b = labkit.ones(2, 3), labkit.ones(3, 4)
    with pytest.raises(
        ValueError, match=r"concatenate: input 1 has shape \(3, 4\) but input 0 has \(2, 3\).*dimension 1: 4 != 3"
    ):
        F.concatenate([a, b])
    with pytest.raises(ValueError, match=r"concatenate: input 2 has 1 dimensions \(shape \(3,\)\) but input 0 has 2"):
        F.cat([a, a, labkit.ones(3)])
    with pytest.raises(ValueError, match="concatenate: expected at least one tensor"):
        F.cat([])
    with pytest.raises(TypeError, match="concatenate: input 1 is a ndarray, expected a Tensor"):
        F.cat([a, np.ones((2, 3))])
    with pytest.raises(TypeError, match="concatenate: expected a list or tuple of Tensors"):
        F.cat(a)
    with pytest.raises(ValueError, match="zero-dimensional"):
        F.cat([labkit.tensor(1.0), labkit.tensor(2.0)])
    with pytest.raises(ValueError, match=r"stack: input 1 has shape \(3, 4\), expected \(2, 3\) like input 0"):
        F.stack([a, b])


def test_split_chunk_errors_and_edges() -> None:
    x = labkit.ones(5, 2)
    with pytest.raises(ValueError, match=r"split: sections \[2, 2\] must be non-negative and sum to 5"):
        x.split([2, 2])
    with pytest.raises(ValueError, match="split: expected a positive split size, got 0"):
        x.split(0)
    with pytest.raises(ValueError, match="chunk: expected a positive number of chunks"):
        x.chunk(0)
    assert [p.shape for p in F.split(x, 10)] == [(5, 2)]
    assert [p.shape for p in x.chunk(2, dim=1)] == [(5, 1), (5, 1)]
    assert len(F.chunk(labkit.ones(0), 3)) == 3


def test_pad_errors() -> None:
    x = labkit.ones(2, 3)
    with pytest.raises(ValueError, match="pad: expected an even number of pad sizes"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match="pad: expected an even number of pad sizes, at most 4"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"pad: reflect padding \(3, 0\) must be smaller than dimension 1 of size 3"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="pad: unknown mode 'wrap'"):
        F.pad(x, (1, 1), mode="wrap")
    with pytest.raises(ValueError, match="negative padding"):
        F.pad(x, (-1, 1))


def test_repeat_tile_flip_errors() -> None:
    x = labkit.ones(2, 3)
    with pytest.raises(ValueError, match=r"repeat: got 1 repetitions \(2,\) for a tensor of 2 dimensions"):
        x.repeat(2)
    with pytest.raises(ValueError, match="tile: repetitions must be non-negative"):
        x.tile((-1, 1))
    with pytest.raises(ValueError, match="flip: repeated axis"):
        x.flip(0, -2)


def test_no_op_shapes_return_input() -> None:
    x = labkit.ones(2, 3)
    assert x.reshape(2, 3) is x and F.pad(x, (0, 0)) is x and F.cat([x]) is x
