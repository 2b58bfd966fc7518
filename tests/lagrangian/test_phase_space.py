"""Liouville: the flow map of the doubled system and of frictionless momentum training
keeps phase-space volume; linear friction removes it at the closed-form rate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L


def _flow_jacobians(system, theta, z0):
    """`M_k = dz_k/dz_0` for every step, by the tangent sweep from the identity (`(N+1, m, m)`)."""
    zs = I.forward(system, theta, z0)
    vs = jax.vmap(lambda v: I.tangent_sweep(system, theta, zs, v))(jnp.eye(z0.shape[0], dtype=z0.dtype))
    return jnp.transpose(vs, (1, 2, 0))


@pytest.fixture(scope="module")
def doubled():
    field = L.NeuralODE(state_dim=3, scale=1.5)
    theta = field.init(jax.random.key(0))
    z0 = jnp.array([0.5, -0.3, 0.8, 1.0, 0.2, -0.5])
    return L.HamiltonFlow(field), theta, z0


def test_hamilton_flow_is_hamiltons_equations(doubled):
    flow, theta, z0 = doubled
    x, p = z0[:3], z0[3:]
    jac = jax.jacfwd(lambda x_: flow.field(0.0, x_, theta))(x)
    np.testing.assert_allclose(flow(0.0, z0, theta), jnp.concatenate([flow.field(0.0, x, theta), -jac.T @ p]),
                               atol=1e-15)
    # divergence tr(dF/dz) = tr(df/dx) - tr(df/dx) = 0
    assert abs(float(jnp.trace(jax.jacfwd(lambda z: flow(0.0, z, theta))(z0)))) <= 1e-14


def test_symplectic_steps_keep_the_volume_of_the_doubled_system(doubled):
    """Gauss-Legendre is symplectic for every Hamiltonian: det M = 1 to rounding over
    40 steps (stages Newton-solved to 1e-14); RK4 is not and drifts by ~1e-6."""
    flow, theta, z0 = doubled
    gauss = _flow_jacobians(I.discretise(flow, I.uniform_grid(4.0, 40), "gauss-legendre-1"), theta, z0)
    assert float(jnp.max(jnp.abs(jax.vmap(L.log_volume)(gauss)))) <= 1e-12
    assert float(L.symplecticity_defect(gauss[-1])) <= 1e-12
    rk4 = _flow_jacobians(I.discretise(flow, I.uniform_grid(4.0, 40), "rk4"), theta, z0)
    assert float(jnp.max(jnp.abs(jax.vmap(L.log_volume)(rk4)))) > 1e-9


def _heavy_ball(friction):
    net = L.MLP((3, 4, 2), activation="tanh", readout=True)
    params = net.init(jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (8, 3))
    loss = L.CrossEntropy(labels=jax.random.randint(jax.random.key(3), (8,), 0, 2))
    velocity = jax.tree.map(lambda a: 0.2 * jnp.ones_like(a), params)
    return L.HeavyBall.of(net, params, x, loss, friction=friction, velocity=velocity)


def test_leapfrog_momentum_training_is_volume_preserving_and_symplectic():
    field, z0 = _heavy_ball(0.0)
    m = _flow_jacobians(I.discretise(field, I.uniform_grid(2.0, 50), "leapfrog"), field.init(None), z0)
    assert float(jnp.max(jnp.abs(jax.vmap(L.log_volume)(m)))) <= 1e-12  # 50 steps of rounding, 46 dims
    assert float(L.symplecticity_defect(m[-1])) <= 1e-12
    assert float(jnp.max(jnp.abs(m[-1] - jnp.eye(m.shape[-1])))) > 1e-2  # the map is not trivial


@pytest.mark.parametrize("method", [  # each splitting compiles its own tangent sweep (1-4 s on one core)
    "leapfrog", pytest.param("symplectic-euler", marks=pytest.mark.slow), pytest.param("yoshida4", marks=pytest.mark.slow)
])
def test_friction_contracts_volume_at_the_closed_form_rate(method):
    """Each kick `v -> (1 - c h gamma) v - c h grad R(q)` has determinant `(1 - c h gamma)^n`,
    drifts have determinant 1: `log det M_k = k n sum_kicks log(1 - c h gamma)` exactly,
    which tends to the continuous `-gamma n t` as `h -> 0`."""
    gamma, t_final, steps = 0.5, 2.0, 50
    h = t_final / steps
    field, z0 = _heavy_ball(gamma)
    n = field.parameters
    m = _flow_jacobians(I.discretise(field, I.uniform_grid(t_final, steps), method), field.init(None), z0)
    logdet = np.asarray(jax.vmap(L.log_volume)(m))
    kicks = sum(np.log1p(-c * h * gamma) for kind, c in I.tableau(method).steps if kind == "kick")
    np.testing.assert_allclose(logdet, n * kicks * np.arange(steps + 1), rtol=1e-12, atol=1e-12)
    continuous = np.asarray(L.friction_log_volume(gamma, n, np.linspace(0, t_final, steps + 1)))
    # the kicks contract each velocity like prod_c (1 - c h gamma) = exp(-h gamma + O(h^2)): first order
    assert np.max(np.abs(logdet - continuous)) <= n * t_final * h * gamma**2
    with pytest.raises(ValueError, match="at least one velocity"):
        L.friction_log_volume(gamma, 0, 1.0)
