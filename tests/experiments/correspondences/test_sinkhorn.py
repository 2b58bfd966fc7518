"""Sinkhorn: the envelope gradient eps log u* against finite differences; unrolled and implicit rates."""

import jax
import numpy as np
import pytest

from experiments.correspondences import sinkhorn as sk
from experiments.correspondences.fixed_point import fitted_rate


@pytest.fixture(scope="module")
def problem():
    return sk.random_problem(12, 15, jax.random.key(3), eps=0.1)


def test_converged_potentials_meet_both_marginals(problem):
    f, g = sk.converged(problem)
    P = np.exp((np.asarray(f)[:, None] + np.asarray(g)[None, :] - np.asarray(problem.C)) / problem.eps)
    assert np.max(np.abs(P.sum(1) - np.asarray(problem.a))) <= 1e-15
    assert np.max(np.abs(P.sum(0) - np.asarray(problem.b))) <= 1e-15  # exact after the g-update


def test_envelope_gradient_against_finite_differences(problem):
    # central differences of the converged value along e_i - e_j: O(delta^2) + rounding / delta
    assert sk.finite_difference_check(problem, [(0, 1), (2, 9), (5, 11)]) <= 1e-6


def test_all_three_estimates_converge_to_eps_log_u(problem):
    errors = sk.errors_against_iterations(problem, [1, 5, 9, 13, 17, 21, 25, 200])
    assert errors.envelope[-1] <= 1e-12 and errors.unrolled[-1] <= 1e-12 and errors.implicit[-1] <= 1e-12
    ks, env, unr, imp = errors.iterations[:-1], errors.envelope[:-1], errors.unrolled[:-1], errors.implicit[:-1]
    rate = fitted_rate(ks, env, floor=1e-12)
    # errors quadratic in the distance to the optimum: about the square of the envelope's rate
    assert abs(fitted_rate(ks, unr, floor=1e-12) / rate**2 - 1) <= 0.2
    assert abs(fitted_rate(ks, imp, floor=1e-12) / rate**2 - 1) <= 0.2


def test_bad_problem_is_rejected():
    with pytest.raises(ValueError, match="eps > 0"):
        sk.random_problem(5, 5, jax.random.key(0), eps=0.0)
