"""The stage-wise conjugate of a Runge-Kutta step (`RungeKutta.linearise`, `StagePullback`).

One step's pullback, back-substituted stage by stage (explicit) or solved as one
linear system (implicit), must equal `jax.vjp` of that one step (the reference)
for every shipped tableau, including those with zero weights `b_i = 0`, for
which the partner formula does not exist.
"""

import jax
import jax.numpy as jnp
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import rel_l2


SLOW_IMPLICIT = {"gauss-legendre-1", "gauss-legendre-2", "gauss-legendre-3", "kvaerno3", "kvaerno4", "kvaerno5"}
"""Implicit tableaux whose case runs with `pytest -m slow`: each compiles a Newton-solved step and
its stage system (5-9 s on one core). The default suite keeps every explicit tableau, implicit
Euler, and the Lobatto IIIA/IIIB pair (an explicit first stage, a zero last column)."""


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if n in SLOW_IMPLICIT else ())
                                  for n in sorted(I.TABLEAUX)])
def test_stage_pullback_equals_the_vjp_of_one_step(name, key):
    field = L.MLPField(3, hidden=5)
    theta = field.init(key)
    system = I.discretise(field, I.uniform_grid(0.7, 3, t0=0.1), name)
    x = jax.random.normal(jax.random.fold_in(key, 1), (3,))
    p_next = jax.random.normal(jax.random.fold_in(key, 2), (3,))
    x_next, pullback = system.linearise(1, x, theta)
    assert isinstance(pullback, I.StagePullback)
    reference_next, reference = jax.vjp(lambda x_, th: system.layer(1, x_, th), x, theta)
    # explicit: the same arithmetic reassociated; implicit: stages Newton-solved to 1e-14
    tolerance = 1e-13 if system.tableau.explicit else 1e-10
    assert rel_l2(x_next, reference_next) <= 1e-15
    assert rel_l2(pullback(p_next), reference(p_next)) <= tolerance


def test_stage_pullbacks_stack_along_a_scan(key):
    # StoreStages keeps one StagePullback per step: it is a pytree of the stage residuals
    field = L.NeuralODE(2)
    system = I.discretise(field, I.uniform_grid(1.0, 4), "rk4")
    theta = field.init(key)

    def body(x, k):
        return system.linearise(k, x, theta)

    _, pullbacks = jax.lax.scan(body, jnp.ones(2), jnp.arange(4))
    assert pullbacks.h.shape == (4,)
    assert all(leaf.shape[0] == 4 for leaf in jax.tree.leaves(pullbacks))
