"""Pytree states through `solve` and `sweep`: a field on the state `{"q": (2,), "v": (2,)}`.

Reference: `jax.grad` through the plain forward map (`integrators.output`) of the same
field written by hand on the flat state `(q, v)`, so the raveling code is not on the
reference's path. Tolerance: 1e-12 relative L2 (float64; the two compute the same
discrete map with the same operations, up to the order of a few sums).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import integrators as I
import lagrangian
from tests.helpers import rel_l2

TOL = 1e-12


class Oscillators(lagrangian.VectorField):
    """Two coupled anharmonic oscillators on the pytree state `{"q": (2,), "v": (2,)}` (separable)."""

    state_dim: int = 4
    separable = True

    def init(self, key, dtype=jnp.float64):
        return {"w": jnp.array([2.0, 1.5], dtype), "g": jnp.array(0.3, dtype)}

    def __call__(self, t, x, theta):
        return {"q": x["v"], "v": -theta["w"] * x["q"] - theta["g"] * jnp.sin(x["q"][::-1])}


class FlatOscillators(Oscillators):
    """The same field on the flat state `(q, v)`, written by hand."""

    def __call__(self, t, x, theta):
        return jnp.concatenate([x[2:], -theta["w"] * x[:2] - theta["g"] * jnp.sin(x[1::-1])])


THETA = Oscillators().init(None)
X0 = {"q": jnp.array([1.0, 0.5]), "v": jnp.array([0.0, -0.3])}
FLAT_X0 = jnp.concatenate([X0["q"], X0["v"]])
TS = I.uniform_grid(1.0, 24)


def loss(x):
    return jnp.sum(x["q"] ** 2) + jnp.sum(jnp.sin(x["v"]))


def flat_loss(x):
    return jnp.sum(x[:2] ** 2) + jnp.sum(jnp.sin(x[2:]))


def flat(tree):
    return jnp.concatenate([tree["q"], tree["v"]], axis=-1)


SLOW = pytest.mark.slow      # an implicit scheme and a coupled reversible one compile for about 20 s each
CASES = [("rk4", "store-all"), ("dopri5", "store-stages"), ("leapfrog", "checkpoint-log"),
         ("reversible-heun", "reversible"), pytest.param("gauss-legendre-2", "checkpoint", marks=SLOW),
         pytest.param("reversible-rk4", "reversible", marks=SLOW)]


@pytest.mark.parametrize("scheme, memory", CASES)
def test_solve_and_sweep_on_a_pytree_state_agree_with_autodiff_of_the_flat_map(scheme, memory):
    system = I.discretise(Oscillators(), TS, scheme)
    reference_system = I.discretise(FlatOscillators(), TS, scheme)
    ref_theta, ref_x0 = jax.grad(lambda th, x: flat_loss(I.output(reference_system, th, x)), argnums=(0, 1))(THETA, FLAT_X0)
    ref_final = I.output(reference_system, THETA, FLAT_X0)

    strategy = I.MEMORIES[memory]
    final = I.solve(system, THETA, X0, memory=strategy)
    assert jax.tree.structure(final) == jax.tree.structure(X0)
    g_theta, g_x0 = jax.grad(lambda th, x: loss(I.solve(system, th, x, memory=strategy)), argnums=(0, 1))(THETA, X0)
    assert rel_l2(flat(final), ref_final) < TOL
    assert rel_l2(flat(g_x0), ref_x0) < TOL
    assert all(rel_l2(g_theta[k], ref_theta[k]) < TOL for k in THETA)

    solution = I.sweep(system, THETA, X0, loss, memory=strategy)
    assert rel_l2(flat(solution.x_final), ref_final) < TOL
    assert rel_l2(flat(solution.grad_x0), ref_x0) < TOL
    assert all(rel_l2(solution.grad[k], ref_theta[k]) < TOL for k in THETA)


def test_saved_states_and_stored_fields_are_pytrees_with_a_leading_axis():
    system = I.discretise(Oscillators(), TS, "rk4")
    saved = I.solve(system, THETA, X0, saveat=(0, 5, 24))
    assert jax.tree.map(jnp.shape, saved) == {"q": (3, 2), "v": (3, 2)}
    assert jnp.array_equal(flat(saved)[0], FLAT_X0)
    reference = I.forward(I.discretise(FlatOscillators(), TS, "rk4"), THETA, FLAT_X0)
    assert rel_l2(flat(saved), reference[jnp.array([0, 5, 24])]) < TOL

    solution = I.sweep(system, THETA, X0, loss)                  # StoreAll keeps x_k and p_k
    assert jax.tree.map(jnp.shape, (solution.xs, solution.ps)) == ({"q": (25, 2), "v": (25, 2)},) * 2
    assert rel_l2(flat(solution.xs), reference) < TOL
    assert rel_l2(flat(solution.ps)[0], flat(solution.grad_x0)) < TOL   # p_0 = dl/dx_0 (embed is the identity)


@SLOW
def test_hessian_through_solve_on_a_pytree_state():
    """Forward over reverse through `solve` on a pytree state, against autodiff of the flat map."""
    system = I.discretise(Oscillators(), TS, "heun")
    reference_system = I.discretise(FlatOscillators(), TS, "heun")
    hessian = jax.hessian(lambda th: loss(I.solve(system, th, X0, memory=I.StoreStages())))(THETA)
    reference = jax.hessian(lambda th: flat_loss(I.output(reference_system, th, FLAT_X0)))(THETA)
    assert all(rel_l2(hessian[a][b], reference[a][b]) < TOL for a in THETA for b in THETA)


def test_pytree_states_are_refused_where_they_have_no_meaning():
    mlp = lagrangian.MLP((2, 3, 1))
    with pytest.raises(TypeError, match="pytree state x0 needs a discretised VectorField"):
        I.solve(mlp, mlp.init(jax.random.key(0)), {"a": jnp.ones(2)})
    system = I.discretise(Oscillators(), TS, "rk4")
    with pytest.raises(ValueError, match="one floating-point dtype"):
        I.solve(system, THETA, {"q": jnp.ones(2), "v": jnp.ones(2, jnp.int32)})
    with pytest.raises(ValueError, match="non-finite|NaN"):
        I.sweep(system, THETA, {"q": jnp.array([jnp.nan, 0.0]), "v": jnp.ones(2)}, loss)


def test_lists_of_numbers_are_still_arrays():
    system = I.discretise(FlatOscillators(), TS, "rk4")
    assert rel_l2(I.solve(system, THETA, [1.0, 0.5, 0.0, -0.3]), I.output(system, THETA, FLAT_X0)) == 0.0


def test_raveled_field_keeps_the_separable_declaration():
    field = I.RaveledField(field=Oscillators(), raveling=I.Raveling.of(X0))
    assert field.separable and field.state_dim == 4
    assert eqx.tree_equal(field(0.0, FLAT_X0, THETA), FlatOscillators()(0.0, FLAT_X0, THETA))
