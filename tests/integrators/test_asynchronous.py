"""Clock-free relaxation: Poisson clocks with stale neighbours, and continuous pseudo-time with
heterogeneous time constants (adaptive diffrax), both reaching `jax.grad` (relative L2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import reference_grad, rel_l2

NETWORKS = {
    "mlp-8": L.MLP((5,) + (8,) * 8),
    "mlp-32": L.MLP((5,) + (8,) * 32),
    "resnet-64": L.ResNet(dim=4, depth=64),
}
# The MLPs are unrolled (widths may change): compiling their programs takes 10 s (depth 8) to a
# minute (depth 32, diffrax), so those cases run with `pytest -m slow`; the default suite keeps
# the stacked ResNet of depth 64, with stale neighbours and spread time constants (the fresh,
# uniform case compiles its own program, 5 s on one core, and is `slow` too).
FAST = {("resnet-64", 10.0, 5), ("resnet-64",)}


def _params(*cases):
    return [pytest.param(*c, marks=() if c in FAST else pytest.mark.slow) for c in cases]


def _problem(name, key):
    system = NETWORKS[name]
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (2, system.input_dim))
    loss = L.SquaredError(target=0.3)
    return system, theta, x0, loss, reference_grad(system, theta, x0, loss)


@pytest.mark.parametrize("name,spread,max_lag", _params(*[(n, s, m) for n in NETWORKS for s, m in [(1.0, 0), (10.0, 5)]]))
def test_poisson_clocks_with_stale_neighbours_reach_the_exact_gradient(name, spread, max_lag, key):
    system, theta, x0, loss, grad = _problem(name, key)
    taus = I.time_constants(system.depth, spread, jax.random.fold_in(key, 3))
    ticks = int(np.ceil((4 * system.depth + 60) * taus.mean() / 0.1 / 100)) * 100
    run = I.poisson_relax(system, theta, x0, loss, jax.random.fold_in(key, 4), ticks=ticks, dt=0.1, taus=taus,
                          max_lag=max_lag)
    assert rel_l2(run.grad, grad) <= 1e-10
    # every node kept its own clock: the firing counts differ and follow the rates
    counts = np.asarray(run.firings)
    assert len(set(counts.tolist())) > 1
    expected = ticks * 0.1 / taus
    assert np.all(np.abs(counts - expected) <= 6 * np.sqrt(expected) + 2)


@pytest.mark.parametrize("name", _params(*[(n,) for n in NETWORKS]))
def test_continuous_relaxation_with_heterogeneous_time_constants(name, key):
    system, theta, x0, loss, grad = _problem(name, key)
    taus = I.time_constants(system.depth, 10.0, jax.random.fold_in(key, 3))
    run = I.continuous_relax(system, theta, x0, loss, taus, t_final=(3 * system.depth + 60) * 10.0, records=10)
    assert rel_l2(run.grad, grad) <= 1e-10
    errors = [rel_l2(jax.tree.map(lambda g: g[i], run.grads), grad) for i in range(10)]
    assert errors[0] > 1e-4 and errors[-1] <= 1e-10


def test_an_update_of_node_k_reads_only_nodes_k_minus_1_to_k_plus_1(key):
    """The Jacobian of node k's new `(x_k, p_k)` with respect to every node's current and stale
    values vanishes outside `k-1..k+1` (a one-tick step with only node k firing, and with all firing)."""
    system = L.ResNet(dim=3, depth=6)
    theta = system.init(key)
    loss = L.SquaredError(target=0.5)
    n = system.depth + 1
    xh = jax.random.normal(jax.random.fold_in(key, 1), (3, n, 3))
    ph = jax.random.normal(jax.random.fold_in(key, 2), (3, n, 3))
    lags = jax.random.randint(jax.random.fold_in(key, 3), (n,), 0, 3)
    step = lambda xh, ph, fire: jnp.stack(I.asynchronous_step(system, theta, loss, xh, ph, fire, lags))
    jacobian = jax.jit(jax.jacfwd(step, argnums=(0, 1)))    # (2, n, 3) outputs by (3, n, 3) inputs
    for fire in [np.ones(n, bool)] + [np.arange(n) == k for k in range(n)]:
        jx, jp = (np.asarray(j) for j in jacobian(xh, ph, jnp.asarray(fire)))
        for k in np.flatnonzero(fire):
            reads = {j for j in range(n) if np.any(jx[:, k, :, :, j, :] != 0) or np.any(jp[:, k, :, :, j, :] != 0)}
            assert reads and reads <= {k - 1, k, k + 1}, (k, reads)


def test_a_node_that_does_not_fire_keeps_its_values(key):
    system = L.ResNet(dim=2, depth=4)
    theta = system.init(key)
    xh = jax.random.normal(key, (2, 5, 2))
    fire = jnp.array([True, False, True, False, True])
    xs, ps = jax.jit(I.asynchronous_step, static_argnums=(0, 2))(system, theta, L.SquaredError(), xh, xh, fire,
                                                                 jnp.ones(5, int))
    for k in (1, 3):
        np.testing.assert_array_equal(xs[k], xh[0, k])
        np.testing.assert_array_equal(ps[k], xh[0, k])


@pytest.mark.slow  # three recorded runs of 3000 ticks (about 8 s on one core); that stale relaxation
# reaches the exact gradient is checked in the default suite above
def test_stale_relaxation_converges_slower_and_tau_spread_sets_the_rate(key):
    """Error against pseudo-time: staleness and a spread of time constants delay the convergence
    (the time to 1e-10 grows), but never stop it."""
    system = L.ResNet(dim=4, depth=16)
    theta = system.init(key)
    x0, loss = jnp.ones(4), L.SquaredError(target=0.3)
    grad = reference_grad(system, theta, x0, loss)

    def time_to(spread, lag):
        taus = I.time_constants(system.depth, spread, jax.random.fold_in(key, 3))
        run = I.poisson_relax(system, theta, x0, loss, jax.random.fold_in(key, 4), ticks=3000, dt=0.1, taus=taus,
                              max_lag=lag, record_every=50)
        errors = [rel_l2(jax.tree.map(lambda g: g[i], run.grads), grad) for i in range(len(run.times))]
        return next(float(t) for t, e in zip(run.times, errors) if e <= 1e-10)

    fresh, stale, spread = time_to(1.0, 0), time_to(1.0, 10), time_to(10.0, 0)
    assert fresh < stale and fresh < spread


def test_bad_arguments(key):
    system = L.ResNet(dim=2, depth=3)
    theta = system.init(key)
    with pytest.raises(ValueError, match="taus"):
        I.poisson_relax(system, theta, jnp.ones(2), L.SquaredError(), key, taus=np.ones(3))
    with pytest.raises(ValueError, match="taus"):
        I.continuous_relax(system, theta, jnp.ones(2), L.SquaredError(), taus=-np.ones(4))
    with pytest.raises(ValueError, match="spread"):
        I.time_constants(3, 0.5)


@pytest.mark.parametrize("activation", ["identity", pytest.param("tanh", marks=pytest.mark.slow)])  # 3 s on one core
def test_asynchronous_saddle_flow_reaches_the_exact_gradient(activation, key):
    """The augmented-Lagrangian saddle flow with Poisson clocks and staleness up to 5 ticks reaches
    jax.grad like the synchronous flow (linear and tanh ResNets of depth 8)."""
    system = L.ResNet(dim=4, depth=8, activation=activation)
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (3, 4))
    loss = L.SquaredError(target=jnp.ones(4))
    grad = reference_grad(system, theta, x0, loss)
    run = I.poisson_saddle_flow(system, theta, x0, loss, jax.random.fold_in(key, 2), ticks=40_000, max_lag=5)
    assert rel_l2(run.grad, grad) <= 1e-10
    assert int(run.firings[0]) == 0         # the clamped input never moves


def test_an_asynchronous_saddle_update_reads_only_its_neighbours(key):
    system = L.ResNet(dim=3, depth=6)
    theta = system.init(key)
    loss = L.SquaredError(target=0.5)
    n = system.depth + 1
    xh = jax.random.normal(jax.random.fold_in(key, 1), (3, n, 3))
    ph = jax.random.normal(jax.random.fold_in(key, 2), (3, n, 3))
    lags = jax.random.randint(jax.random.fold_in(key, 3), (n,), 0, 3)
    step = lambda xh, ph: jnp.stack(I.asynchronous_saddle_step(system, theta, loss, xh, ph, jnp.ones(n, bool), lags))
    jx, jp = (np.asarray(j) for j in jax.jit(jax.jacfwd(step, argnums=(0, 1)))(xh, ph))
    for k in range(1, n):
        reads = {j for j in range(n) if np.any(jx[:, k, :, :, j, :] != 0) or np.any(jp[:, k, :, :, j, :] != 0)}
        assert reads and reads <= {k - 1, k, k + 1}, (k, reads)
    with pytest.raises(ValueError, match="one shape"):
        mlp = L.MLP((2, 3, 2))
        I.poisson_saddle_flow(mlp, mlp.init(key), jnp.ones(2), loss, key)
