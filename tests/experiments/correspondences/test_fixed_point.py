"""Fixed-point layers: implicit gradient against the closed form, finite differences and unrolled backprop."""

import jax
import numpy as np
import pytest

from experiments.correspondences import fixed_point as fp
from tests.helpers import rel_l2


def test_linear_layer_closed_form():
    layer, theta = fp.random_layer(6, 3, jax.random.key(1), 0.9, "identity")
    x_closed, g_closed = fp.linear_closed_form(layer, theta)
    x_star = fp.newton_fixed_point(layer, theta)
    g = fp.implicit_gradient(layer, theta, x_star)
    assert np.max(np.abs(np.asarray(x_star) - x_closed)) <= 1e-13
    # linear solves with a well-conditioned I - W (|W| = 0.9): rounding only
    assert rel_l2(g, {k: g_closed[k] for k in theta}) <= 1e-12


def test_nonlinear_implicit_gradient_against_central_differences():
    layer, theta = fp.random_layer(5, 2, jax.random.key(2), 0.9)
    g = fp.implicit_gradient(layer, theta, fp.newton_fixed_point(layer, theta))
    h = 1e-6
    loss = lambda th: float(layer.loss(fp.newton_fixed_point(layer, th)))  # noqa: E731
    W = np.asarray(theta["W"])
    for i, j in [(0, 0), (1, 3), (4, 2)]:
        e = np.zeros_like(W)
        e[i, j] = h
        fd = (loss({**theta, "W": W + e}) - loss({**theta, "W": W - e})) / (2 * h)
        assert abs(fd - float(g["W"][i, j])) <= 1e-8  # O(h^2) + eps/h


def test_errors_fall_at_the_contraction_rate_and_unrolled_converges_to_implicit():
    layer, theta = fp.random_layer(6, 3, jax.random.key(0), 0.95)
    errors = fp.errors_against_iterations(layer, theta, list(range(1, 40, 4)))
    rho = errors.contraction
    # linear convergence: rate within 25% of rho (the unrolled error carries a K rho^K prefactor)
    assert abs(fp.fitted_rate(errors.iterations, errors.implicit) / rho - 1) <= 0.1
    assert abs(fp.fitted_rate(errors.iterations, errors.unrolled) / rho - 1) <= 0.25
    far = fp.unrolled_gradient(layer, theta, 200)
    exact = fp.implicit_gradient(layer, theta, fp.newton_fixed_point(layer, theta))
    assert rel_l2(far, exact) <= 1e-12


def test_bad_contraction_is_rejected():
    with pytest.raises(ValueError, match="contraction"):
        fp.random_layer(3, 2, jax.random.key(0), 1.2)
