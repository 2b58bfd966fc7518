"""The adjoint partner: formula, symplecticity of the pair, and the (x, p) step map.

The step map `(x_k, p_k) -> (x_{k+1}, p_{k+1})` of a method with its partner is
built from the project's conjugate step (`p_k = C(x_k) p_{k+1}`, so
`p_{k+1} = C(x_k)^{-1} p_k`) and differentiated with `jax.jacfwd` here, in the
test: `M^T J M = J` holds to 1e-12 only if `C(x_k)` is exactly `(dPhi/dx)^T`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L


def test_partner_formula_and_pair_symplecticity():
    for t in I.TABLEAUX.values():
        if 0.0 in t.b:
            continue
        partner = I.partner_tableau(t)
        a, a_hat, b = np.asarray(t.a), np.asarray(partner.a), np.asarray(t.b)
        assert partner.b == t.b
        # b_i A_hat_ij + b_j a_ji - b_i b_j = 0: the pair is a symplectic partitioned RK method
        np.testing.assert_allclose(b[:, None] * a_hat + (b[:, None] * a).T - np.outer(b, b), 0.0, atol=1e-15)


def test_known_partners():
    np.testing.assert_allclose(I.partner_tableau(I.LOBATTO_IIIA).a, I.LOBATTO_IIIB.a, atol=1e-15)
    for gauss in (I.GAUSS1, I.GAUSS2, I.GAUSS3):
        np.testing.assert_allclose(I.partner_tableau(gauss).a, gauss.a, atol=1e-15)
    # explicit Euler's partner is implicit in p forward, explicit backward: A_hat = [[1]]
    assert I.partner_tableau(I.EULER).a == ((1.0,),)


@pytest.mark.parametrize("name,stage", [("midpoint", 1), ("bosh3", 4), ("dopri5", 2), ("tsit5", 7)])
def test_zero_weight_is_named(name, stage):
    with pytest.raises(ValueError, match=rf"has b_{stage} = 0 .*divides by it"):
        I.partner_tableau(I.tableau(name))


@pytest.mark.parametrize("method", ["rk4", "kutta3", "heun"])
def test_partner_tableau_steps_p_exactly_like_the_conjugate(method, key):
    """An independent partitioned-RK step for p with the partner coefficients,
    P_i = p' + h sum_j (b_j - A_hat_ij) J_j^T P_j,  p = p' + h sum_j b_j J_j^T P_j,
    written here with dense Jacobians, equals the project's conjugate step."""
    field = L.MLPField(3, hidden=4)
    theta = field.init(key)
    system = I.discretise(field, I.uniform_grid(0.4, 1), method)
    x = jnp.array([0.3, -0.7, 1.1])
    p_next = jnp.array([1.0, 0.5, -2.0])
    t, partner = I.tableau(method), I.partner_tableau(I.tableau(method))
    h, s = 0.4, t.stages
    xs, _ = system.stages(0, x, theta)
    jac = [jax.jacobian(lambda y, i=i: field(t.c[i] * h, y, theta))(xs[i]) for i in range(s)]
    ps = [None] * s
    for i in reversed(range(s)):  # explicit backward: b_j - A_hat_ij = b_j a_ji / b_i vanishes for j <= i
        ps[i] = p_next + h * sum((t.b[j] - partner.a[i][j]) * jac[j].T @ ps[j] for j in range(i + 1, s))
    p = p_next + h * sum(t.b[j] * jac[j].T @ ps[j] for j in range(s))
    p_project, _ = system.conjugate(0, x, theta, p_next)
    np.testing.assert_allclose(p_project, p, rtol=1e-13, atol=1e-14)


STEP_METHODS = ["euler", "rk4", "dopri5", "gauss-legendre-2", "leapfrog", "asynchronous-leapfrog"]
MORE_STEP_METHODS = sorted(set(I.scheme_names()) - set(STEP_METHODS) - {"reversible-heun"})
"""Every scheme whose step is a diffeomorphism of its state space. Reversible Heun's step on
`(y, y_hat, v)` is not: its image is the manifold `v = f(t, y_hat)` (rank 2n of 3n), so the
doubled step has no inverse conjugate matrix; it is exact on its trajectories (test_methods)."""


@pytest.mark.parametrize("method", [  # the implicit tableau and the asynchronous splitting compile larger
    # step Jacobians (5-7 s each on one core): `slow`; leapfrog stands for the splittings
    pytest.param(m, marks=pytest.mark.slow if m in ("gauss-legendre-2", "asynchronous-leapfrog") else ())
    for m in STEP_METHODS
])
def test_step_map_is_symplectic_and_preserves_p_dot_v(method, key):
    _check_step_map(method, key)


@pytest.mark.slow
@pytest.mark.parametrize("method", MORE_STEP_METHODS)
def test_step_map_of_every_other_method(method, key):
    _check_step_map(method, key)


def _check_step_map(method, key):
    field = L.Pendulum(omega=1.4) if method in I.SPLITTINGS else L.NeuralODE(2, scale=1.5)
    theta = field.init(key)
    system = I.discretise(field, I.uniform_grid(0.3, 1), method)
    x = system.embed(jnp.array([0.4, -0.8]), theta)
    n = x.shape[0]

    def conjugate_matrix(x):
        return jax.vmap(lambda e: system.conjugate(0, x, theta, e)[0])(jnp.eye(n)).T

    def step(z):
        x, p = z[:n], z[n:]
        return jnp.concatenate([system.layer(0, x, theta), jnp.linalg.solve(conjugate_matrix(x), p)])

    z = jnp.concatenate([x, jnp.linspace(-1.0, 1.0, n)])
    m = jax.jacfwd(step)(z)
    assert float(L.symplecticity_defect(m)) <= 1e-12
    v = jnp.linspace(0.5, -0.3, n)
    p_next = step(z)[n:]
    v_next = system.tangent(0, x, theta, v)
    assert abs(float(p_next @ v_next - z[n:] @ v)) <= 1e-12 * float(jnp.abs(z[n:]) @ jnp.abs(v))
