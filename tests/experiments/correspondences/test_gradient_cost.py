"""Cost of a gradient: counted calls, XLA flops slopes, errors against the closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.correspondences import gradient_cost as gc


@pytest.mark.smoke
def test_closed_form_gradient_matches_central_differences():
    theta, inputs = gc.problem(5, 3, jax.random.key(0))
    fn = gc.tanh_unit(inputs)
    h = 1e-6
    fd = np.array([(fn(theta + h * e) - fn(theta - h * e)) / (2 * h) for e in np.eye(5)])
    # central differences: O(h^2) truncation + eps/h rounding ~ 1e-10
    np.testing.assert_allclose(gc.tanh_unit_gradient(theta, inputs), fd, rtol=0, atol=1e-9)


@pytest.mark.parametrize("p", [1, 7, 32])
def test_counted_calls_and_accuracy(p):
    theta, inputs = gc.problem(p, 4, jax.random.key(p))
    exact = gc.tanh_unit_gradient(theta, inputs)
    expected_calls = {"finite-differences": p + 1, "forward-mode": p, "reverse-mode": 1}
    for method in gc.METHODS:
        fn = gc.CountedFunction(gc.tanh_unit(inputs))
        g = gc.gradient(method, fn, theta)
        assert fn.calls == expected_calls[method]
        error = float(jnp.linalg.norm(g - exact) / jnp.linalg.norm(exact))
        # forward and reverse mode are exact to rounding; forward differences have O(sqrt(eps)) error
        assert error <= (1e-6 if method == "finite-differences" else 1e-13), method


def test_xla_flops_slopes():
    ps = (8, 32, 128)
    ratios = {m: [] for m in gc.METHODS}
    for p in ps:
        theta, inputs = gc.problem(p, 8, jax.random.key(0))
        flops = gc.xla_flops(gc.tanh_unit(inputs), theta)
        for m in gc.METHODS:
            ratios[m].append(flops[m] / flops["evaluation"])
    # the cost model's constants differ from one program to another; the slopes are the claim
    assert 0.85 <= gc.loglog_slope(ps, ratios["finite-differences"]) <= 1.15
    assert 0.85 <= gc.loglog_slope(ps, ratios["forward-mode"]) <= 1.15
    assert abs(gc.loglog_slope(ps, ratios["reverse-mode"])) <= 0.1


def test_bad_method_is_rejected():
    theta, inputs = gc.problem(3, 2, jax.random.key(0))
    with pytest.raises(ValueError, match="unknown gradient method"):
        gc.gradient("sideways-mode", gc.CountedFunction(gc.tanh_unit(inputs)), theta)
    with pytest.raises(ValueError, match="p >= 1"):
        gc.problem(0, 2, jax.random.key(0))
