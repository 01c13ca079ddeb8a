"""Standard layers: gradients (float64 gradcheck), PyTorch parity, init, running stats, dropout, errors.

One table of layer cases drives both the gradcheck and the optional comparison with
PyTorch, which loads the labkit layer's ``state_dict`` (so parameter names and shapes
must match) and compares outputs, input gradients and parameter gradients in float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import labkit
from labkit.nn.activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from labkit.nn.conv import Conv1d, Conv2d
from labkit.nn.dropout import Dropout
from labkit.nn.embedding import Embedding
from labkit.nn.linear import Bilinear, Flatten, Identity, Linear, Unflatten
from labkit.nn.module import Module
from labkit.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from labkit.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from labkit.testing import gradcheck

TOL = {"rtol": 1e-5, "atol": 1e-5}


@dataclass
class Case:
    """A layer, its PyTorch twin (built from ``torch.nn`` by name and arguments) and its inputs."""

    id: str
    make: Callable[[labkit.Generator], Module]
    torch_name: str
    torch_args: tuple[Any, ...] = ()
    torch_kwargs: dict[str, Any] = field(default_factory=dict)
    shapes: tuple[Any, ...] = ((2, 3),)  # a tuple of ints: float input; ("ids", high, shape): int input
    train: bool = True
    randomize_stats: bool = False  # give batch norm non-trivial running statistics first
    gradcheck: bool = True  # False where the gradient is zero by design (embedding's padding row)


def _inputs(case: Case, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for s in case.shapes:
        if s and s[0] == "ids":
            arrays.append(rng.integers(0, s[1], size=s[2]).astype(np.int64))
        else:
            arrays.append(rng.standard_normal(s).astype(np.float32))
    return arrays


def _prepare(case: Case, module: Module, rng: np.random.Generator) -> Module:
    module.train(case.train)
    if case.randomize_stats:
        module.running_mean.data[...] = rng.standard_normal(module.running_mean.shape)
        module.running_var.data[...] = rng.uniform(0.5, 2.0, module.running_var.shape)
    return module


CASES = [
    Case("linear", lambda g: Linear(4, 3, generator=g), "Linear", (4, 3), shapes=((2, 5, 4),)),
    Case("linear_nobias", lambda g: Linear(4, 3, bias=False, generator=g), "Linear", (4, 3, False), shapes=((2, 4),)),
    Case("bilinear", lambda g: Bilinear(3, 4, 2, generator=g), "Bilinear", (3, 4, 2), shapes=((5, 3), (5, 4))),
    Case(
        "conv1d_groups",
        lambda g: Conv1d(4, 6, 3, stride=2, padding=1, groups=2, generator=g),
        "Conv1d",
        (4, 6, 3),
        {"stride": 2, "padding": 1, "groups": 2},
        shapes=((2, 4, 9),),
    ),
    Case(
        "conv1d_same_circular",
        lambda g: Conv1d(2, 3, 4, padding="same", padding_mode="circular", generator=g),
        "Conv1d",
        (2, 3, 4),
        {"padding": "same", "padding_mode": "circular"},
        shapes=((2, 2, 7),),
    ),
    Case(
        "conv2d",
        lambda g: Conv2d(3, 4, 3, padding=1, generator=g),
        "Conv2d",
        (3, 4, 3),
        {"padding": 1},
        ((2, 3, 5, 4),),
    ),
    Case(
        "conv2d_strided_dilated",
        lambda g: Conv2d(2, 4, (3, 2), stride=(2, 1), dilation=(1, 2), bias=False, generator=g),
        "Conv2d",
        (2, 4, (3, 2)),
        {"stride": (2, 1), "dilation": (1, 2), "bias": False},
        shapes=((2, 2, 7, 6),),
    ),
    Case(
        "conv2d_reflect_same",
        lambda g: Conv2d(2, 2, 3, padding="same", padding_mode="reflect", generator=g),
        "Conv2d",
        (2, 2, 3),
        {"padding": "same", "padding_mode": "reflect"},
        shapes=((1, 2, 5, 4),),
    ),
    Case(
        "conv2d_replicate_unbatched",
        lambda g: Conv2d(2, 3, 2, padding=1, padding_mode="replicate", generator=g),
        "Conv2d",
        (2, 3, 2),
        {"padding": 1, "padding_mode": "replicate"},
        shapes=((2, 4, 3),),
    ),
    Case("maxpool", lambda g: MaxPool2d(2), "MaxPool2d", (2,), shapes=((2, 3, 4, 6),)),
    Case(
        "maxpool_padded",
        lambda g: MaxPool2d(3, stride=2, padding=1),
        "MaxPool2d",
        (3,),
        {"stride": 2, "padding": 1},
        shapes=((1, 2, 5, 6),),
    ),
    Case(
        "avgpool_exclude_pad",
        lambda g: AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        "AvgPool2d",
        (3,),
        {"stride": 2, "padding": 1, "count_include_pad": False},
        shapes=((2, 2, 5, 6),),
    ),
    Case(
        "avgpool_divisor",
        lambda g: AvgPool2d(2, padding=1, divisor_override=3),
        "AvgPool2d",
        (2,),
        {"padding": 1, "divisor_override": 3},
        shapes=((1, 2, 4, 5),),
    ),
    Case(
        "adaptive_avgpool", lambda g: AdaptiveAvgPool2d((3, 2)), "AdaptiveAvgPool2d", ((3, 2),), shapes=((2, 2, 7, 5),)
    ),
    Case(
        "adaptive_avgpool_unbatched",
        lambda g: AdaptiveAvgPool2d((None, 1)),
        "AdaptiveAvgPool2d",
        ((None, 1),),
        shapes=((3, 4, 5),),
    ),
    Case("batchnorm1d_2d", lambda g: BatchNorm1d(4), "BatchNorm1d", (4,), shapes=((6, 4),)),
    Case(
        "batchnorm1d_3d", lambda g: BatchNorm1d(3, momentum=None), "BatchNorm1d", (3,), {"momentum": None}, ((4, 3, 5),)
    ),
    Case("batchnorm2d", lambda g: BatchNorm2d(3), "BatchNorm2d", (3,), shapes=((4, 3, 3, 2),)),
    Case(
        "batchnorm2d_eval",
        lambda g: BatchNorm2d(3),
        "BatchNorm2d",
        (3,),
        shapes=((2, 3, 2, 2),),
        train=False,
        randomize_stats=True,
    ),
    Case(
        "batchnorm1d_plain",
        lambda g: BatchNorm1d(3, affine=False, track_running_stats=False),
        "BatchNorm1d",
        (3,),
        {"affine": False, "track_running_stats": False},
        shapes=((5, 3),),
        train=False,  # without running statistics evaluation uses the batch's
    ),
    Case(
        "batchnorm2d_nobias",
        lambda g: BatchNorm2d(2, bias=False),
        "BatchNorm2d",
        (2,),
        {"bias": False},
        ((3, 2, 2, 2),),
    ),
    Case("layernorm", lambda g: LayerNorm(5), "LayerNorm", (5,), shapes=((2, 3, 5),)),
    Case(
        "layernorm_2d_nobias",
        lambda g: LayerNorm((3, 4), bias=False),
        "LayerNorm",
        ((3, 4),),
        {"bias": False},
        ((2, 3, 4),),
    ),
    Case(
        "layernorm_plain",
        lambda g: LayerNorm(4, elementwise_affine=False),
        "LayerNorm",
        (4,),
        {"elementwise_affine": False},
        ((3, 4),),
    ),
    Case(
        "embedding",
        lambda g: Embedding(10, 4, padding_idx=2, generator=g),
        "Embedding",
        (10, 4),
        {"padding_idx": 2},
        (("ids", 10, (3, 5)),),
        gradcheck=False,
    ),
    Case("embedding_nopad", lambda g: Embedding(6, 3, generator=g), "Embedding", (6, 3), shapes=(("ids", 6, (2, 4)),)),
    Case("relu", lambda g: ReLU(), "ReLU"),
    Case("leaky_relu", lambda g: LeakyReLU(0.2), "LeakyReLU", (0.2,)),
    Case("elu", lambda g: ELU(0.5), "ELU", (0.5,)),
    Case("gelu", lambda g: GELU(), "GELU"),
    Case("gelu_tanh", lambda g: GELU("tanh"), "GELU", ("tanh",)),
    Case("silu", lambda g: SiLU(), "SiLU"),
    Case("sigmoid", lambda g: Sigmoid(), "Sigmoid"),
    Case("tanh", lambda g: Tanh(), "Tanh"),
    Case("softplus", lambda g: Softplus(beta=2.0, threshold=1.0), "Softplus", (), {"beta": 2.0, "threshold": 1.0}),
    Case("softmax", lambda g: Softmax(1), "Softmax", (1,), shapes=((2, 4, 3),)),
    Case("log_softmax", lambda g: LogSoftmax(-1), "LogSoftmax", (-1,), shapes=((2, 4, 3),)),
    Case("flatten", lambda g: Flatten(), "Flatten", shapes=((2, 3, 2, 2),)),
    Case("flatten_0_1", lambda g: Flatten(0, 1), "Flatten", (0, 1), shapes=((2, 3, 2),)),
    Case("unflatten", lambda g: Unflatten(1, (2, -1)), "Unflatten", (1, (2, -1)), shapes=((2, 6),)),
    Case("identity", lambda g: Identity(3, bias=True), "Identity", (3,), {"bias": True}),
    Case("dropout_eval", lambda g: Dropout(0.3, generator=g), "Dropout", (0.3,), train=False),
]
IDS = [c.id for c in CASES]


@pytest.mark.parametrize("case", [c for c in CASES if c.gradcheck], ids=[c.id for c in CASES if c.gradcheck])
def test_gradcheck(case: Case) -> None:
    rng = np.random.default_rng(0)
    module = _prepare(case, case.make(labkit.Generator(1)), rng).double()
    inputs = [
        labkit.tensor(a.astype(np.float64), requires_grad=True) if a.dtype.kind == "f" else labkit.tensor(a)
        for a in _inputs(case, rng)
    ]
    params = [p for p in module.parameters() if p.requires_grad]
    if not any(t.requires_grad for t in inputs) and not params:
        pytest.fail(f"{case.id}: nothing to check")
    n = len(inputs)
    # parameters are passed as extra gradcheck inputs: gradcheck perturbs their .data in place
    assert gradcheck(lambda *args: module(*args[:n]), [*inputs, *params], name=case.id)


def _to_torch(torch: Any, a: np.ndarray) -> Any:
    return torch.from_numpy(np.array(a))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(case: Case) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    module = _prepare(case, case.make(labkit.Generator(2)), rng)
    tmodule = getattr(torch.nn, case.torch_name)(*case.torch_args, **case.torch_kwargs)
    tmodule.load_state_dict({k: _to_torch(torch, v.numpy()) for k, v in module.state_dict().items()})  # strict
    tmodule.train(case.train)
    arrays = _inputs(case, rng)
    xs = [labkit.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    txs = [_to_torch(torch, a).requires_grad_(a.dtype.kind == "f") for a in arrays]
    y, ty = module(*xs), tmodule(*txs)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **TOL)
    cotangent = rng.standard_normal(y.shape).astype(np.float32)
    (y * labkit.tensor(cotangent)).sum().backward()
    (ty * _to_torch(torch, cotangent)).sum().backward()
    for x, tx in zip(xs, txs):
        if x.requires_grad:
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **TOL)
    tparams = dict(tmodule.named_parameters())
    assert sorted(tparams) == sorted(name for name, _ in module.named_parameters())
    for name, p in module.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), err_msg=name, **TOL)
    for name, b in module.named_buffers():  # running statistics after the step
        np.testing.assert_allclose(b.numpy(), dict(tmodule.named_buffers())[name].numpy(), err_msg=name, **TOL)


@pytest.mark.parametrize(
    "make, torch_make",
    [
        (lambda: Linear(3, 4), lambda nn: nn.Linear(3, 4)),
        (
            lambda: Conv2d(2, 4, 3, padding="same", bias=False),
            lambda nn: nn.Conv2d(2, 4, 3, padding="same", bias=False),
        ),
        (
            lambda: Conv1d(2, 4, 3, dilation=2, padding_mode="reflect"),
            lambda nn: nn.Conv1d(2, 4, 3, dilation=2, padding_mode="reflect"),
        ),
        (lambda: MaxPool2d(3, 1, 1), lambda nn: nn.MaxPool2d(3, 1, 1)),
        (lambda: AvgPool2d((2, 3)), lambda nn: nn.AvgPool2d((2, 3))),
        (lambda: AdaptiveAvgPool2d(1), lambda nn: nn.AdaptiveAvgPool2d(1)),
        (lambda: BatchNorm1d(4, momentum=None), lambda nn: nn.BatchNorm1d(4, momentum=None)),
        (lambda: LayerNorm([2, 3], eps=1e-6), lambda nn: nn.LayerNorm([2, 3], eps=1e-6)),
        (
            lambda: Embedding(5, 3, padding_idx=-1, max_norm=1.0),
            lambda nn: nn.Embedding(5, 3, padding_idx=-1, max_norm=1.0),
        ),
        (lambda: Dropout(0.2), lambda nn: nn.Dropout(0.2)),
        (lambda: GELU("tanh"), lambda nn: nn.GELU("tanh")),
        (lambda: LeakyReLU(0.1, inplace=True), lambda nn: nn.LeakyReLU(0.1, inplace=True)),
        (lambda: Softmax(dim=0), lambda nn: nn.Softmax(dim=0)),
        (lambda: Unflatten(-1, (2, 2)), lambda nn: nn.Unflatten(-1, (2, 2))),
        (lambda: Bilinear(2, 3, 4, bias=False), lambda nn: nn.Bilinear(2, 3, 4, bias=False)),
    ],
)
def test_repr_matches_torch(make: Callable[[], Module], torch_make: Callable[[Any], Any]) -> None:
    torch = pytest.importorskip("torch")
    assert repr(make()) == repr(torch_make(torch.nn))


# ---- initialisation ------------------------------------------------------------------------------


def test_init_is_reproducible_and_within_pytorch_bounds() -> None:
    a, b = Linear(50, 40, generator=labkit.Generator(7)), Linear(50, 40, generator=labkit.Generator(7))
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    assert not np.array_equal(a.weight.numpy(), Linear(50, 40, generator=labkit.Generator(8)).weight.numpy())
    bound = 1 / math.sqrt(50)
    for p in (a.weight, a.bias):
        w = p.numpy()
        assert w.dtype == np.float32 and np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound  # uniform over the whole range, not a narrower one
    conv = Conv2d(4, 6, 3, groups=2, generator=labkit.Generator(0))
    fan_in = 2 * 9
    assert conv.weight.shape == (6, 2, 3, 3)
    assert np.abs(conv.weight.numpy()).max() <= 1 / math.sqrt(fan_in)
    assert np.abs(conv.bias.numpy()).max() <= 1 / math.sqrt(fan_in)
    bil = Bilinear(9, 2, 3, generator=labkit.Generator(0))
    assert np.abs(bil.weight.numpy()).max() <= 1 / 3


def test_embedding_init_and_padding_gradient() -> None:
    emb = Embedding(2000, 8, padding_idx=3, generator=labkit.Generator(0))
    w = emb.weight.numpy()
    assert np.all(w[3] == 0)
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.mean()) < 0.03 and abs(rest.std() - 1) < 0.03  # N(0, 1)
    out = emb(np.array([[3, 5], [5, 0]]))
    assert out.shape == (2, 2, 8)
    out.sum().backward()
    g = emb.weight.grad.numpy()
    assert np.all(g[3] == 0) and np.all(g[5] == 2) and np.all(g[0] == 1)


def test_embedding_from_pretrained() -> None:
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    emb = Embedding.from_pretrained(labkit.tensor(table))
    assert not emb.weight.requires_grad and emb.num_embeddings == 4 and emb.embedding_dim == 3
    np.testing.assert_array_equal(emb(labkit.tensor([2, 0])).numpy(), table[[2, 0]])
    trainable = Embedding.from_pretrained(table, freeze=False, padding_idx=1)
    assert trainable.weight.requires_grad and np.all(trainable.weight.numpy()[1] == table[1])  # not zeroed
    with pytest.raises(ValueError, match="from_pretrained: expected a 2-d"):
        Embedding.from_pretrained(np.zeros(3, np.float32))


def test_embedding_max_norm_renormalises_like_torch() -> None:
    torch = pytest.importorskip("torch")
    emb = Embedding(6, 4, max_norm=1.5, generator=labkit.Generator(0))
    temb = torch.nn.Embedding(6, 4, max_norm=1.5)
    temb.load_state_dict({"weight": _to_torch(torch, emb.weight.numpy())})
    ids = np.array([[0, 2], [2, 5]])
    y, ty = emb(labkit.tensor(ids)), temb(_to_torch(torch, ids))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **TOL)
    np.testing.assert_allclose(emb.weight.numpy(), temb.weight.detach().numpy(), **TOL)  # rows 0, 2, 5 scaled
    norms = np.linalg.norm(emb.weight.numpy(), axis=1)
    assert np.all(norms[[0, 2, 5]] <= 1.5 + 1e-5) and np.any(norms[[1, 3, 4]] > 1.5)


def test_dtype_and_double() -> None:
    layer = Linear(3, 2, dtype="float64")
    assert layer.weight.dtype == np.float64
    bn = BatchNorm1d(3).double()
    assert bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    with pytest.raises(TypeError, match="Conv1d: expected a float dtype"):
        Conv1d(1, 1, 1, dtype="int32")


# ---- running statistics -----------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_running_stats_match_torch_over_steps(momentum: float | None) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    bn, tbn = BatchNorm2d(3, momentum=momentum), torch.nn.BatchNorm2d(3, momentum=momentum)
    for _ in range(4):
        x = (rng.standard_normal((4, 3, 2, 3)) * 2 + 1).astype(np.float32)
        bn(labkit.tensor(x))
        tbn(torch.from_numpy(x))
    assert int(bn.num_batches_tracked.item()) == 4
    np.testing.assert_allclose(bn.running_mean.numpy(), tbn.running_mean.numpy(), **TOL)
    np.testing.assert_allclose(bn.running_var.numpy(), tbn.running_var.numpy(), **TOL)
    bn.eval()
    tbn.eval()
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(bn(labkit.tensor(x)).numpy(), tbn(torch.from_numpy(x)).detach().numpy(), **TOL)
    assert int(bn.num_batches_tracked.item()) == 4  # eval does not count


def test_batchnorm_cumulative_average_and_reset() -> None:
    bn = BatchNorm1d(2, momentum=None)
    batches = [np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[4.0, 5.0], [6.0, 9.0]])]
    for b in batches:
        bn(labkit.tensor(b.astype(np.float32)))
    means = np.mean([b.mean(axis=0) for b in batches], axis=0)  # plain average of the batch means
    np.testing.assert_allclose(bn.running_mean.numpy(), means, rtol=1e-6)
    bn.reset_running_stats()
    assert bn.running_mean.numpy().tolist() == [0, 0] and bn.running_var.numpy().tolist() == [1, 1]
    assert int(bn.num_batches_tracked.item()) == 0


# ---- dropout ---------------------------------------------------------------------------------------


def test_dropout_reproducible_scaled_and_identity_in_eval() -> None:
    x = labkit.ones(200, 50)
    a = Dropout(0.25, generator=labkit.Generator(5))(x).numpy()
    b = Dropout(0.25, generator=labkit.Generator(5))(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a).tolist()) == {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.02
    layer = Dropout(0.25).eval()
    assert layer(x) is x
    assert np.all(Dropout(1.0)(x).numpy() == 0)


def test_dropout_default_generator_follows_manual_seed() -> None:
    x = labkit.ones(10, 10)
    layer = Dropout(0.5)
    labkit.manual_seed(11)
    a = layer(x).numpy()
    labkit.manual_seed(11)
    np.testing.assert_array_equal(a, layer(x).numpy())


def test_dropout_gradient_uses_the_mask() -> None:
    x = labkit.tensor(np.ones((4, 6), np.float32), requires_grad=True)
    y = Dropout(0.5, generator=labkit.Generator(0))(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())


# ---- misc behaviour -------------------------------------------------------------------------------


def test_softmax_implicit_dim_warns_like_torch() -> None:
    x = labkit.tensor(np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32))
    with pytest.warns(UserWarning, match="implicit dimension"):
        y = Softmax()(x)
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1, rtol=1e-6)  # dim 1 for 2-d input


def test_layers_move_with_module_and_work_in_sequential() -> None:
    from labkit.nn.containers import Sequential

    model = Sequential(
        Conv2d(1, 2, 3, padding=1, generator=labkit.Generator(0)),
        BatchNorm2d(2),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Dropout(0.1, generator=labkit.Generator(1)),
        Linear(8, 3, generator=labkit.Generator(2)),
    )
    y = model(labkit.tensor(np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)))
    assert y.shape == (2, 3)
    assert [n for n, _ in model.named_parameters()] == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "6.weight",
        "6.bias",
    ]


# ---- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Linear(-1, 3), ValueError, r"Linear: expected in_features >= 0, got -1"),
        (lambda: Linear(2.5, 3), TypeError, r"Linear: expected an int for in_features"),
        (lambda: Conv2d(3, 4, 3, groups=2), ValueError, r"Conv2d: expected groups to divide"),
        (lambda: Conv2d(3, 4, 0), ValueError, r"Conv2d: expected kernel_size >= 1"),
        (lambda: Conv1d(3, 4, 3, stride=2, padding="same"), ValueError, r"padding='same' expects stride 1"),
        (lambda: Conv1d(3, 4, 3, padding="full"), ValueError, r"Conv1d: expected padding"),
        (lambda: Conv2d(3, 4, 3, padding_mode="mirror"), ValueError, r"Conv2d: expected padding_mode"),
        (lambda: Conv2d(3, 4, (3, 3, 3)), ValueError, r"Conv2d: expected an int or 2 ints for kernel_size"),
        (lambda: MaxPool2d(2, ceil_mode=True), ValueError, r"MaxPool2d: ceil_mode=True is not supported"),
        (lambda: AvgPool2d(0), ValueError, r"AvgPool2d: expected kernel_size >= 1"),
        (lambda: AdaptiveAvgPool2d((0, 2)), ValueError, r"AdaptiveAvgPool2d: expected positive output sizes"),
        (lambda: BatchNorm1d(0), ValueError, r"BatchNorm1d: expected num_features >= 1"),
        (lambda: BatchNorm2d(3, momentum=2.0), ValueError, r"BatchNorm2d: expected momentum"),
        (lambda: LayerNorm(()), ValueError, r"LayerNorm: expected a non-empty normalized_shape"),
        (lambda: Dropout(1.5), ValueError, r"Dropout: expected p to be a probability in \[0, 1\], got 1.5"),
        (lambda: Embedding(5, 2, padding_idx=5), ValueError, r"Embedding: expected padding_idx in \[-5, 5\)"),
        (lambda: Embedding(5, 2, sparse=True), ValueError, r"Embedding: sparse=True is not supported"),
        (lambda: GELU("fast"), ValueError, r"GELU: expected approximate to be 'none' or 'tanh'"),
        (lambda: Unflatten(1, (2, -1, -1)), ValueError, r"Unflatten: expected a non-empty unflattened_size"),
    ],
)
def test_constructor_errors(make: Callable[[], Module], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "module, x, match",
    [
        (Linear(4, 2), np.zeros((2, 3)), r"Linear\(in_features=4\): expected input \(\.\.\., 4\), got \(2, 3\)"),
        (
            Conv2d(3, 4, 3),
            np.zeros((2, 2, 5, 5)),
            r"Conv2d\(3, 4\): expected input \(N, 3, H, W\) or \(3, H, W\), got \(2, 2, 5, 5\)",
        ),
        (Conv1d(3, 4, 3), np.zeros((2, 3)), r"Conv1d\(3, 4\): expected input \(N, 3, L\) or \(3, L\), got \(2, 3\)"),
        (MaxPool2d(2), np.zeros((4, 4)), r"MaxPool2d\(kernel_size=2.*\): expected input \(N, C, H, W\) or \(C, H, W\)"),
        (BatchNorm1d(3), np.zeros((2, 3, 4, 4)), r"BatchNorm1d\(3\): expected input \(N, 3\) or \(N, 3, L\), got"),
        (
            BatchNorm2d(3),
            np.zeros((2, 4, 2, 2)),
            r"BatchNorm2d\(3\): expected input \(N, 3, H, W\), got \(2, 4, 2, 2\)",
        ),
        (LayerNorm(4), np.zeros((2, 5)), r"LayerNorm\(\(4,\)\): expected input \(\.\.\., 4\), got \(2, 5\)"),
        (Embedding(5, 2), np.zeros((2, 3)), r"Embedding\(5, 2\): expected integer ids"),
        (Embedding(5, 2), np.array([1, 7]), r"Embedding\(5, 2\): embedding: index 7 is out of range"),
        (Unflatten(1, (2, 2)), np.zeros((2, 6)), r"Unflatten\(.*\): cannot split dim 1 of size 6"),
        (Flatten(2, 3), np.zeros((2, 3)), r"Flatten\(start_dim=2, end_dim=3\): expected an input that has dims"),
        (Bilinear(2, 3, 4), np.zeros((5, 2)), r"Bilinear\(2, 3, 4\): expected input x2 \(5, 3\)"),
    ],
)
def test_input_errors_name_the_layer(module: Module, x: np.ndarray, match: str) -> None:
    data = labkit.tensor(x.astype(np.float32) if x.dtype.kind == "f" else x)
    args = (data, labkit.tensor(np.zeros((5, 2), np.float32))) if isinstance(module, Bilinear) else (data,)
    error = TypeError if isinstance(module, Embedding) and x.dtype.kind == "f" else ValueError
    with pytest.raises(error, match=match):
        module(*args)


def test_layers_built_on_a_device_match_cpu(device: str) -> None:
    from labkit.nn.containers import Sequential

    def build(dev: str) -> Module:
        return Sequential(
            Conv2d(2, 3, 3, padding=1, padding_mode="reflect", device=dev, generator=labkit.Generator(0)),
            BatchNorm2d(3, device=dev),
            GELU(),
            AvgPool2d(2),
            AdaptiveAvgPool2d(1),
            Flatten(),
            LayerNorm(3, device=dev),
            Linear(3, 4, device=dev, generator=labkit.Generator(1)),
        )

    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    outputs = []
    for dev in ("cpu", device):
        model = build(dev)
        xt = labkit.tensor(x, device=dev, requires_grad=True)
        y = model(xt)
        y.sum().backward()
        assert str(y.device).startswith(dev) and str(model[7].weight.grad.device).startswith(dev)
        outputs.append((y.numpy(), xt.grad.numpy(), model[1].running_var.numpy()))
    for a, b in zip(*outputs):
        np.testing.assert_allclose(a, b, **TOL)
    emb = Embedding(5, 3, max_norm=1.0, device=device, generator=labkit.Generator(0))
    ids = labkit.tensor(np.array([1, 3]), device=device)
    assert emb(ids).shape == (2, 3) and np.all(np.linalg.norm(emb.weight.numpy()[[1, 3]], axis=1) <= 1 + 1e-5)
