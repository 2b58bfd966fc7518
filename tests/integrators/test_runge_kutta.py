"""Runge-Kutta coefficients as data: one compiled program per structure.

`RungeKutta.with_coefficients` passes `(a, b, c)` as arrays. A program traced for
one tableau and called with another tableau's coefficients must compute that
other tableau's map and gradient: compared with the same discretisation built
with constant coefficients (which `test_methods.py` checks against `jax.grad`)
and, for the output, with the order of accuracy of the closed form.
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import integrators as I
import lagrangian as L
from tests.helpers import rel_l2

GROUPS = collections.defaultdict(list)
for _name, _tab in I.TABLEAUX.items():
    GROUPS[(_tab.stages, _tab.explicit)].append(_name)
SHARED = {k: v for k, v in GROUPS.items() if len(v) > 1}


def _setup(dtype=jnp.float64):
    field = L.MLPField(3, hidden=5)
    theta = field.init(jax.random.key(0), dtype)
    x0 = jax.random.normal(jax.random.key(1), (4, 3), dtype)
    return field, I.uniform_grid(1.0, 12, dtype=dtype), theta, x0, L.SquaredError(target=0.25)


def test_the_shipped_tableaux_fall_into_the_expected_structures():
    # the harness relies on these groups sharing programs; a new tableau joins one or makes its own
    assert sorted(map(sorted, SHARED.values())) == [
        ["bosh3", "rk38", "rk4"], ["dopri5", "tsit5"], ["gauss-legendre-2", "lobatto-iiia", "lobatto-iiib"],
        ["heun", "midpoint", "ralston"]]


@pytest.mark.parametrize("structure", sorted(SHARED), ids=lambda s: f"{s[0]}-{'explicit' if s[1] else 'implicit'}")
def test_one_program_per_structure_computes_every_tableau_of_it(structure):
    field, ts, theta, x0, loss = _setup()
    names = SHARED[structure]
    first = I.discretise(field, ts, names[0])
    traces = []

    @jax.jit
    def run(abc):
        traces.append(1)  # runs once per trace
        system = first.with_coefficients(abc)
        solution = I.sweep(system, theta, x0, loss, check=False)
        return solution.x_final, solution.grad

    for name in names:
        plain = I.discretise(field, ts, name)
        assert plain.structure == first.structure
        x_final, grad = run(plain.with_coefficients().coefficients)
        expected = I.sweep(plain, theta, x0, loss)
        # same arithmetic up to multiplications by the tableau's zeros and their reassociation;
        # implicit stages are Newton-solved to 1e-14
        tolerance = 1e-13 if plain.tableau.explicit else 1e-11
        assert rel_l2(x_final, expected.x_final) <= tolerance, name
        assert rel_l2(grad, expected.grad) <= tolerance, name
    assert len(traces) == 1


@pytest.mark.parametrize("name", ["midpoint", "bosh3"])   # zero b_i: every b_i is used with coefficients as data
def test_coefficients_match_the_reference_gradient(name):
    field, ts, theta, x0, loss = _setup()
    system = I.discretise(field, ts, name).with_coefficients()
    reference = jax.grad(lambda th: loss(I.output(system, th, x0)))(theta)   # jax.grad: the reference
    assert rel_l2(I.sweep(system, theta, x0, loss).grad, reference) <= 1e-12  # explicit: as in test_methods.py


def test_coefficients_follow_the_state_dtype():
    field, ts, theta, x0, loss = _setup(jnp.float32)
    system = I.discretise(field, ts, "rk4").with_coefficients(dtype=jnp.float64)
    solution = I.sweep(system, theta, x0, loss)
    assert solution.x_final.dtype == jnp.float32
    assert jax.tree.leaves(solution.grad)[0].dtype == jnp.float32
    plain = I.sweep(I.discretise(field, ts, "rk4"), theta, x0, loss)
    assert rel_l2(solution.grad, plain.grad) <= 1e-5   # float32 rounding


def test_coefficients_of_the_wrong_shape_are_named():
    field, ts, _, _, _ = _setup()
    system = I.discretise(field, ts, "rk4")
    with pytest.raises(ValueError, match="coefficients .* 4-stage tableau must have shapes"):
        system.with_coefficients((jnp.zeros((3, 3)), jnp.zeros(3), jnp.zeros(3)))


def test_order_is_kept_with_coefficients_as_data():
    # dx/dt = A x: the error of x(T) falls as h^4 for rk38 run through rk4's program
    a = np.array([[-0.3, 1.0], [-1.0, -0.2]])
    field = L.Linear(2)
    theta = {"A": jnp.asarray(a)}
    x0 = jnp.array([[1.0, 0.5]])
    exact = x0 @ jnp.asarray(scipy.linalg.expm(a * 2.0)).T
    rk4 = lambda steps: I.discretise(field, I.uniform_grid(2.0, steps), "rk4")   # noqa: E731
    rk38 = I.TABLEAUX["rk38"]
    errors = []
    for steps in (10, 20):
        abc = tuple(jnp.asarray(v) for v in (rk38.a, rk38.b, rk38.c))
        errors.append(float(jnp.max(jnp.abs(I.output(rk4(steps).with_coefficients(abc), theta, x0) - exact))))
    assert 3.7 <= np.log2(errors[0] / errors[1]) <= 4.3


@pytest.mark.parametrize("name", sorted(I.TABLEAUX))
def test_padding_a_tableau_changes_neither_the_map_nor_its_gradient(name):
    # padded to the largest stage count of its kind: the added stages have zero coefficients,
    # so every added term is an exact zero; the gradient is checked with jax.grad (the reference)
    field, ts, theta, x0, loss = _setup()
    plain = I.discretise(field, ts, name)
    padded = plain.padded(7 if plain.tableau.explicit else 3)
    assert padded.tableau.explicit == plain.tableau.explicit
    assert padded.structure == plain.padded(padded.tableau.stages).structure
    assert padded.padding_structure == plain.padding_structure != padded.structure   # the key padding shares

    def grad(system):
        return jax.grad(lambda th: loss(I.output(system, th, x0)))(theta)

    # explicit: the same arithmetic plus exact zeros; implicit: Newton on a block-diagonal
    # system whose added block is the identity (measured 0 here, and at most 1.6e-16 elsewhere)
    assert rel_l2(I.output(padded.with_coefficients(), theta, x0), I.output(plain, theta, x0)) <= 1e-15
    assert rel_l2(grad(padded.with_coefficients()), grad(plain)) <= 1e-14


def test_a_tableau_cannot_be_padded_to_fewer_stages():
    with pytest.raises(ValueError, match="'rk4' has 4 stages; cannot pad it to 2"):
        I.RK4.padded(2)
    with pytest.raises(ValueError, match="'rk4': the stage count to pad to must be an integer; got 7.5"):
        I.RK4.padded(7.5)
