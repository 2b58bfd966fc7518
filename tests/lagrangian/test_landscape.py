"""The discrete action is a saddle in (x, p): Hessian against jax.hessian, its inertia,
the +-sigma(B) spectrum when A = 0, and the linearised pseudo-time flows."""

import jax
import jax.numpy as jnp
import numpy as np

import integrators as I
import lagrangian as L


def _stationary(system, theta, x0, loss):
    sol = I.sweep(system, theta, x0, loss)
    return sol.xs, sol.ps


def _flat_action(system, theta, x0, loss, dims):
    offsets = np.concatenate([[0], np.cumsum(dims)])
    m = int(offsets[-1])

    def action(z):
        xs = [x0] + [z[offsets[k]:offsets[k + 1]] for k in range(len(dims))]
        ps = [jnp.zeros_like(x0)] + [z[m + offsets[k]:m + offsets[k + 1]] for k in range(len(dims))]
        return L.discrete_action(system, theta, xs, ps, loss)

    return action


def test_hessian_matches_jax_hessian_and_is_a_saddle_of_index_m():
    """Both Hessians are compiled whole by `jax.jit` (op by op they took 8 s on one core, not 1)."""
    net = L.MLP((3, 5, 4, 2), activation="tanh")
    theta = net.init(jax.random.key(0))
    x0, loss = jnp.array([0.3, -0.5, 0.9]), L.SquaredError(target=jnp.array([1.0, -1.0]))
    xs, ps = _stationary(net, theta, x0, loss)
    hess = jax.jit(lambda th, xs, ps: L.action_hessian(net, th, xs, ps, loss))(theta, xs, ps)
    dims = [5, 4, 2]
    z = jnp.concatenate([*xs[1:], *ps[1:]])
    reference = jax.jit(jax.hessian(_flat_action(net, theta, x0, loss, dims)))(z)
    assert float(jnp.max(jnp.abs(hess - reference))) <= 1e-13 * float(jnp.max(jnp.abs(reference)))
    eigenvalues = np.linalg.eigvalsh(np.asarray(hess))
    assert L.inertia(eigenvalues) == (11, 11, 0)


def test_zero_curvature_spectrum_is_plus_minus_the_singular_values_of_b():
    """Linear layers and a linear loss: A = 0 and the eigenvalues are exactly +-sigma_i(B),
    with B assembled here by hand from the weight matrices."""
    net = L.MLP((3, 4, 4, 2), activation="identity")
    theta = net.init(jax.random.key(1))
    x0, loss = jnp.array([0.3, -0.5, 0.9]), L.LinearFunctional(c=jnp.array([1.0, -2.0]))
    xs, ps = _stationary(net, theta, x0, loss)
    hess = np.asarray(L.action_hessian(net, theta, xs, ps, loss))
    b = -np.eye(10)
    b[0:4, 4:8] = np.asarray(theta[1]["W"]).T   # d(p_2-equation)/dx_1 = W_1, placed at [x_1, p_2]
    b[4:8, 8:10] = np.asarray(theta[2]["W"]).T  # [x_2, p_3]
    sigma = np.linalg.svd(b, compute_uv=False)
    expected = np.sort(np.concatenate([sigma, -sigma]))
    np.testing.assert_allclose(np.linalg.eigvalsh(hess), expected, atol=1e-13)
    np.testing.assert_allclose(hess[:10, :10], 0.0, atol=0)


def test_relaxation_is_stable_and_descent_is_not():
    """`dz/dtau = swap grad S` (docs/design.md 2.6) linearises to `[[B^T, 0], [A, B]]`: `J + I` is
    nilpotent (all eigenvalues -1); plain descent has M unstable directions."""
    net = L.MLP((2, 3, 3, 2), activation="tanh")
    theta = net.init(jax.random.key(2))
    x0, loss = jnp.array([0.7, -0.4]), L.SquaredError(target=jnp.array([0.5, 0.5]))
    xs, ps = _stationary(net, theta, x0, loss)
    flows = L.linearised_flows(L.action_hessian(net, theta, xs, ps, loss))
    shifted = np.asarray(flows["relaxation"]) + np.eye(16)
    assert np.max(np.abs(np.linalg.matrix_power(shifted, 16))) <= 1e-12
    assert np.max(np.abs(shifted)) > 0.1
    descent = np.linalg.eigvals(np.asarray(flows["descent"])).real
    assert np.sum(descent > 1e-12) == 8
