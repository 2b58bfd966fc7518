"""EP and DP on imperfect substrates: exact rules at B = W, T = 0 (their own biases only), error
linear in the feedback mismatch, and EP's noise error falling like sqrt(T) / beta."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from experiments.learning_rules import dual_propagation, equilibrium_propagation, reciprocity
from tests.helpers import reference_grad, rel_l2


@pytest.fixture(scope="module")
def problem():
    system = L.MLP((4, 6, 6, 2))
    key = jax.random.key(3)
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (4, 4))
    loss = L.SquaredError(target=jax.random.normal(jax.random.fold_in(key, 2), (4, 2)))
    return system, theta, x0, loss, reference_grad(system, theta, x0, loss)


@pytest.mark.slow  # compiles both substrate rules and both plain rules (about 20 s on one core); the
# perfect substrate is exact in the default suite in tests/integrators/test_substrate.py
def test_perfect_substrate_is_the_plain_rule(problem):
    system, theta, x0, loss, grad = problem
    dp = reciprocity.dp_substrate(system, theta, x0, loss, 1e-3)
    assert rel_l2(dp, dual_propagation.dual_propagation(system, theta, x0, loss, 1e-3, passes=20)) == 0.0
    ep = reciprocity.ep_substrate(system, theta, x0, loss, 4e-3, jax.random.key(0))   # batch 4: 4 x 1e-3
    reference_ep = equilibrium_propagation.equilibrium_propagation(system, theta, x0, loss, 1e-3).grad
    assert rel_l2(ep, reference_ep) <= 1e-8
    # the symmetric estimates' only error is their O(beta^2) bias
    errors = [rel_l2(reciprocity.ep_substrate(system, theta, x0, loss, b, jax.random.key(0)), grad) for b in (1e-3, 1e-2)]
    assert 80 <= errors[1] / errors[0] <= 120


@pytest.mark.slow  # three rules at two mismatches (about 9 s on one core); the relaxation's linear
# mismatch error is checked in the default suite in tests/integrators/test_substrate.py
def test_mismatch_error_is_linear_for_every_rule(problem):
    system, theta, x0, loss, grad = problem
    for delta in (1e-2, 1e-1):
        fb = I.mismatched_feedback(system, theta, delta, jax.random.key(5))
        la = rel_l2(I.langevin_relax(system, theta, x0, loss, jax.random.key(0), iterations=200, window=1,
                                     feedback=fb).grad, grad)
        ep = rel_l2(reciprocity.ep_substrate(system, theta, x0, loss, 1e-4, jax.random.key(0), feedback=fb), grad)
        dp = rel_l2(reciprocity.dp_substrate(system, theta, x0, loss, 1e-4, feedback=fb), grad)
        for error in (la, ep, dp):
            assert 0.3 * delta <= error <= 3 * delta
        np.testing.assert_allclose([ep, dp], la, rtol=1e-3)   # the same p_B, to O(beta)


def test_ep_noise_error_grows_like_sqrt_t_over_beta(problem):
    system, theta, x0, loss, grad = problem
    run = lambda beta, t: rel_l2(reciprocity.ep_substrate(system, theta, x0, loss, beta, jax.random.key(1),
                                                          temperature=t, iterations=1500, window=1000), grad)
    low, high = run(1e-2, 1e-10), run(1e-2, 1e-6)      # noise above the O(beta^2) bias (~1e-4 here)
    assert 50 <= high / low <= 200
    assert 5 <= run(1e-3, 1e-6) / high <= 20
