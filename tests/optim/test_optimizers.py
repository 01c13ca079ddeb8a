"""Optimizers: closed-form steps, parameter groups, state_dict round trips, errors, torch parity."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import numpy as np
import pytest

import labkit
from labkit import optim

# a fixed convex quadratic: loss = 0.5 * sum(x * (A @ x)) per column, grad = A @ x
_rng = np.random.default_rng(0)
_M = _rng.standard_normal((4, 4))
A = (_M @ _M.T / 4 + np.eye(4)).astype(np.float32)


def quad_grad(x: np.ndarray, sign: float = 1.0) -> np.ndarray:
    """Gradient of ``sign * 0.5 * x^T A x`` for a (4,) or (4, k) array."""
    return (sign * (A.astype(x.dtype) @ x.reshape(4, -1))).reshape(x.shape)


def make_params(dtype: Any = np.float32, device: str = "cpu") -> list[labkit.Tensor]:
    rng = np.random.default_rng(1)
    return [
        labkit.tensor(rng.standard_normal((4, 3)).astype(dtype), requires_grad=True, device=device),
        labkit.tensor(rng.standard_normal(4).astype(dtype), requires_grad=True, device=device),
    ]


def feed_grads(params: list[labkit.Tensor], sign: float = 1.0) -> None:
    for p in params:
        p.grad = labkit.tensor(quad_grad(p.numpy(), sign), device=str(p.device))


# (optimizer, kwargs, gradient sign): maximize runs ascend a concave objective
CONFIGS = [
    ("SGD", dict(lr=0.1), 1.0),
    ("SGD", dict(lr=0.05, momentum=0.9), 1.0),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1), 1.0),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05), 1.0),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True), -1.0),
    ("Adam", dict(lr=0.05), 1.0),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1), 1.0),
    ("Adam", dict(lr=0.05, amsgrad=True, eps=1e-6), 1.0),
    ("Adam", dict(lr=0.05, maximize=True, weight_decay=0.01), -1.0),
    ("AdamW", dict(lr=0.05), 1.0),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True), 1.0),
    ("RMSprop", dict(lr=0.01), 1.0),
    ("RMSprop", dict(lr=0.01, momentum=0.9, weight_decay=0.1), 1.0),
    ("RMSprop", dict(lr=0.01, centered=True, alpha=0.9), 1.0),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, maximize=True), -1.0),
    ("Adagrad", dict(lr=0.1), 1.0),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6), 1.0),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw, _ in CONFIGS]


def run(name: str, kwargs: dict[str, Any], sign: float, steps: int, params: list[labkit.Tensor] | None = None):
    params = make_params() if params is None else params
    opt = getattr(optim, name)(params, **kwargs)
    for _ in range(steps):
        feed_grads(params, sign)
        opt.step()
    return params, opt


# ---- closed forms --------------------------------------------------------------------


def test_sgd_momentum_three_steps_by_hand():
    # loss = x^2, grad = 2x; buf_1 = g_1, buf_t = 0.9 buf + g; x -= 0.1 buf
    x = labkit.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([x], lr=0.1, momentum=0.9)
    expected = [0.8, 0.46, 0.062]  # bufs 2.0, 3.4, 3.98
    for want in expected:
        opt.zero_grad()
        (x * x).sum().backward()
        opt.step()
        assert x.data[0] == pytest.approx(want, abs=1e-12)
    np.testing.assert_allclose(opt.state[x]["momentum_buffer"], [3.98], atol=1e-12)


def test_sgd_nesterov_and_dampening_by_hand():
    x = labkit.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([x], lr=0.1, momentum=0.5, nesterov=True)
    x.grad = labkit.tensor(np.array([2.0]))
    opt.step()  # buf = 2, d = 2 + 0.5 * 2 = 3
    assert x.data[0] == pytest.approx(0.7)
    y = labkit.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([y], lr=0.1, momentum=0.5, dampening=0.5)
    for _ in range(2):
        y.grad = labkit.tensor(np.array([2.0]))
        opt.step()  # buf = 2, then 0.5 * 2 + 0.5 * 2 = 2
    assert y.data[0] == pytest.approx(1.0 - 0.2 - 0.2)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_first_step_is_lr_times_sign(name):
    x0 = np.array([0.5, -2.0, 3.0, 1e-3])
    x = labkit.tensor(x0.copy(), requires_grad=True)
    opt = getattr(optim, name)([x], lr=0.01, eps=1e-12, weight_decay=0.0)
    x.grad = labkit.tensor(np.array([3.0, -1e-4, 250.0, -7.0]))
    opt.step()
    np.testing.assert_allclose(x.data - x0, -0.01 * np.array([1.0, -1.0, 1.0, -1.0]), rtol=1e-8)


def test_adamw_decays_weights_before_the_adam_step():
    x = labkit.tensor(np.array([2.0]), requires_grad=True)
    opt = optim.AdamW([x], lr=0.1, eps=0.0, weight_decay=0.5)
    x.grad = labkit.tensor(np.array([-4.0]))
    opt.step()
    assert x.data[0] == pytest.approx(2.0 * (1 - 0.1 * 0.5) + 0.1)


def test_rmsprop_and_adagrad_first_step_by_hand():
    x = labkit.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.RMSprop([x], lr=0.01, alpha=0.9, eps=0.0)
    x.grad = labkit.tensor(np.array([2.0]))
    opt.step()  # v = 0.1 * 4, step = 0.01 * 2 / sqrt(0.4)
    assert x.data[0] == pytest.approx(1.0 - 0.02 / np.sqrt(0.4))
    y = labkit.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.Adagrad([y], lr=0.5, lr_decay=1.0, eps=0.0)
    for g in (2.0, 1.0):
        y.grad = labkit.tensor(np.array([g]))
        opt.step()  # step 1: 0.5 * 2 / 2; step 2: lr 0.25, 0.25 * 1 / sqrt(5)
    assert y.data[0] == pytest.approx(1.0 - 0.5 - 0.25 / np.sqrt(5.0))


def test_closure_is_called_once_and_its_loss_returned():
    x = labkit.tensor(np.array([3.0]), requires_grad=True)
    opt = optim.SGD([x], lr=0.25)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert len(calls) == 1 and float(loss) == pytest.approx(9.0)
    assert x.data[0] == pytest.approx(3.0 - 0.25 * 6.0)


# ---- groups, skipping, zero_grad -----------------------------------------------------


def test_param_groups_use_their_own_hyperparameters():
    a = labkit.tensor(np.ones(3), requires_grad=True)
    b = labkit.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{"params": [a], "lr": 0.1}, {"params": b}], lr=0.01, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert opt.param_groups[0]["momentum"] == 0.9
    a.grad = labkit.tensor(np.ones(3))
    b.grad = labkit.tensor(np.ones(2))
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.99)
    c = labkit.tensor(np.ones(1), requires_grad=True)
    opt.add_param_group({"params": [c], "momentum": 0.0})
    assert opt.param_groups[2]["lr"] == 0.01 and opt.param_groups[2]["momentum"] == 0.0


def test_parameters_without_grad_are_skipped():
    a, b = make_params()
    before = b.numpy().copy()
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = labkit.tensor(np.ones(a.shape, np.float32))
    opt.step()
    np.testing.assert_array_equal(b.data, before)
    assert b not in opt.state and opt.state[a]["step"] == 1


def test_zero_grad_sets_none_or_zeros_in_place():
    a, b = make_params()
    opt = optim.SGD([a, b], lr=0.1)
    feed_grads([a, b])
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    feed_grads([a, b])
    grad_array = a.grad.data
    opt.zero_grad(set_to_none=False)
    assert a.grad.data is grad_array and not grad_array.any() and not b.grad.data.any()


def test_mixed_dtypes_and_shapes_share_no_scratch_wrongly():
    # float32 and float64 parameters of different sizes in one optimizer, one step each way
    p32 = labkit.tensor(np.full((5, 2), 1.0, np.float32), requires_grad=True)
    p64 = labkit.tensor(np.full(3, 1.0), requires_grad=True)
    big = labkit.tensor(np.full(50, 1.0, np.float32), requires_grad=True)
    opt = optim.RMSprop([p32, p64, big], lr=0.05, eps=0.0)
    for p in (p32, p64, big):
        p.grad = labkit.tensor(np.full(p.shape, 2.0, p.dtype))
    opt.step()
    for p in (p32, p64, big):
        assert p.dtype in (np.float32, np.float64)
        np.testing.assert_allclose(p.data, 1.0 - 0.05 * 2.0 / np.sqrt(0.01 * 4.0), rtol=1e-6)  # 0.5


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_steps_allocate_no_parameter_sized_arrays(name):
    kwargs = {"SGD": dict(momentum=0.9, weight_decay=0.1), "RMSprop": dict(centered=True, momentum=0.9)}.get(name, {})
    p = labkit.tensor(np.ones(250_000, np.float32), requires_grad=True)  # 1 MB
    p.grad = labkit.tensor(np.full(250_000, 0.5, np.float32))
    opt = getattr(optim, name)([p], lr=1e-3, **kwargs)
    opt.step()  # state and scratch are made here
    tracemalloc.start()
    try:
        for _ in range(3):
            opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000, f"{name}.step allocated {peak} bytes at peak"


def test_runs_on_device_like_on_cpu(device):
    for name, kwargs, sign in CONFIGS[::3]:
        ref, _ = run(name, kwargs, sign, 5)
        params, _ = run(name, kwargs, sign, 5, params=make_params(device=device))
        for p, r in zip(params, ref, strict=True):
            assert str(p.device).startswith(device)
            np.testing.assert_allclose(p.numpy(), r.numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(ref[0].numpy(), make_params()[0].numpy())


# ---- state_dict ----------------------------------------------------------------------


def json_round_trip(sd: dict[str, Any]) -> dict[str, Any]:
    """Through JSON as a checkpoint would store it: arrays aside as numpy, the rest as text."""
    arrays: list[np.ndarray] = []

    def pack(value: Any) -> Any:
        if isinstance(value, labkit.Tensor):
            arrays.append(value.numpy().copy())
            return {"__array__": len(arrays) - 1}
        if isinstance(value, dict):
            return {k: pack(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [pack(v) for v in value]
        return value

    def unpack(value: Any) -> Any:
        if isinstance(value, dict):
            return arrays[value["__array__"]] if "__array__" in value else {k: unpack(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unpack(v) for v in value]
        return value

    return unpack(json.loads(json.dumps(pack(sd))))


@pytest.mark.parametrize(("name", "kwargs", "sign"), CONFIGS, ids=IDS)
def test_state_dict_round_trip_resumes_the_same_trajectory(name, kwargs, sign):
    straight, _ = run(name, kwargs, sign, 12)
    params, opt = run(name, kwargs, sign, 6)
    sd = json_round_trip(opt.state_dict())
    stateless = name == "SGD" and not kwargs.get("momentum")
    assert sorted(sd["state"]) == ([] if stateless else ["0", "1"]) and sd["param_groups"][0]["params"] == [0, 1]
    resumed = [labkit.tensor(p.numpy().copy(), requires_grad=True) for p in params]
    fresh = getattr(optim, name)(resumed, lr=123.0)  # hyper-parameters come from the state dict
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == kwargs["lr"]
    for _ in range(6):
        feed_grads(resumed, sign)
        fresh.step()
    for p, q in zip(resumed, straight, strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_state_dict_is_a_snapshot_with_tensors_and_indices():
    params, opt = run("Adam", dict(lr=0.1), 1.0, 2)
    sd = opt.state_dict()
    saved = sd["state"][1]["exp_avg"]
    assert isinstance(saved, labkit.Tensor) and saved.shape == (4,)
    before = saved.numpy().copy()
    feed_grads(params)
    opt.step()
    np.testing.assert_array_equal(saved.numpy(), before)
    assert sd["state"][0]["step"] == 2 and sd["param_groups"][0]["betas"] == (0.9, 0.999)


def test_load_state_dict_errors_name_the_mismatch():
    params, opt = run("Adam", dict(lr=0.1), 1.0, 1)
    sd = opt.state_dict()
    two_groups = optim.Adam([{"params": [params[0]]}, {"params": [params[1]]}])
    with pytest.raises(ValueError, match=r"expected 2 parameter groups.*got 1"):
        two_groups.load_state_dict(sd)
    one_param = optim.Adam([params[0]])
    with pytest.raises(ValueError, match=r"parameter group 0 expected 1 parameters.*got 2"):
        one_param.load_state_dict(sd)
    swapped = optim.Adam(params[::-1])
    with pytest.raises(ValueError, match=r"state\[0\]\['exp_avg'\] expected shape \(4,\).*got \(4, 3\)"):
        swapped.load_state_dict(sd)
    bad_key = {"state": {7: {}}, "param_groups": sd["param_groups"]}
    with pytest.raises(ValueError, match="state key expected a parameter index in \\[0, 1\\], got 7"):
        opt.load_state_dict(bad_key)
    with pytest.raises(ValueError, match="keys 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    bad_lr = json_round_trip(sd)
    bad_lr["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr expected a value in"):
        opt.load_state_dict(bad_lr)
    assert opt.param_groups[0]["lr"] == 0.1  # a failed load changes nothing


# ---- argument errors -----------------------------------------------------------------


def test_constructor_errors_name_the_argument():
    a, b = make_params()
    cases = [
        (lambda: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
        (lambda: optim.SGD(a, lr=0.1), TypeError, "iterable of Tensors"),
        (lambda: optim.SGD([a, a], lr=0.1), ValueError, "each parameter once"),
        (lambda: optim.SGD([{"params": [a]}, {"params": [a, b]}], lr=0.1), ValueError, "in two groups"),
        (lambda: optim.SGD([a, np.zeros(3)], lr=0.1), TypeError, "expected Tensors, got ndarray"),
        (lambda: optim.SGD([a * 2], lr=0.1), ValueError, "leaf tensors"),
        (lambda: optim.SGD([a], lr=-0.1), ValueError, r"SGD: lr expected a value in \[0.0, inf\), got -0.1"),
        (lambda: optim.SGD([a], lr="0.1"), TypeError, "lr expected a real number, got str"),
        (lambda: optim.SGD([a], momentum=-1), ValueError, "momentum expected"),
        (lambda: optim.SGD([a], nesterov=True), ValueError, "nesterov=True expected momentum > 0"),
        (lambda: optim.SGD([{"params": [a], "lr": -1.0}]), ValueError, "lr expected"),
        (lambda: optim.Adam([a], betas=(0.9, 1.0)), ValueError, r"betas\[1\] expected a value in \[0.0, 1.0\)"),
        (lambda: optim.Adam([a], betas=(-0.1, 0.9)), ValueError, r"betas\[0\]"),
        (lambda: optim.Adam([a], betas=0.9), ValueError, "betas expected a pair"),
        (lambda: optim.AdamW([a], eps=-1e-8), ValueError, "AdamW: eps expected"),
        (lambda: optim.RMSprop([a], alpha=-0.5), ValueError, "alpha expected"),
        (lambda: optim.Adagrad([a], lr_decay=-1), ValueError, "lr_decay expected"),
        (lambda: optim.Adam([a], weight_decay=-1), ValueError, "weight_decay expected"),
        (lambda: optim.SGD([{"lr": 0.1}]), ValueError, "expected a 'params' key"),
    ]
    for make, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            make()


# ---- parity with torch.optim ---------------------------------------------------------


def torch_trajectory(name: str, kwargs: dict[str, Any], sign: float, steps: int) -> list[np.ndarray]:
    torch = pytest.importorskip("torch")
    params = [torch.tensor(p.numpy().copy(), requires_grad=True) for p in make_params()]
    opt = getattr(torch.optim, name)(params, **kwargs, foreach=False)
    for _ in range(steps):
        for p in params:
            p.grad = torch.from_numpy(quad_grad(p.detach().numpy(), sign))
        opt.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize(("name", "kwargs", "sign"), CONFIGS, ids=IDS)
def test_matches_torch_over_20_steps(name, kwargs, sign):
    expected = torch_trajectory(name, kwargs, sign, 20)
    params, _ = run(name, kwargs, sign, 20)
    for p, want in zip(params, expected, strict=True):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), want, rtol=1e-5, atol=1e-5)


def test_param_groups_match_torch():
    torch = pytest.importorskip("torch")
    params = make_params()
    tparams = [torch.tensor(p.numpy().copy(), requires_grad=True) for p in params]

    def groups(ps):
        return [{"params": [ps[0]], "lr": 0.02, "betas": (0.5, 0.9)}, {"params": [ps[1]], "weight_decay": 0.2}]

    opt = optim.AdamW(groups(params), lr=0.05)
    topt = torch.optim.AdamW(groups(tparams), lr=0.05, foreach=False)
    for _ in range(20):
        feed_grads(params)
        for p in tparams:
            p.grad = torch.from_numpy(quad_grad(p.detach().numpy()))
        opt.step()
        topt.step()
    for p, t in zip(params, tparams, strict=True):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-5)
