"""Newton's method for implicit stages: converged roots, implicit-function-theorem gradients, clear failures.

Tolerances: the root to 1e-14 (the solver's own rtol/atol); its derivative against
the closed form to 1e-13 (one dense solve at a converged root).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import integrators as I



@settings(max_examples=5, deadline=None)  # each example compiles one program (about 1.5 s)
@given(n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_root_and_gradient_of_a_random_well_conditioned_system(n, seed):
    """`R(k) = k + 0.3 tanh(A k) - b(theta)` (Jacobian I + 0.3 diag(sech^2) A, invertible for |A| < 1):
    the root solves it, and `jax.grad` through it equals `-J^{-1} dR/dtheta` at the root."""
    rng = np.random.default_rng(seed)
    a = jnp.asarray(rng.normal(size=(n, n)) / (2 * n))
    b = jnp.asarray(rng.normal(size=n))

    def root(theta):
        return I.newton_root(lambda k: k + 0.3 * jnp.tanh(a @ k) - theta * b, jnp.zeros(n), 1e-14, 1e-14, 50)

    # one program per example: the root, forward- and reverse-mode derivatives through it
    k, forward, reverse = jax.jit(lambda t: (root(t), jax.jacfwd(root)(t), jax.grad(lambda t_: root(t_).sum())(t)))(1.0)
    assert float(jnp.max(jnp.abs(k + 0.3 * jnp.tanh(a @ k) - b))) < 1e-13
    jac = jnp.eye(n) + 0.3 * (1.0 - jnp.tanh(a @ k) ** 2)[:, None] * a
    expected = jnp.linalg.solve(jac, b)                       # dk/dtheta = J^{-1} b
    assert float(jnp.linalg.norm(forward - expected) / jnp.linalg.norm(expected)) < 1e-13
    assert float(jnp.abs(reverse - expected.sum())) < 1e-12 * max(1.0, float(jnp.abs(expected.sum())))


def test_a_root_that_does_not_converge_is_an_error():
    with pytest.raises(Exception, match="did not converge in 3 steps"):
        jax.block_until_ready(I.newton_root(lambda k: k ** 2 + 1.0, jnp.array([0.5]), 1e-14, 1e-14, 3))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="max_steps >= 1"):
        I.newton_root(lambda k: k, jnp.zeros(2), 1e-14, 1e-14, 0)


@pytest.mark.parametrize("name", [  # each tableau compiles its own vmapped Newton solve (2-7 s on one core)
    pytest.param(n, marks=() if n == "implicit-euler" else pytest.mark.slow)
    for n in sorted(n for n, t in I.TABLEAUX.items() if not t.explicit)
])
def test_batched_stages_solve_each_state_alone(name):
    """A batch of states (`Batched`, one vmap) gives the step of each state solved on its own."""
    import lagrangian as L

    field = L.MLPField(3, hidden=5)
    theta = field.init(jax.random.key(0))
    ode = I.RungeKutta(field, I.uniform_grid(1.0, 4), I.TABLEAUX[name])
    x = jax.random.normal(jax.random.key(1), (4, 3))
    batch = L.Batched(ode).layer(1, x, theta)
    for b in range(4):
        assert float(jnp.max(jnp.abs(batch[b] - ode.layer(1, x[b], theta)))) < 1e-14
