"""Argmin layers: envelope theorem against the closed form and finite differences; rates."""

import jax
import numpy as np
import pytest

from experiments.correspondences import argmin as am
from experiments.correspondences.fixed_point import fitted_rate


def test_quadratic_closed_form():
    energy, theta = am.random_energy(6, 3, jax.random.key(0), 5.0, c=0.0)
    x_closed, g_closed = am.quadratic_closed_form(energy, theta)
    x_star = am.newton_argmin(energy, theta)
    assert np.max(np.abs(np.asarray(x_star) - x_closed)) <= 1e-13
    g = np.asarray(am.envelope_gradient(energy, theta, x_star))
    assert np.linalg.norm(g - g_closed) / np.linalg.norm(g_closed) <= 1e-12  # rounding of one solve


def test_envelope_gradient_against_central_differences_of_the_value():
    energy, theta = am.random_energy(6, 3, jax.random.key(1), 5.0, c=1.0)
    value = lambda th: float(energy(am.newton_argmin(energy, th), th))  # noqa: E731
    g = np.asarray(am.envelope_gradient(energy, theta, am.newton_argmin(energy, theta)))
    h = 1e-5
    fd = np.array([(value(theta + h * e) - value(theta - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-8)  # O(h^2) + eps/h


def test_argmin_jacobian_against_central_differences():
    energy, theta = am.random_energy(5, 2, jax.random.key(2), 5.0, c=1.0)
    jac = am.implicit_argmin_jacobian(energy, theta, am.newton_argmin(energy, theta))
    h = 1e-6
    fd = np.stack([(np.asarray(am.newton_argmin(energy, theta + h * e)) - np.asarray(am.newton_argmin(energy, theta - h * e)))
                   / (2 * h) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(jac, fd, rtol=0, atol=1e-8)


def test_unrolled_and_implicit_converge_twice_as_fast_as_the_envelope():
    energy, theta = am.random_energy(8, 3, jax.random.key(0), 10.0, c=1.0)
    errors = am.errors_against_steps(energy, theta, list(range(5, 120, 10)))
    rho = fitted_rate(errors.steps, errors.distance)
    assert abs(fitted_rate(errors.steps, errors.envelope) / rho - 1) <= 0.02
    assert abs(fitted_rate(errors.steps, errors.unrolled) / rho**2 - 1) <= 0.05
    assert abs(fitted_rate(errors.steps, errors.implicit) / rho**2 - 1) <= 0.05
    assert errors.unrolled[-1] <= 1e-14 and errors.implicit[-1] <= 1e-14


def test_bad_energy_is_rejected():
    with pytest.raises(ValueError, match="conditioning"):
        am.random_energy(3, 2, jax.random.key(0), 0.5)
    energy, theta = am.random_energy(3, 2, jax.random.key(0), 2.0, c=1.0)
    with pytest.raises(ValueError, match="quadratic"):
        am.quadratic_closed_form(energy, theta)
