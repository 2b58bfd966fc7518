"""Predictive coding: fixed predictions equal backprop; weak output precision is one-sided EP;
the clamped network follows the gradient of its own equilibrium energy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrangian
from experiments.harness import problems
from experiments.learning_rules import equilibrium_propagation as ep
from experiments.learning_rules import inference
from experiments.learning_rules import predictive_coding as pc
from tests.helpers import flat, reference_grad, rel_l2


@pytest.mark.parametrize("name", [pytest.param("mlp", marks=pytest.mark.slow), "mlp-deep"])  # 4 s each on one core
def test_fixed_prediction_equals_backprop(name):
    p = problems.problem_named(name)
    ref = reference_grad(p.system, p.theta, p.x0, p.loss)
    assert rel_l2(jax.jit(lambda th: pc.fixed_prediction(p.system, th, p.x0, p.loss))(p.theta), ref) <= 1e-12


@pytest.mark.slow  # the Jacobi curve and a damped relaxation of 60 steps (about 7 s on one core);
# the fixed-prediction gradient is exact in the default suite above
def test_fixed_prediction_is_exact_after_n_minus_one_jacobi_steps_not_before(acceptance):
    net, theta, x0, loss, ref = acceptance
    errors = [rel_l2(g, ref) for g in pc.fixed_prediction_curve(net, theta, x0, loss, net.depth)]
    assert min(errors[: net.depth - 1]) > 1e-2  # the error front has not reached layer 1 yet
    assert errors[net.depth - 1] <= 1e-12
    # a damped relaxation (eta < 1) converges geometrically instead
    damped = rel_l2(pc.fixed_prediction(net, theta, x0, loss, iterations=60, eta=0.5), ref)
    assert damped <= 1e-9


@pytest.mark.slow  # three solvers at five precisions (about 8 s on one core); the clamped network is
# checked in the default suite by the envelope test below
def test_weak_precision_pc_is_one_sided_ep_at_beta_gamma_over_one_minus_gamma(acceptance):
    net, theta, x0, loss, ref = acceptance
    # jitted with the precision traced: one compilation per solver instead of eager dispatch
    newton = jax.jit(lambda gamma: pc.clamped(net, theta, x0, loss, gamma).grad)
    one_sided = jax.jit(lambda beta: ep.equilibrium_propagation(net, theta, x0, loss, beta, symmetric=False).grad)
    sweeps = jax.jit(lambda gamma: pc.clamped(net, theta, x0, loss, gamma, solver="sweeps").grad)
    for gamma in (1e-1, 1e-3):
        beta = gamma / (1 - gamma)
        # the same equilibrium (x_N minimised out of F_beta); the estimates differ by the factor 1 + beta
        scaled = jax.tree.map(lambda g: (1 + beta) * g, one_sided(beta))
        assert rel_l2(newton(gamma), scaled) <= 1e-10
    errors = [rel_l2(sweeps(g), ref) for g in (1e-4, 1e-5, 1e-6)]
    assert 8 <= errors[0] / errors[1] <= 12 and 8 <= errors[1] / errors[2] <= 12  # O(gamma)


def test_clamped_pc_follows_the_gradient_of_its_equilibrium_energy(acceptance):
    """Envelope theorem: d/dtheta min_x F(x; theta, x_N = y) = dF/dtheta at the equilibrium, checked
    by central finite differences of the minimised energy along a random direction."""
    net, theta, x0, loss, _ = acceptance
    target = pc.squared_error_target(loss, x0.shape[0], 3)
    solve = jax.jit(lambda th: inference.newton(net, th, x0, clamp=target))

    def min_energy(th):
        return float(lagrangian.layered_energy(net, th, solve(th).xs))

    est = pc.clamped(net, theta, x0, loss, 1.0)
    direction = jax.tree.map(lambda a: jax.random.normal(jax.random.key(5), a.shape), theta)
    h = 1e-5
    plus = jax.tree.map(lambda a, d: a + h * d, theta, direction)
    minus = jax.tree.map(lambda a, d: a - h * d, theta, direction)
    fd = (min_energy(plus) - min_energy(minus)) / (2 * h)
    analytic = float(flat(est.grad) @ flat(direction))
    assert abs(fd - analytic) <= 1e-7 * abs(analytic)  # O(h^2) truncation + eps/h rounding


def test_clamped_pc_needs_a_squared_error_target():
    p = problems.problem_named("mlp")
    with pytest.raises(ValueError, match="squared-error loss"):
        pc.clamped(p.system, p.theta, p.x0, p.loss)
    with pytest.raises(ValueError, match="output precision"):
        pc.clamped(p.system, p.theta, p.x0, lagrangian.SquaredError(), 0.0)
