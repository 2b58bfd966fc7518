"""Doubled variables: the tension between the copies is the conjugate field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import flat, reference_grad, rel_l2

SYSTEMS = {
    "resnet": L.ResNet(dim=3, depth=20),
    "mlp": L.MLP((3, 6, 4, 2)),
    "neural-ode": I.discretise(L.NeuralODE(2), I.uniform_grid(3.0, 30)),
}


@pytest.mark.parametrize("name", [  # each system compiles its own tension solve (2-4 s on one core)
    pytest.param(name, marks=() if name == "mlp" else pytest.mark.slow) for name in sorted(SYSTEMS)
])
def test_tension_is_beta_times_conjugate_field(name, key):
    system = SYSTEMS[name]
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (5, system.input_dim))
    loss = L.SquaredError(target=1.0)
    sol = I.sweep(system, theta, x0, loss)
    reference = reference_grad(system, theta, x0, loss)
    x_plus_ref = None
    for beta in (1e-3, 1.0, 10.0):
        x_plus, x_minus, grad_s = I.tension(system, theta, x0, loss, beta)
        # x- = beta p, to 1e-12 relative
        assert rel_l2(flat(x_minus) / beta, flat(sol.ps)) <= 1e-12
        # dS_beta / dtheta = beta dl/dtheta
        assert rel_l2(flat(grad_s) / beta, flat(reference)) <= 1e-12
        # x+ follows the forward manifold whatever beta is (1e-14)
        if x_plus_ref is None:
            x_plus_ref = flat(x_plus)
        assert np.max(np.abs(flat(x_plus) - x_plus_ref)) <= 1e-14 * np.max(np.abs(x_plus_ref))
        # the two copies separate by beta p, and their mean is x+
        x1, x2 = L.copies(flat(x_plus), flat(x_minus))
        mean, diff = L.mean_and_difference(x1, x2)
        assert np.max(np.abs(mean - flat(x_plus))) <= 1e-14 * np.max(np.abs(x_plus_ref))
        assert rel_l2(diff / beta, flat(sol.ps)) <= 1e-12


@pytest.mark.parametrize("beta", [  # 3-4 s each on one core; every beta is checked by the tension test above
    1e-3, pytest.param(1.0, marks=pytest.mark.slow), pytest.param(10.0, marks=pytest.mark.slow)
])
def test_doubled_action_is_stationary_at_the_tension_solution(beta, key):
    """Independent check with `jax.grad` of `S_beta` (reference, in the test): its
    derivatives in x+ and x- vanish at the solution, for every beta."""
    system = SYSTEMS["resnet"]
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (system.input_dim,))
    loss = L.SquaredError(target=1.0)
    x_plus, x_minus, _ = I.tension(system, theta, x0, loss, beta)

    def action(xp_tail, xm):
        xp = jnp.concatenate([x0[None], xp_tail])
        return L.doubled_action(system, theta, xp, xm, loss, beta)

    g_plus, g_minus = jax.grad(action, argnums=(0, 1))(x_plus[1:], x_minus)
    assert float(jnp.max(jnp.abs(g_plus))) <= 1e-12 * float(jnp.max(jnp.abs(x_minus)))
    assert float(jnp.max(jnp.abs(g_minus[1:]))) <= 1e-12 * float(jnp.max(jnp.abs(x_plus)))


@pytest.mark.smoke
def test_beta_zero_keeps_the_copies_together(key):
    """Without the loss (beta = 0) the solution sits on the forward manifold, x- = 0."""
    system = SYSTEMS["resnet"]
    theta = system.init(key)
    x0 = jnp.ones(system.input_dim)
    _, x_minus, grad = I.tension(system, theta, x0, L.SquaredError(), 0.0)
    assert float(jnp.max(jnp.abs(x_minus))) == 0.0
    assert float(np.max(np.abs(flat(grad)))) == 0.0
