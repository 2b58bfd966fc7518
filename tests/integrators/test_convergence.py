"""Euler-discretised gradients converge to the continuous-time gradient.

For `dx/dt = A x`, `l = 0.5 |x(T)|^2`, the exact gradient is

    dl/dA = integral_0^T p(t) x(t)^T dt = integral_0^T e^{A^T (T-s)} x(T) x0^T e^{A^T s} ds,

the top-right block of `expm(T [[A^T, x(T) x0^T], [0, A^T]])` (Van Loan 1978),
computed with scipy, which shares no code with the project.
"""

import jax
import numpy as np
import pytest
import scipy.linalg

import integrators as I
import lagrangian as L
from tests.helpers import van_loan_gradient


def closed_form_gradient(a, x0, t_final):
    return van_loan_gradient(a, x0, t_final)[1]


@pytest.mark.parametrize("dim", [2, 5])
def test_euler_gradient_converges_at_first_order(dim, key):
    field = L.Linear(dim)
    theta = field.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (dim,))
    t_final = 1.0
    exact = closed_form_gradient(np.asarray(theta["A"]), np.asarray(x0), t_final)
    steps = np.array([50, 100, 200, 400, 800])
    errors = []
    for n in steps:
        system = I.discretise(field, I.uniform_grid(t_final, int(n)), "euler")
        grad = np.asarray(I.sweep(system, theta, x0, L.SquaredError()).grad["A"])
        errors.append(np.linalg.norm(grad - exact) / np.linalg.norm(exact))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 0.9 <= -slope <= 1.1, (slope, errors)
    assert errors[-1] < 1e-2


def test_closed_form_matches_quadrature(key):
    """The Van Loan block formula against direct trapezoidal quadrature of p x^T."""
    a = np.asarray(L.Linear(3).init(key)["A"])
    x0 = np.array([0.3, -1.0, 0.5])
    ts = np.linspace(0.0, 1.0, 4001)
    step = scipy.linalg.expm(a * (ts[1] - ts[0]))
    xs = [x0]
    for _ in ts[1:]:
        xs.append(step @ xs[-1])
    xs = np.stack(xs)
    ps = [xs[-1]]
    for _ in ts[1:]:
        ps.insert(0, step.T @ ps[0])
    ps = np.stack(ps)
    quad = np.trapezoid(ps[:, :, None] * xs[:, None, :], ts, axis=0)
    exact = closed_form_gradient(a, x0, 1.0)
    # trapezoid error O(h^2) with h = 2.5e-4
    assert np.linalg.norm(quad - exact) / np.linalg.norm(exact) < 1e-6
