"""Invariants of the stationary point: the bilinear invariant and the energy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L

SYSTEMS = {
    "mlp": L.MLP((5, 5, 5, 5)),
    "resnet": L.ResNet(dim=4, depth=50),
    "neural-ode-heun": I.discretise(L.NeuralODE(4), I.uniform_grid(2.0, 40), "heun"),
}


SLOW = {(None, "resnet"), (6, "resnet"), (6, "neural-ode-heun")}
"""Cases run with `pytest -m slow` (2-4 s each on one core): the default suite keeps the MLP with
and without a batch, and the neural ODE on one state."""


@pytest.mark.parametrize("name,batch", [
    pytest.param(name, batch, id=f"{batch}-{name}", marks=pytest.mark.slow if (batch, name) in SLOW else ())
    for batch in (None, 6) for name in sorted(SYSTEMS)
])
def test_bilinear_invariant_is_constant_and_is_the_jvp(name, batch, key):
    """`p_k . v_k` is the same at every k (1e-12 relative) and equals the JVP of
    the loss along `v_0`, computed by `jax.jvp` through the whole forward map."""
    system = SYSTEMS[name]
    theta = system.init(key)
    shape = (system.input_dim,) if batch is None else (batch, system.input_dim)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), shape)
    v0 = jax.random.normal(jax.random.fold_in(key, 2), shape)
    loss = L.SquaredError(target=-0.3)
    sol = I.sweep(system, theta, x0, loss)
    vs = I.tangent_sweep(system, theta, sol.xs, v0)
    invariant = np.asarray(L.bilinear_invariant(sol.ps, vs))
    _, jvp = jax.jvp(lambda x: loss(I.forward(system, theta, x)[-1]), (x0,), (v0,))
    assert np.max(np.abs(invariant - invariant[0])) <= 1e-12 * abs(invariant[0])
    assert abs(invariant[0] - float(jvp)) <= 1e-12 * abs(float(jvp))


@pytest.mark.smoke
def test_energy_is_conserved_by_the_exact_linear_flow():
    """For the time-independent `dx/dt = A x`, `H = p . A x` is constant along the exact
    flow `x = e^{At} x0`, `p = e^{A^T (T-t)} x(T)` (scipy expm, independent)."""
    import scipy.linalg

    field = L.Linear(3)
    theta = field.init(jax.random.key(3))
    a = np.asarray(theta["A"])
    ts = np.linspace(0.0, 1.5, 31)
    x0 = np.array([1.0, -0.5, 0.2])
    xs = np.stack([scipy.linalg.expm(a * t) @ x0 for t in ts])
    ps = np.stack([scipy.linalg.expm(a.T * (1.5 - t)) @ xs[-1] for t in ts])
    h = np.asarray(L.energy(field, jnp.asarray(ts), jnp.asarray(xs), jnp.asarray(ps), theta))
    assert np.max(np.abs(h - h[0])) <= 1e-12 * abs(h[0])


@pytest.mark.smoke
def test_symplectic_form_and_defect():
    j = L.symplectic_form(2)
    np.testing.assert_array_equal(j @ j, -np.eye(4))
    rotation = jnp.array([[np.cos(0.3), 0, np.sin(0.3), 0], [0, 1, 0, 0], [-np.sin(0.3), 0, np.cos(0.3), 0], [0, 0, 0, 1]])
    assert float(L.symplecticity_defect(rotation)) < 1e-15
    assert float(L.symplecticity_defect(2.0 * jnp.eye(4))) == pytest.approx(3.0)
