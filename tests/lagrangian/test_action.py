"""The stationary point of the action is the forward pass plus backpropagation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import flat, reference_grad, rel_l2

SYSTEMS = {
    "mlp": L.MLP((4, 7, 5, 3)),
    "resnet": L.ResNet(dim=3, depth=30),
    "recurrent": L.Recurrent(inputs=jnp.cos(jnp.arange(20.0)).reshape(10, 2), dim=3),
    "neural-ode-rk4": I.discretise(L.NeuralODE(3), I.uniform_grid(1.0, 15), "rk4"),
}


def _solve(system, key, batch):
    theta = system.init(key)
    shape = (system.input_dim,) if batch is None else (batch, system.input_dim)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), shape)
    loss = L.SquaredError(target=0.5)
    return theta, x0, loss, I.sweep(system, theta, x0, loss)


def _systems():
    """Each system compiles its sweep and residuals anew (3-8 s on one core): the default suite
    keeps the MLP, the other systems run with `pytest -m slow` (their sweeps are checked against
    jax.grad by test_sweep.py in the default suite)."""
    return [pytest.param(name, marks=() if name == "mlp" else pytest.mark.slow) for name in sorted(SYSTEMS)]


@pytest.mark.parametrize("name", _systems())
def test_stationarity_residuals_vanish(name, key, batch=8):
    """Every residual <= 1e-12 relative to the size of the field it balances."""
    system = SYSTEMS[name]
    theta, x0, loss, sol = _solve(system, key, batch)
    res = L.stationarity_residuals(system, theta, sol.xs, sol.ps, loss)
    x_scale = max(float(jnp.max(jnp.abs(x))) for x in sol.xs)
    p_scale = max(float(jnp.max(jnp.abs(p))) for p in sol.ps)
    assert max(float(jnp.max(jnp.abs(r))) for r in res["forward"]) <= 1e-12 * x_scale
    assert max(float(jnp.max(jnp.abs(r))) for r in res["conjugate"]) <= 1e-12 * p_scale


@pytest.mark.parametrize("name", _systems())
def test_action_is_stationary_and_enveloping(name, key):
    """Independent check with `jax.grad` of `S_d` itself (a reference, in the test):
    dS_d/dx_k = dS_d/dp_k = 0 at the sweep's solution, and dS_d/dtheta = dl/dtheta
    (the envelope theorem)."""
    system = SYSTEMS[name]
    theta, x0, loss, sol = _solve(system, key, None)

    def action(xs_tail, ps, th):
        return L.discrete_action(system, th, (x0, *xs_tail), ps, loss)

    xs_tail = tuple(sol.xs[1:])
    ps = tuple(sol.ps)
    g_x, g_p, g_theta = jax.grad(action, argnums=(0, 1, 2))(xs_tail, ps, theta)
    assert np.max(np.abs(flat(g_x))) <= 1e-12 * np.max(np.abs(flat(ps)))
    assert np.max(np.abs(flat(g_p[1:]))) <= 1e-12 * np.max(np.abs(flat(sol.xs)))
    assert rel_l2(g_theta, reference_grad(system, theta, x0, loss)) <= 1e-12
    assert abs(float(action(xs_tail, ps, theta)) - float(sol.loss)) <= 1e-14 * abs(float(sol.loss))


@pytest.mark.smoke
def test_p_is_the_sensitivity_of_the_loss_to_each_state(key):
    """`p_k = dl/dx_k`, checked by `jax.grad` of the tail of the network from layer k."""
    system = L.MLP((3, 6, 6, 2))
    theta, x0, loss, sol = _solve(system, key, None)
    for k in range(system.depth + 1):

        def tail(x, k=k):
            for j in range(k, system.depth):
                x = system.layer(j, x, theta[j])
            return loss(x)

        assert rel_l2(sol.ps[k], jax.grad(tail)(sol.xs[k])) <= 1e-12


def _oscillator_trajectory(omega, ts, q0, v0, t_final):
    """Closed form of `x = (q, v)` and of the conjugate `p(t)` for `l = 0.5 |x(T)|^2`."""
    c, s = np.cos(omega * ts), np.sin(omega * ts)
    xs = np.stack([q0 * c + v0 / omega * s, -q0 * omega * s + v0 * c], axis=-1)
    # p(t) = exp(A^T (T - t)) x(T) with A = [[0, 1], [-w^2, 0]]
    tau = t_final - ts
    ct, st = np.cos(omega * tau), np.sin(omega * tau)
    qT, vT = xs[-1]
    ps = np.stack([qT * ct - vT * omega * st, qT * st / omega + vT * ct], axis=-1)
    return xs, ps


def test_hamilton_equations_on_the_oscillator_closed_form():
    """Euler-Lagrange residuals of the continuous action fall as O(dt^2) on the exact
    solution (the finite-difference error of `jnp.gradient`), and `H` is conserved."""
    field, omega, t_final = L.HarmonicOscillator(omega=1.3), 1.3, 2.0
    theta = field.init(jax.random.key(0))
    errors = []
    for n in (200, 400, 800):
        ts = np.linspace(0.0, t_final, n + 1)
        xs, ps = _oscillator_trajectory(omega, ts, 0.7, -0.2, t_final)
        r_x, r_p = L.euler_lagrange_residuals(field, jnp.asarray(ts), jnp.asarray(xs), jnp.asarray(ps), theta)
        errors.append(max(float(jnp.max(jnp.abs(r_x))), float(jnp.max(jnp.abs(r_p)))))
        energy = L.energy(field, jnp.asarray(ts), jnp.asarray(xs), jnp.asarray(ps), theta)
        assert float(jnp.max(jnp.abs(energy - energy[0]))) <= 1e-12
    slope = np.polyfit(np.log([200, 400, 800]), np.log(errors), 1)[0]
    assert 1.8 <= -slope <= 2.2
    # On the solution, S[x, p] = l(x(T)) up to the quadrature error.
    action = L.continuous_action(field, jnp.asarray(ts), jnp.asarray(xs), jnp.asarray(ps), theta, L.SquaredError())
    assert abs(float(action) - 0.5 * float(np.sum(xs[-1] ** 2))) < 1e-4


@pytest.mark.smoke
def test_hamiltonian_with_running_cost():
    field = L.Pendulum(omega=2.0)
    theta = field.init(jax.random.key(0))
    x, p = jnp.array([0.3, -0.1]), jnp.array([1.0, 2.0])
    cost = lambda t, x, th: 0.5 * jnp.sum(x**2)
    expected = 1.0 * -0.1 + 2.0 * (-4.0 * np.sin(0.3)) + 0.5 * (0.09 + 0.01)
    assert abs(float(L.hamiltonian(field, 0.0, x, p, theta, cost)) - expected) < 1e-15
    dx, dp = L.hamilton_equations(field, 0.0, x, p, theta, cost)
    np.testing.assert_allclose(dx, field(0.0, x, theta), rtol=1e-15)
    # dp/dt = -(df/dx)^T p - dr/dx
    jac = np.array([[0.0, 1.0], [-4.0 * np.cos(0.3), 0.0]])
    np.testing.assert_allclose(dp, -jac.T @ np.asarray(p) - np.asarray(x), rtol=1e-14)


def test_time_derivative_is_exact_for_quadratics_on_a_non_uniform_grid():
    ts = jnp.array([0.0, 0.1, 0.35, 0.4, 0.9, 1.0])
    xs = jnp.stack([3.0 * ts**2 - ts + 2.0, -ts**2], axis=-1)
    expected = jnp.stack([6.0 * ts - 1.0, -2.0 * ts], axis=-1)
    np.testing.assert_allclose(L.time_derivative(xs, ts), expected, atol=1e-12)
    with pytest.raises(ValueError, match="at least 3 samples"):
        L.time_derivative(xs[:2], ts[:2])
