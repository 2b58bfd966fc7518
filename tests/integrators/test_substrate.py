"""Imperfect substrates: mismatched feedback couplings and Langevin noise. At `delta = 0`,
`T = 0` the relaxations are exact; the gradient error grows like `delta` and like `sqrt(T)`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import reference_grad, rel_l2


@pytest.fixture(scope="module")
def problem():
    system = L.ResNet(dim=4, depth=8, h=0.3)
    key = jax.random.key(11)
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (2, 4))
    loss = L.SquaredError(target=jnp.ones(4))
    return system, theta, x0, loss, reference_grad(system, theta, x0, loss)


def _slope(xs, ys):
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def test_perfect_substrate_is_exact(problem):
    system, theta, x0, loss, grad = problem
    same = I.mismatched_feedback(system, theta, 0.0, jax.random.key(0))
    np.testing.assert_array_equal(same, theta["W"])
    run = I.langevin_relax(system, theta, x0, loss, jax.random.key(1), 0.0, iterations=200, window=1, feedback=same)
    assert rel_l2(run.grad, grad) <= 1e-13
    copies = I.langevin_copies(system, theta, x0, loss, 1e-2, jax.random.key(1), 0.0, iterations=200, window=1)
    assert rel_l2(copies.grad, grad) <= 1e-11


def test_gradient_error_grows_linearly_with_the_mismatch(problem):
    system, theta, x0, loss, grad = problem
    deltas = np.array([1e-4, 1e-3, 1e-2, 1e-1])
    errors, copy_errors = [], []
    for delta in deltas:
        fb = I.mismatched_feedback(system, theta, float(delta), jax.random.key(5))
        errors.append(rel_l2(I.langevin_relax(system, theta, x0, loss, jax.random.key(1), 0.0, iterations=200,
                                              window=1, feedback=fb).grad, grad))
        copy_errors.append(rel_l2(I.langevin_copies(system, theta, x0, loss, 1.0, jax.random.key(1), 0.0,
                                                    iterations=200, window=1, feedback=fb).grad, grad))
    assert 0.9 <= _slope(deltas, errors) <= 1.1
    np.testing.assert_allclose(copy_errors, errors, rtol=1e-6)   # the copies feel the same coupling


@pytest.mark.slow  # twelve noisy runs of 1500 iterations (about 8 s on one core); the noise-free and the
# mismatched substrate stay in the default suite, and EP's sqrt(T) law in test_reciprocity.py
def test_gradient_error_grows_like_the_square_root_of_the_temperature(problem):
    system, theta, x0, loss, grad = problem
    temps = np.array([1e-12, 1e-10, 1e-8, 1e-6])
    field, copies_1, copies_100 = [], [], []
    for t in temps:
        kw = dict(temperature=float(t), iterations=1500, window=1000)
        field.append(rel_l2(I.langevin_relax(system, theta, x0, loss, jax.random.key(2), **kw).averaged, grad))
        copies_1.append(rel_l2(I.langevin_copies(system, theta, x0, loss, 1.0, jax.random.key(2), **kw).averaged, grad))
        copies_100.append(rel_l2(I.langevin_copies(system, theta, x0, loss, 100.0, jax.random.key(2), **kw).averaged,
                                 grad))
    for errors in (field, copies_1, copies_100):
        assert 0.45 <= _slope(temps, errors) <= 0.55
    # the tension x1 - x2 = beta p is 100 times larger at beta = 100, so the noise of the difference
    # matters 100x less; what remains is the noise of the mean x+ at which the gradient is read
    # (its relative effect does not depend on beta): on this network the error halves
    assert np.all(np.asarray(copies_100) < 0.7 * np.asarray(copies_1))
    # averaging over the window beats reading one instant
    run = I.langevin_relax(system, theta, x0, loss, jax.random.key(2), 1e-8, iterations=1500, window=1000)
    assert rel_l2(run.averaged, grad) < 0.2 * rel_l2(run.grad, grad)


def test_bad_arguments(problem):
    system, theta, x0, loss, _ = problem
    with pytest.raises(ValueError, match="feedback"):
        I.langevin_relax(system, theta, x0, loss, jax.random.key(0), feedback=jnp.ones((8, 3, 3)))
    with pytest.raises(ValueError, match="window"):
        I.langevin_relax(system, theta, x0, loss, jax.random.key(0), iterations=10, window=20)
    with pytest.raises(ValueError, match="temperature"):
        I.langevin_copies(system, theta, x0, loss, 1.0, jax.random.key(0), temperature=-1.0)
