"""The parallel scan: against the sequential composite, a numpy loop and a closed form; gradients in float64."""

from __future__ import annotations

import numpy as np
import pytest
from labkit_mingru.checks import op_specs, scan_reference
from labkit_mingru.ops import min_gru_scan, parallel_scan, sequential_scan

import labkit
from labkit.testing import gradcheck, gradgradcheck
from labkit.testing.opspec import check_op


def _inputs(shape: tuple[int, ...], seed: int = 0, dtype: str = "float64", low: float = 0.05, high: float = 0.95):
    rng = np.random.default_rng(seed)
    a = labkit.tensor(rng.uniform(low, high, shape).astype(dtype), requires_grad=True)
    b = labkit.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
    h0 = labkit.tensor(rng.standard_normal(shape[:1] + shape[2:]).astype(dtype), requires_grad=True)
    return a, b, h0


@pytest.mark.parametrize("spec", op_specs(), ids=str)
def test_op_specs(spec):
    check_op(spec)  # forward vs numpy (float64 and float32), gradcheck, gradgradcheck


# T = 1, powers of two and not, 2-D features: every doubling step boundary is hit
@pytest.mark.parametrize("shape", [(2, 1, 3), (2, 2, 3), (3, 7, 4), (2, 16, 3), (2, 33, 2), (2, 9, 2, 3)])
@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_scan_matches_sequential_composite(shape, reverse):
    a, b, h0 = _inputs(shape, seed=len(shape) + shape[1])
    fused = parallel_scan(a, b, h0, reverse=reverse)
    composite = sequential_scan(a, b, h0, reverse=reverse)
    np.testing.assert_allclose(fused.numpy(), composite.numpy(), rtol=1e-12, atol=1e-12)
    cotangent = labkit.tensor(np.random.default_rng(1).standard_normal(shape))
    grads_fused = labkit.grad((fused * cotangent).sum(), [a, b, h0])
    grads_composite = labkit.grad((composite * cotangent).sum(), [a, b, h0])
    for name, gf, gc in zip("a b h0".split(), grads_fused, grads_composite):
        np.testing.assert_allclose(gf.numpy(), gc.numpy(), rtol=1e-11, atol=1e-12, err_msg=name)


def test_second_derivatives_match_the_composite():
    a, b, h0 = _inputs((2, 6, 3), seed=3)
    v = labkit.tensor(np.random.default_rng(4).standard_normal((2, 6, 3)))
    results = []
    for scan in (parallel_scan, sequential_scan):
        # the first pass asks for every input: labkit.grad with a subset of them leaves stale gradient
        # sums on the pruned branches of the composite (a labkit core bug, reported), not of the scan
        ga, gb, gh0 = labkit.grad((scan(a, b, h0) ** 2 * v).sum(), [a, b, h0], create_graph=True)
        penalty = (ga * ga).sum() + (gb * gh0[:, None]).sum()
        results.append([g.numpy() for g in labkit.grad(penalty, [a, b, h0])])
    for name, gf, gc in zip("a b h0".split(), *results):
        np.testing.assert_allclose(gf, gc, rtol=1e-10, atol=1e-12, err_msg=name)


def test_gradcheck_and_gradgradcheck_float64():
    a, b, h0 = _inputs((2, 5, 3), seed=5)
    for reverse in (False, True):

        def fn(a, b, h0, reverse=reverse):
            return parallel_scan(a, b, h0, reverse=reverse)

        assert gradcheck(fn, [a, b, h0])
        assert gradgradcheck(fn, [a, b, h0])
    z, h_tilde, h0 = _inputs((2, 4, 3), seed=6)
    assert gradcheck(min_gru_scan, [z, h_tilde, h0])
    assert gradgradcheck(min_gru_scan, [z, h_tilde, h0])


