"""Learning-rate schedulers: closed forms, torch parity over 30 steps, state dicts, errors."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import labkit
from labkit import optim
from labkit.optim import lr_scheduler as sched


def make_optimizer(name: str = "SGD", lrs: tuple[float, ...] = (0.1, 0.2), **kwargs: Any) -> optim.Optimizer:
    """A labkit optimizer with one two-element parameter per lr, one group each."""
    params = [labkit.tensor(np.zeros(2, np.float32), requires_grad=True) for _ in lrs]
    return getattr(optim, name)([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)], **kwargs)


def lr_sequence(opt: Any, scheduler: Any, steps: int, metrics: list[float] | None = None) -> list[list[float]]:
    """``get_last_lr()`` after construction and after each of ``steps`` steps."""
    out = [list(scheduler.get_last_lr())]
    for i in range(steps):
        opt.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[i])
        out.append(list(scheduler.get_last_lr()))
        assert [g["lr"] for g in opt.param_groups] == out[-1]
    return out


# ---- closed forms --------------------------------------------------------------------


def test_step_and_multistep_by_hand():
    opt = make_optimizer(lrs=(1.0,))
    seq = lr_sequence(opt, sched.StepLR(opt, step_size=2, gamma=0.5), 6)
    assert [s[0] for s in seq] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    opt = make_optimizer(lrs=(1.0,))
    seq = lr_sequence(opt, sched.MultiStepLR(opt, milestones=[1, 3, 3], gamma=0.5), 4)
    assert [s[0] for s in seq] == [1.0, 0.5, 0.5, 0.125, 0.125]


def test_exponential_and_cosine_endpoints():
    opt = make_optimizer(lrs=(2.0,))
    seq = lr_sequence(opt, sched.ExponentialLR(opt, gamma=0.5), 3)
    assert [s[0] for s in seq] == [2.0, 1.0, 0.5, 0.25]
    opt = make_optimizer(lrs=(1.0,))
    seq = [s[0] for s in lr_sequence(opt, sched.CosineAnnealingLR(opt, T_max=10, eta_min=0.1), 20)]
    assert seq[0] == 1.0 and seq[5] == pytest.approx(0.55) and seq[10] == pytest.approx(0.1)
    assert seq[20] == pytest.approx(1.0)  # without restarts the cosine continues back up
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(21)]
    np.testing.assert_allclose(seq, expected, rtol=1e-12)


def test_linear_warmup_then_cosine():
    opt = make_optimizer(lrs=(1.0,))
    cosine = sched.CosineAnnealingLR(opt, T_max=4)
    seq = [s[0] for s in lr_sequence(opt, sched.warmup(opt, cosine, warmup_steps=4, start_factor=0.2), 8)]
    np.testing.assert_allclose(seq[:5], [0.2, 0.4, 0.6, 0.8, 1.0], rtol=1e-12)
    np.testing.assert_allclose(
        seq[4:], [1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.5 - 0.5 * math.cos(math.pi / 4), 0.0], atol=1e-12
    )


def test_one_cycle_shape():
    opt = make_optimizer(lrs=(1.0,), momentum=0.9)
    scheduler = sched.OneCycleLR(opt, max_lr=1.0, total_steps=20, pct_start=0.25, div_factor=10, final_div_factor=100)
    seq = [s[0] for s in lr_sequence(opt, scheduler, 19)]
    assert seq[0] == pytest.approx(0.1) and seq[4] == pytest.approx(1.0) and max(seq) == seq[4]
    assert seq[19] == pytest.approx(0.1 / 100)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)  # back up at the end
    with pytest.raises(ValueError, match="at most total_steps=20"):
        scheduler.step()
        scheduler.step()


def test_reduce_on_plateau_waits_patience_then_cooldown():
    opt = make_optimizer(lrs=(1.0, 0.01))
    plateau = sched.ReduceLROnPlateau(opt, factor=0.5, patience=1, cooldown=1, min_lr=[0.0, 0.01])
    metrics = [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0]
    seq = lr_sequence(opt, plateau, len(metrics), metrics)
    # bad epochs after the best (2.0): 2 -> reduce; cooldown swallows one; 2 more -> reduce
    assert [s[0] for s in seq] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert {s[1] for s in seq} == {0.01}  # held at min_lr
    assert plateau.best == 1.0


# ---- parity with torch ---------------------------------------------------------------

SCHEDULERS: list[tuple[str, Callable[[Any, Any], Any], dict[str, Any]]] = [
    ("step", lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), {}),
    ("multistep", lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3), {}),
    ("exponential", lambda m, o: m.ExponentialLR(o, gamma=0.9), {}),
    ("cosine", lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.01), {}),
    ("linear", lambda m, o: m.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=7), {}),
    (
        "sequential",
        lambda m, o: m.SequentialLR(
            o, [m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=20)], milestones=[5]
        ),
        {},
    ),
    (
        "sequential3",
        lambda m, o: m.SequentialLR(
            o,
            [m.ExponentialLR(o, gamma=0.8), m.StepLR(o, step_size=2), m.MultiStepLR(o, milestones=[3])],
            milestones=[4, 11],
        ),
        {},
    ),
    ("onecycle", lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=30), {}),
    (
        "onecycle3-adam",
        lambda m, o: m.OneCycleLR(
            o, max_lr=[1.0, 2.0], epochs=3, steps_per_epoch=10, three_phase=True, anneal_strategy="linear"
        ),
        {"name": "Adam"},
    ),
    (
        "plateau",
        lambda m, o: m.ReduceLROnPlateau(o, patience=2, cooldown=1, min_lr=[0.001, 0.05]),
        {"metrics": [5, 4, 4, 4, 4, 3, 3.5, 3.9, 3.9, 4, 4, 4, 4, 2, 2] + [2] * 15},
    ),
    (
        "plateau-max-abs",
        lambda m, o: m.ReduceLROnPlateau(o, "max", factor=0.5, patience=1, threshold=0.1, threshold_mode="abs"),
        {"metrics": [1, 2, 2.05, 2.2, 2.2, 2.2, 3, 3, 3, 3] * 3},
    ),
]


@pytest.mark.parametrize(("label", "build", "extra"), SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_matches_torch_over_30_steps(label, build, extra):
    torch = pytest.importorskip("torch")
    name = extra.get("name", "SGD")
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    opt = make_optimizer(name, **kwargs)
    tparams = [torch.zeros(2, requires_grad=True) for _ in range(2)]
    topt = getattr(torch.optim, name)(
        [{"params": [p], "lr": lr} for p, lr in zip(tparams, (0.1, 0.2), strict=True)], **kwargs
    )
    ours = lr_sequence(opt, build(sched, opt), 30, extra.get("metrics"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = lr_sequence(topt, build(torch.optim.lr_scheduler, topt), 30, extra.get("metrics"))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    key = "momentum" if name == "SGD" else "betas"
    assert opt.param_groups[0][key] == pytest.approx(topt.param_groups[0][key])


# ---- state dicts ---------------------------------------------------------------------


@pytest.mark.parametrize(("label", "build", "extra"), SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_state_dict_round_trip_resumes_the_schedule(label, build, extra):
    name = extra.get("name", "SGD")
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    metrics = extra.get("metrics")
    opt = make_optimizer(name, **kwargs)
    straight = lr_sequence(opt, build(sched, opt), 20, metrics)
    opt = make_optimizer(name, **kwargs)
    scheduler = build(sched, opt)
    lr_sequence(opt, scheduler, 9, metrics)
    saved = json.loads(json.dumps({"opt": opt.state_dict(), "sched": scheduler.state_dict()}))
    opt2 = make_optimizer(name, **kwargs)
    scheduler2 = build(sched, opt2)  # made first, as in PyTorch: making one sets the lrs
    opt2.load_state_dict(saved["opt"])
    scheduler2.load_state_dict(saved["sched"])
    resumed = lr_sequence(opt2, scheduler2, 11, metrics[9:] if metrics else None)
    np.testing.assert_allclose(resumed, straight[9:], rtol=1e-12)


# ---- errors --------------------------------------------------------------------------


def test_errors_name_the_argument():
    opt = make_optimizer()
    cases = [
        (lambda: sched.StepLR(object(), step_size=2), TypeError, "optimizer expected a labkit.optim.Optimizer"),
        (lambda: sched.StepLR(opt, step_size=0), ValueError, "step_size expected a positive integer, got 0"),
        (lambda: sched.CosineAnnealingLR(opt, T_max=0), ValueError, "T_max expected a positive integer"),
        (lambda: sched.LinearLR(opt, start_factor=0.0), ValueError, r"start_factor expected a value in \(0, 1\]"),
        (lambda: sched.LinearLR(opt, end_factor=2.0), ValueError, "end_factor expected"),
        (lambda: sched.OneCycleLR(opt, max_lr=1.0), ValueError, "epochs expected a positive integer"),
        (lambda: sched.OneCycleLR(opt, max_lr=[1.0], total_steps=5), ValueError, r"max_lr expected one value per"),
        (lambda: sched.OneCycleLR(opt, max_lr=1.0, total_steps=5, pct_start=1.5), ValueError, "pct_start"),
        (lambda: sched.OneCycleLR(opt, 1.0, total_steps=5, anneal_strategy="exp"), ValueError, "anneal_strategy"),
        (lambda: sched.ReduceLROnPlateau(opt, mode="up"), ValueError, "mode expected 'min' or 'max', got 'up'"),
        (lambda: sched.ReduceLROnPlateau(opt, threshold_mode="x"), ValueError, "threshold_mode expected"),
        (lambda: sched.ReduceLROnPlateau(opt, factor=1.0), ValueError, "factor expected a value < 1.0"),
        (lambda: sched.StepLR(make_optimizer(), 2, last_epoch=4), ValueError, "expected 'initial_lr'"),
        (
            lambda: sched.SequentialLR(opt, [sched.StepLR(opt, 2), sched.StepLR(opt, 3)], milestones=[]),
            ValueError,
            "milestones expected 1 entries",
        ),
        (lambda: sched.SequentialLR(opt, [sched.ReduceLROnPlateau(opt)], []), TypeError, "epoch-driven"),
        (lambda: sched.SequentialLR(opt, [sched.StepLR(make_optimizer(), 2)], []), ValueError, "same optimizer"),
    ]
    for make, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            make()
    scheduler = sched.StepLR(make_optimizer(), step_size=2)
    with pytest.raises(ValueError, match="base_lrs expected 2 entries"):
        scheduler.load_state_dict({**scheduler.state_dict(), "base_lrs": [0.1]})
    with pytest.raises(ValueError, match="got \\['nonsense'\\]"):
        scheduler.load_state_dict({"nonsense": 1})
