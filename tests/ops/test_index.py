"""Indexing ops: every index kind, gather/scatter, masked_fill, and their error messages."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit.testing.opspec import OpSpec, check_op

ROWS = np.array([[0, 2], [2, 2]])  # repeats: gradients must accumulate
MASK_2D = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])
MASK_ROWS = np.array([True, False, True])
GATHER_IDX = np.array([[0, 2, 2], [1, 0, 0]])  # (2, 3) into a (3, 4) tensor


def _np_gather(x: np.ndarray, axis: int, index: np.ndarray) -> np.ndarray:
    crop = tuple(slice(None) if d == axis % x.ndim else slice(0, k) for d, k in enumerate(index.shape))
    return np.take_along_axis(x[crop], index, axis=axis)


def _np_scatter_add(x: np.ndarray, src: np.ndarray, axis: int, index: np.ndarray) -> np.ndarray:
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[axis] = index[pos]
        out[tuple(target)] += src[pos]
    return out


SPECS = [
    # basic indexing
    OpSpec("int", lambda x: x[1], lambda x: x[1], [(3, 4)]),
    OpSpec("int_int_scalar", lambda x: x[1, -1], lambda x: np.asarray(x[1, -1]), [(3, 4)], double=False),
    OpSpec("negative_int_slice", lambda x: x[-1, 1:3], lambda x: x[-1, 1:3], [(3, 4)]),
    OpSpec("step_slices", lambda x: x[::2, ::-1], lambda x: x[::2, ::-1], [(3, 4)]),
    OpSpec("none_ellipsis", lambda x: x[None, ..., 1], lambda x: x[None, ..., 1], [(2, 3, 4)]),
    OpSpec("ellipsis_middle", lambda x: x[0, ..., 1:], lambda x: x[0, ..., 1:], [(2, 3, 4)]),
    OpSpec("empty_slice", lambda x: x[2:2], lambda x: x[2:2], [(3, 4)], grad=False),
    # advanced indexing
    OpSpec("int_list_repeats", lambda x: x[[0, 2, 0]], lambda x: x[[0, 2, 0]], [(3, 4)]),
    OpSpec("int_tensor_2d", lambda x, i: x[i], lambda x, i: x[i], [(3, 4)], extra=[ROWS]),
    OpSpec("int_tensor_axis1", lambda x, i: x[:, i], lambda x, i: x[:, i], [(3, 4)], extra=[ROWS]),
    OpSpec("numpy_index_array", lambda x: x[np.array([1, 1])], lambda x: x[np.array([1, 1])], [(3, 4)]),
    OpSpec("negative_int_array", lambda x: x[[-1, 0, -1]], lambda x: x[[-1, 0, -1]], [(3, 4)]),
    OpSpec("two_arrays", lambda x: x[[0, 1, 1], [2, 0, 2]], lambda x: x[[0, 1, 1], [2, 0, 2]], [(3, 4)]),
    OpSpec("arrays_split_by_slice", lambda x: x[[0, 1], :, [1, 1]], lambda x: x[[0, 1], :, [1, 1]], [(2, 3, 4)]),
    OpSpec("array_with_none", lambda x: x[:, None, [1, 1, 0]], lambda x: x[:, None, [1, 1, 0]], [(3, 4)]),
    OpSpec("array_and_int", lambda x: x[1, [0, 0, 2]], lambda x: x[1, [0, 0, 2]], [(2, 3)]),
    # boolean masks
    OpSpec("mask_full", lambda x, m: x[m], lambda x, m: x[m], [(3, 4)], extra=[MASK_2D]),
    OpSpec("mask_rows", lambda x, m: x[m], lambda x, m: x[m], [(3, 4)], extra=[MASK_ROWS]),
    OpSpec("mask_axis1", lambda x, m: x[:, m], lambda x, m: x[:, m], [(2, 3)], extra=[MASK_ROWS]),
    OpSpec("mask_list", lambda x: x[[True, False, True]], lambda x: x[[True, False, True]], [(3, 2)]),
    OpSpec("mask_and_array", lambda x, m: x[m, [0, 3]], lambda x, m: x[m, [0, 3]], [(3, 4)], extra=[MASK_ROWS]),
    # gather / index_select / scatter_add
    OpSpec(
        "gather_axis0", lambda x, i: F.gather(x, 0, i), lambda x, i: _np_gather(x, 0, i), [(3, 4)], extra=[GATHER_IDX]
    ),
    OpSpec(
        "gather_dim1",
        lambda x, i: x.gather(dim=1, index=i),
        lambda x, i: _np_gather(x, 1, i),
        [(3, 4)],
        extra=[GATHER_IDX],
    ),
    OpSpec(
        "gather_3d_neg_axis",
        lambda x, i: F.gather(x, -1, i),
        lambda x, i: _np_gather(x, -1, i),
        [(2, 3, 3)],
        extra=[np.array([[[1, 1, 0, 2]], [[0, 0, 2, 2]]])],
    ),
    OpSpec(
        "index_select_repeats",
        lambda x, i: F.index_select(x, 1, i),
        lambda x, i: x[:, i],
        [(2, 4)],
        extra=[np.array([3, 0, 3])],
    ),
    OpSpec(
        "index_select_dim0",
        lambda x, i: x.index_select(dim=0, index=i),
        lambda x, i: x[i],
        [(3, 2)],
        extra=[np.array([2, 2])],
    ),
    OpSpec(
        "scatter_add_axis0",
        lambda x, s, i: F.scatter_add(x, 0, i, s),
        lambda x, s, i: _np_scatter_add(x, s, 0, i),
        [(3, 4), (2, 3)],
        extra=[GATHER_IDX],
    ),
    OpSpec(
        "scatter_add_src_larger",
        lambda x, s, i: x.scatter_add(dim=1, index=i, src=s),
        lambda x, s, i: _np_scatter_add(x, s, 1, i),
        [(3, 4), (3, 5)],
        extra=[GATHER_IDX],
    ),
    # masked_fill
    OpSpec(
        "masked_fill",
        lambda x, m: F.masked_fill(x, m, 2.5),
        lambda x, m: np.where(m, 2.5, x),
        [(3, 4)],
        extra=[MASK_2D],
    ),
    OpSpec(
        "masked_fill_broadcast",
        lambda x, m: x.masked_fill(m, -1.0),
        lambda x, m: np.where(m, -1.0, x),
        [(2, 3, 4)],
        extra=[MASK_2D[:1]],
    ),
    OpSpec(
        "masked_fill_neg_inf",
        lambda x, m: F.masked_fill(x, m, float("-inf")),
        lambda x, m: np.where(m, -np.inf, x),
        [(3, 4)],
        extra=[MASK_2D],
        grad=False,
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_index(spec: OpSpec, device: str) -> None:
    check_op(spec, device)


# ---- semantics ------------------------------------------------------------------------------


def _grad(y: labkit.Tensor, x: labkit.Tensor) -> np.ndarray:
    return labkit.grad(y, x, labkit.ones(*y.shape, dtype=y.dtype))[0].numpy()


def test_repeated_indices_accumulate() -> None:
    x = labkit.tensor(np.zeros((3, 2)), requires_grad=True)
    np.testing.assert_array_equal(_grad(x[[0, 0, 2, 0]], x)[:, 0], [3, 0, 1])
    np.testing.assert_array_equal(_grad(F.index_select(x, 0, labkit.tensor([1, 1])), x)[:, 1], [0, 2, 0])
    np.testing.assert_array_equal(_grad(F.gather(x, 0, labkit.tensor([[2, 2], [2, 0]])), x), [[0, 1], [0, 0], [2, 1]])


def test_masked_fill_blocks_gradient_and_tensor_value_gets_one() -> None:
    x = labkit.tensor(np.ones((2, 3)), requires_grad=True)
    v = labkit.tensor(np.array(4.0), requires_grad=True)
    mask = labkit.tensor([[True, False, False], [False, True, True]])
    y = F.masked_fill(x, mask, v)
    np.testing.assert_array_equal(y.numpy(), [[4, 1, 1], [1, 4, 4]])
    gx, gv = labkit.grad(y, [x, v], labkit.ones(2, 3, dtype=labkit.float64))
    np.testing.assert_array_equal(gx.numpy(), ~mask.numpy())
    assert float(gv) == 3.0


def test_index_kinds_keep_dtype_and_work_on_int_tensors() -> None:
    x = labkit.ones(3, 4)
    assert x[[0, 1]].dtype == labkit.float32 and F.masked_fill(x, x.data > 0, 2.0).dtype == labkit.float32
    n = labkit.arange(6)
    assert n[1:3].tolist() == [1, 2] and n[labkit.tensor([5, 0])].tolist() == [5, 0]
    assert x[labkit.tensor(1)].shape == (4,) and x[True].shape == (1, 3, 4)


def test_double_backward_through_getitem() -> None:
    x = labkit.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x[[0, 0, 2]]
    (g,) = labkit.grad(y * y, x, labkit.ones(3, dtype=labkit.float64), create_graph=True)
    np.testing.assert_array_equal(g.numpy(), [4.0, 0.0, 6.0])  # d/dx sum(x[i]^2) with x0 used twice
    (gg,) = labkit.grad(g, x, labkit.ones(3, dtype=labkit.float64))
    np.testing.assert_array_equal(gg.numpy(), [4.0, 0.0, 2.0])


# ---- errors ---------------------------------------------------------------------------------


def test_getitem_errors() -> None:
    x = labkit.ones(3, 4)
    with pytest.raises(
        IndexError, match=r"getitem: index 5 is out of range for dimension 0 of size 3 \(shape \(3, 4\)"
    ):
        x[5]
    with pytest.raises(IndexError, match="getitem: index -5 is out of range for dimension 1 of size 4"):
        x[0, -5]
    with pytest.raises(IndexError, match="getitem: index 4 is out of range for dimension 1 of size 4"):
        x[:, labkit.tensor([0, 4])]
    with pytest.raises(IndexError, match=r"getitem: too many indices for a tensor of shape \(3, 4\): 3"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match=r"getitem: boolean mask of shape \(2,\) does not match .* \(3,\)"):
        x[labkit.tensor([True, False])]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., ...]
    with pytest.raises(TypeError, match="getitem: indices must be ints, slices"):
        x[1.5]
    with pytest.raises(TypeError, match="getitem: index arrays must hold integers or bools, got float32"):
        x[labkit.tensor([0.0, 1.0])]


def test_gather_scatter_index_select_errors() -> None:
    x = labkit.ones(3, 4)
    idx = labkit.tensor([[0, 1]])
    with pytest.raises(ValueError, match=r"gather: index has 1 dimensions \(2,\) but x has 2 \(3, 4\)"):
        F.gather(x, 0, labkit.tensor([0, 1]))
    with pytest.raises(IndexError, match="gather: index 3 is out of range for dimension 0 of size 3"):
        F.gather(x, 0, labkit.tensor([[3]]))
    with pytest.raises(IndexError, match=r"gather: index -1 .*valid \[0, 3\)"):
        F.gather(x, 0, labkit.tensor([[-1]]))
    with pytest.raises(ValueError, match=r"gather: index shape \(1, 5\) exceeds x shape \(3, 4\) in dimension 1"):
        F.gather(x, 0, labkit.tensor([[0, 0, 0, 0, 0]]))
    with pytest.raises(TypeError, match="gather: expected an integer index, got a bool tensor"):
        F.gather(x, 0, labkit.tensor([[True]]))
    with pytest.raises(TypeError, match="gather: got both axis=0 and dim=1"):
        F.gather(x, 0, idx, dim=1)
    with pytest.raises(TypeError, match="scatter_add: x is float32 but src is float64"):
        F.scatter_add(x, 0, idx, labkit.ones(1, 2, dtype=labkit.float64))
    with pytest.raises(ValueError, match=r"scatter_add: index shape \(1, 2\) must not exceed src shape \(1, 1\)"):
        F.scatter_add(x, 0, idx, labkit.ones(1, 1))
    with pytest.raises(ValueError, match=r"index_select: expected a 1-d index, got shape \(1, 2\)"):
        F.index_select(x, 0, idx)
    with pytest.raises(IndexError, match="index_select: index 4 is out of range for dimension 1 of size 4"):
        F.index_select(x, 1, labkit.tensor([4]))
    with pytest.raises(ValueError, match="index_select: axis 2 is out of range"):
        F.index_select(x, 2, labkit.tensor([0]))


def test_masked_fill_errors() -> None:
    x = labkit.ones(2, 3)
    with pytest.raises(TypeError, match="masked_fill: expected a bool mask, got int64"):
        F.masked_fill(x, labkit.tensor([1, 0, 1]), 0.0)
    with pytest.raises(ValueError, match=r"masked_fill: shapes \(2, 5\) and \(2, 3\) cannot be broadcast"):
        F.masked_fill(x, labkit.zeros(2, 5, dtype=labkit.bool_), 0.0)
    with pytest.raises(
        ValueError, match=r"masked_fill: mask of shape \(4, 2, 3\) cannot be broadcast to the tensor's shape"
    ):
        F.masked_fill(x, labkit.zeros(4, 2, 3, dtype=labkit.bool_), 0.0)
    with pytest.raises(ValueError, match="masked_fill: value must be a number or a 0-d tensor"):
        F.masked_fill(x, labkit.zeros(3, dtype=labkit.bool_), labkit.ones(2))