def test_closed_form_constant_coefficients():
    # a_t = a, b_t = b for all t: h_t = a^(t+1) h0 + b (1 - a^(t+1)) / (1 - a)
    steps, a_value, b_value, h0_value = 50, 0.8, -1.5, 3.0
    a = labkit.full((1, steps, 1), a_value, dtype="float64")
    b = labkit.full((1, steps, 1), b_value, dtype="float64")
    h0 = labkit.full((1, 1), h0_value, dtype="float64")
    powers = a_value ** np.arange(1, steps + 1)
    expected = powers * h0_value + b_value * (1 - powers) / (1 - a_value)
    np.testing.assert_allclose(parallel_scan(a, b, h0).numpy()[0, :, 0], expected, rtol=1e-13)
    # minGRU with a constant gate z moves h0 toward a constant candidate c: h_t = c + (1 - z)^(t+1) (h0 - c)
    z = labkit.full((1, steps, 1), 0.3, dtype="float64")
    c = labkit.full((1, steps, 1), 2.0, dtype="float64")
    expected = 2.0 + 0.7 ** np.arange(1, steps + 1) * (h0_value - 2.0)
    np.testing.assert_allclose(min_gru_scan(z, c, h0).numpy()[0, :, 0], expected, rtol=1e-13)


@pytest.mark.parametrize("low, high", [(1e-6, 1e-3), (0.999, 1.0 - 1e-9), (0.0, 1.0)])
def test_long_sequences_stay_finite_and_accurate(low, high):
    # z near 1 (a tiny: cumulative products underflow after a few steps), z near 0 (a near 1)
    a, b, h0 = _inputs((2, 3000, 4), seed=7, low=low, high=high)
    fused = parallel_scan(a, b, h0).numpy()
    reference = scan_reference(a.numpy(), b.numpy(), h0.numpy())
    assert np.isfinite(fused).all()
    np.testing.assert_allclose(fused, reference, rtol=1e-9, atol=1e-9)


def test_float32_stays_float32_and_matches_float64():
    a, b, h0 = _inputs((4, 128, 8), seed=8)
    expected = parallel_scan(a, b, h0).numpy()
    a32, b32, h32 = (x.astype("float32") for x in (a, b, h0))
    out = parallel_scan(a32, b32, h32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_h0_defaults_to_zeros_and_inputs_are_not_modified():
    a, b, _ = _inputs((2, 5, 3), seed=9)
    a_before, b_before = a.numpy().copy(), b.numpy().copy()
    out = parallel_scan(a, b)
    zeros = labkit.zeros(2, 3, dtype="float64")
    np.testing.assert_array_equal(out.numpy(), parallel_scan(a, b, zeros).numpy())
    np.testing.assert_array_equal(a.numpy(), a_before)
    np.testing.assert_array_equal(b.numpy(), b_before)


def test_errors_name_the_op_and_what_was_expected():
    a, b, h0 = _inputs((2, 5, 3))
    with pytest.raises(ValueError, match=r"parallel_scan: expected a and b of one shape"):
        parallel_scan(a, b[:, :4])
    with pytest.raises(ValueError, match=r"parallel_scan: expected h0 float64 \(2, 3\)"):
        parallel_scan(a, b, h0[:1])
    with pytest.raises(TypeError, match=r"min_gru_scan: expected z to be a Tensor, got ndarray"):
        min_gru_scan(a.numpy(), b)
    with pytest.raises(ValueError, match=r"parallel_scan: expected a to be a float tensor \(B, T, \.\.\.\)"):
        parallel_scan(a[:, 0], b[:, 0])


@pytest.mark.parametrize("reverse", [False, True])
def test_numpy_kernel_matches_the_doubling_scan(reverse):
    from labkit_mingru.ops import ParallelScan

    from labkit.plugins import load_plugins, use_kernels

    assert load_plugins()["mingru"].ok
    a, b, h0 = _inputs((3, 11, 2, 2), seed=10)
    v = labkit.tensor(np.random.default_rng(11).standard_normal((3, 11, 2, 2)))
    results = {}
    for selected in ([], ["mingru"]):
        with use_kernels(selected) as active:
            assert ("numpy" in ParallelScan._kernels) == bool(selected)
            assert active == (["mingru.parallel_scan@numpy"] if selected else [])
            out = parallel_scan(a, b, h0, reverse=reverse)
            grads = labkit.grad((out * out * v).sum(), [a, b, h0], create_graph=True)
            second = labkit.grad(sum((g * g).sum() for g in grads), [a, b, h0])
            results[bool(selected)] = [out.numpy(), *(g.numpy() for g in grads), *(g.numpy() for g in second)]
        assert "numpy" not in ParallelScan._kernels  # leaving the block restores the built-in forward
    for k, (got, want) in enumerate(zip(results[True], results[False])):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12, err_msg=f"array {k}")
