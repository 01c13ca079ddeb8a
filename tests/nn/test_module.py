"""Module, Parameter and the containers: registration, traversal, state, display."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn


class Affine(nn.Module):
    """A stand-in for Linear (which another module provides) so these tests stand alone."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = nn.Parameter(rng.standard_normal((n_out, n_in)).astype(np.float32))
        self.bias = nn.Parameter(np.zeros(n_out, np.float32)) if bias else None
        if not bias:
            self.register_parameter("bias", None)

    def forward(self, x: labkit.Tensor) -> labkit.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, bias={self.bias is not None}"


class Act(nn.Module):
    def forward(self, x: labkit.Tensor) -> labkit.Tensor:
        return F.tanh(x)


class Norm(nn.Module):
    """Has a float and an int persistent buffer and a non-persistent one."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(np.ones(n, np.float32))
        self.register_buffer("running_mean", labkit.zeros(n))
        self.register_buffer("steps", labkit.tensor(0))
        self.register_buffer("cache", labkit.zeros(n), persistent=False)

    def forward(self, x: labkit.Tensor) -> labkit.Tensor:
        return x * self.scale


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(Affine(3, 4, seed=1), Act(), Norm(4))
        self.layers = nn.ModuleList([Affine(4, 4, seed=2), Affine(4, 2, seed=3)])

    def forward(self, x: labkit.Tensor) -> labkit.Tensor:
        x = self.encoder(x)
        for layer in self.layers:
            x = layer(x)
        return x


NET_PARAMS = [
    "encoder.0.weight", "encoder.0.bias", "encoder.2.scale",
    "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
]  # fmt: skip


# ---- Parameter -----------------------------------------------------------------------------


def test_parameter_shares_data_requires_grad_and_ops_return_plain_tensors() -> None:
    array = np.ones((2, 3), np.float32)
    p = nn.Parameter(array)
    assert p.data is array and p.requires_grad and p.is_leaf and isinstance(p, labkit.Tensor)
    t = labkit.randn(2, 3)
    assert nn.Parameter(t).data is t.data
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    y = p * 2
    assert type(y) is labkit.Tensor and type(p.detach()) is labkit.Tensor
    F.sum(y).backward()
    np.testing.assert_allclose(p.grad.numpy(), np.full((2, 3), 2.0))
    assert repr(p).startswith("Parameter containing:\ntensor(")


def test_parameter_refuses_integer_data_that_requires_grad() -> None:
    with pytest.raises(TypeError, match=r"Parameter: .*expected a float dtype, got int64"):
        nn.Parameter(np.arange(3))
    assert nn.Parameter(np.arange(3), requires_grad=False).dtype == np.int64


# ---- registration ----------------------------------------------------------------------------


def test_setattr_registers_in_order_and_stores_plain_attributes() -> None:
    m = Norm(3)
    assert list(m._parameters) == ["scale"] and list(m._buffers) == ["running_mean", "steps", "cache"]
    assert m.__dict__["scale"] is m._parameters["scale"]  # forward reads a plain attribute
    m.scale = nn.Parameter(np.zeros(3, np.float32))
    assert m.scale is m._parameters["scale"] and float(m.scale.data.sum()) == 0.0
    m.running_mean = labkit.ones(3)  # assigning a Tensor to a buffer name updates the buffer
    assert m._buffers["running_mean"] is m.running_mean
    m.extra = 5  # plain attributes are not registered anywhere
    assert all("extra" not in r for r in (m._parameters, m._buffers, m._modules))
    del m.scale
    assert "scale" not in m._parameters and not hasattr(m, "scale")


def test_reassigning_a_registered_name_keeps_its_position() -> None:
    seq = nn.Sequential(Act(), Act(), Act())
    replacement = Affine(2, 2)
    seq[1] = replacement
    assert list(seq._modules) == ["0", "1", "2"] and seq[1] is replacement


def test_registration_errors() -> None:
    m = Affine(2, 2)
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'weight': expected Parameter or None"):
        m.weight = labkit.ones(2, 2)
    with pytest.raises(TypeError, match="expected Tensor or None, got list"):
        m.register_buffer("buf", [1, 2])
    with pytest.raises(ValueError, match=r"without '\.'"):
        m.register_buffer("a.b", labkit.ones(1))
    with pytest.raises(ValueError, match=r"'forward'.*already has this name"):
        m.add_module("forward", Act())
    with pytest.raises(TypeError, match="expected Parameter or None, got Tensor"):
        m.register_parameter("w2", labkit.ones(1))

    class Forgot(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(np.ones(1, np.float32))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call in Forgot"):
        Forgot()


# ---- traversal -------------------------------------------------------------------------------


def test_named_parameters_buffers_modules_use_dotted_names() -> None:
    net = Net()
    assert [n for n, _ in net.named_parameters()] == NET_PARAMS
    assert [n for n, _ in net.named_buffers()] == ["encoder.2.running_mean", "encoder.2.steps", "encoder.2.cache"]
    assert [n for n, _ in net.named_modules()] == [
        "", "encoder", "encoder.0", "encoder.1", "encoder.2", "layers", "layers.0", "layers.1",
    ]  # fmt: skip
    assert [n for n, _ in net.named_children()] == ["encoder", "layers"]
    assert list(net.children()) == [net.encoder, net.layers]
    assert len(list(net.parameters())) == 7 and list(net.parameters(recurse=False)) == []
    assert [n for n, _ in net.layers.named_parameters(prefix="layers")][:1] == ["layers.0.weight"]
    assert net.get_submodule("layers.1") is net.layers[1]
    with pytest.raises(ValueError, match="no submodule '7'"):
        net.get_submodule("layers.7")


def test_shared_parameters_and_modules_are_listed_once() -> None:
    shared = Affine(2, 2)
    seq = nn.Sequential(shared, Act(), shared)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    tied = nn.ModuleList([Affine(2, 2), Affine(2, 2)])
    tied[1].weight = tied[0].weight
    assert [n for n, _ in tied.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(tied.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]  # each name, as PyTorch
    assert tied.num_parameters() == 4 + 2 + 2


def test_named_parameters_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    tnet = torch.nn.Module()
    tnet.encoder = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.LayerNorm(4))
    tnet.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)])
    expected = [n.replace(".2.weight", ".2.scale") for n, _ in tnet.named_parameters() if not n.endswith("2.bias")]
    assert [n for n, _ in Net().named_parameters()] == expected


# ---- modes and bulk changes ------------------------------------------------------------------------


def test_train_eval_apply_and_requires_grad() -> None:
    net = Net()
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(TypeError, match="expected mode to be a bool, got str"):
        net.train("no")
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.index("Affine") < seen.index("Sequential")
    net.requires_grad_(False)
    assert net.num_parameters(trainable_only=True) == 0 and net.num_parameters() == 16 + 4 + 20 + 10


def test_zero_grad() -> None:
    m = Affine(3, 2)
    F.sum(m(labkit.ones(4, 3))).backward()
    grad = m.weight.grad
    m.zero_grad(set_to_none=False)
    assert m.weight.grad is grad and not grad.data.any()
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_to_dtype_replaces_data_of_the_same_parameter_objects() -> None:
    net = Net()
    params = list(net.parameters())
    F.sum(net(labkit.ones(2, 3))).backward()
    assert net.double() is net
    assert [p is q for p, q in zip(params, net.parameters(), strict=True)] == [True] * 7
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert net.encoder[2].running_mean.dtype == np.float64 and net.encoder[2].steps.dtype == np.int64
    assert net(labkit.ones(2, 3, dtype="float64")).dtype == np.float64
    with pytest.raises(TypeError, match="expected a float dtype, got int32"):
        net.to(labkit.int32)


def test_to_device_moves_parameters_and_buffers(device: str) -> None:
    net = Net()
    expected = net(labkit.ones(2, 3)).numpy()
    weight = net.layers[0].weight
    net.to(device)
    assert net.layers[0].weight is weight and weight.device == device
    assert all(b.device == device for b in net.buffers())
    out = net(labkit.ones(2, 3, device=device))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    net.cpu()
    assert weight.device == "cpu"


# ---- state -----------------------------------------------------------------------------------


def test_state_dict_is_detached_shares_memory_and_skips_non_persistent_buffers() -> None:
    net = Net()
    state = net.state_dict()
    assert list(state) == [*NET_PARAMS[:3], "encoder.2.running_mean", "encoder.2.steps", *NET_PARAMS[3:]]
    value = state["layers.0.bias"]
    assert type(value) is labkit.Tensor and not value.requires_grad
    net.layers[0].bias.data[...] = 7.0
    assert float(value.data[0]) == 7.0  # same memory
    assert net.state_dict(keep_vars=True)["layers.0.bias"] is net.layers[0].bias


def test_load_state_dict_copies_into_existing_arrays() -> None:
    src, dst = Net(), Net()
    for p in src.parameters():
        p.data[...] = np.random.default_rng(5).standard_normal(p.shape)
    src.encoder[2].steps.data[...] = 9
    arrays = [p.data for p in dst.parameters()]
    result = dst.load_state_dict(src.state_dict())
    assert result == ([], []) and result.missing_keys == []
    assert all(p.data is a for p, a in zip(dst.parameters(), arrays, strict=True))
    x = labkit.randn(5, 3)
    np.testing.assert_array_equal(dst(x).numpy(), src(x).numpy())
    assert int(dst.encoder[2].steps.item()) == 9
    # numpy arrays and other dtypes are accepted and cast to the model's dtype
    dst.load_state_dict({k: v.numpy().astype(np.float64) for k, v in src.state_dict().items()})
    assert dst.layers[0].weight.dtype == np.float32


def test_load_state_dict_reports_every_problem_and_changes_nothing() -> None:
    model = nn.Sequential(OrderedDict(fc=Affine(4, 4)))
    before = model.fc.weight.numpy().copy()
    bad = {"fc.weight": np.zeros((3, 4), np.float32), "fc.b": np.zeros(4, np.float32)}
    message = (
        "load_state_dict: missing keys: ['fc.bias']; unexpected keys: ['fc.b']; "
        "shape mismatch for fc.weight: checkpoint (3, 4), model (4, 4)"
    )
    with pytest.raises(ValueError) as info:
        model.load_state_dict(bad)
    assert str(info.value) == message
    with pytest.raises(ValueError, match=r"^load_state_dict: shape mismatch for fc.weight"):
        model.load_state_dict(bad, strict=False)
    np.testing.assert_array_equal(model.fc.weight.numpy(), before)
    missing, unexpected = model.load_state_dict({"fc.weight": np.ones((4, 4)), "extra": np.ones(1)}, strict=False)
    assert (missing, unexpected) == (["fc.bias"], ["extra"]) and float(model.fc.weight.data.sum()) == 16.0
    with pytest.raises(TypeError, match=r"expected a Tensor or array for 'fc.weight', got list"):
        model.load_state_dict({"fc.weight": [[0.0] * 4] * 4, "fc.bias": np.zeros(4)})


# ---- hooks -------------------------------------------------------------------------------------


def test_forward_hooks_can_replace_inputs_and_outputs_and_be_removed() -> None:
    act = Act()
    calls = []
    pre = act.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = act.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    out = act(labkit.ones(2))
    np.testing.assert_allclose(out.numpy(), [1.0, 1.0])
    assert calls == [(2,)]
    pre.remove()
    post.remove()
    np.testing.assert_allclose(act(labkit.zeros(2)).numpy(), [0.0, 0.0])
    assert calls == [(2,)]


# ---- display ----------------------------------------------------------------------------------


def test_repr_is_a_tree_like_pytorch() -> None:
    assert repr(Net()) == "\n".join(
        [
            "Net(",
            "  (encoder): Sequential(",
            "    (0): Affine(in_features=3, out_features=4, bias=True)",
            "    (1): Act()",
            "    (2): Norm()",
            "  )",
            "  (layers): ModuleList(",
            "    (0): Affine(in_features=4, out_features=4, bias=True)",
            "    (1): Affine(in_features=4, out_features=2, bias=True)",
            "  )",
            ")",
        ]
    )


def test_num_parameters_and_summary_table() -> None:
    net = Net()
    net.layers[1].requires_grad_(False)
    assert net.num_parameters() == 50 and net.num_parameters(trainable_only=True) == 40
    lines = net.summary().splitlines()
    assert lines[0].split() == ["name", "type", "params"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:-3]}
    assert rows["(root)"] == ["Net", "50"] and rows["encoder"] == ["Sequential", "20"]
    assert rows["encoder.2"] == ["Norm", "4"] and rows["layers.1"] == ["Affine", "10"]
    assert lines[-3:] == ["Total params: 50", "Trainable params: 40", "Non-trainable params: 10"]


# ---- containers ----------------------------------------------------------------------------------


def test_sequential_runs_in_order_and_behaves_like_a_list() -> None:
    seq = nn.Sequential(Affine(3, 4), Act(), Affine(4, 2))
    x = labkit.randn(5, 3)
    manual = seq[2](seq[1](seq[0](x)))
    np.testing.assert_allclose(seq(x).numpy(), manual.numpy())
    assert len(seq) == 3 and seq[-1] is seq[2] and list(seq) == [seq[0], seq[1], seq[2]]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [seq[0], seq[1]]
    seq.append(Act())
    assert [n for n, _ in seq.named_parameters()][-1] == "2.bias" and len(seq) == 4
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and isinstance(seq[2], Act)
    named = nn.Sequential(OrderedDict(fc=Affine(2, 2), act=Act()))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"] and named.fc is named[0]
    with pytest.raises(IndexError, match="index 5 is out of range for length 2"):
        named[5]
    with pytest.raises(TypeError, match="Sequential: expected a Module, got int"):
        nn.Sequential(Act(), 3)


def test_module_list_api() -> None:
    layers = nn.ModuleList([Act()])
    a, b, c = Affine(2, 2), Affine(2, 2), Affine(2, 2)
    layers.append(a)
    layers.extend([b])
    layers.insert(0, c)
    assert list(layers) == [c, layers[1], a, b] and len(layers) == 4 and layers[-1] is b
    assert [n for n, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 3
    assert layers.pop(0) is c and list(layers._modules) == ["0", "1", "2"]
    layers += [Act()]
    assert len(layers) == 4 and len(layers + nn.ModuleList([Act()])) == 5
    with pytest.raises(TypeError, match=r"ModuleList.append: expected a Module, got Tensor"):
        layers.append(labkit.ones(1))


def test_module_dict_api() -> None:
    heads = nn.ModuleDict({"cls": Affine(2, 3), "reg": Affine(2, 1)})
    assert list(heads) == ["cls", "reg"] and len(heads) == 2 and "cls" in heads
    assert heads.keys() == ["cls", "reg"] and heads["reg"] is heads.values()[1]
    assert [n for n, _ in heads.named_parameters()] == ["cls.weight", "cls.bias", "reg.weight", "reg.bias"]
    heads["aux"] = Act()
    heads.update([("cls", Affine(2, 5))])
    assert [k for k, _ in heads.items()] == ["cls", "reg", "aux"] and heads["cls"].weight.shape == (5, 2)
    assert isinstance(heads.pop("aux"), Act) and "aux" not in heads
    with pytest.raises(KeyError, match=r"no key 'nope'; keys: \['cls', 'reg'\]"):
        heads["nope"]
    with pytest.raises(ValueError, match=r"'train'.*already has this name"):
        heads["train"] = Act()
    heads.clear()
    assert len(heads) == 0 and list(heads.parameters()) == []


# ---- end to end --------------------------------------------------------------------------------


def test_a_small_network_trains() -> None:
    net = nn.Sequential(Affine(2, 16, seed=1), Act(), Affine(16, 1, seed=2))
    x = labkit.tensor(np.random.default_rng(0).uniform(-1, 1, (64, 2)).astype(np.float32))
    y = F.sum(x * x, axis=1, keepdims=True)
    losses = []
    for _ in range(200):
        net.zero_grad()
        loss = F.mse_loss(net(x), y)
        loss.backward()
        for p in net.parameters():
            p.data -= 0.05 * p.grad.data
        losses.append(float(loss.item()))
    assert losses[-1] < 0.3 * losses[0]
