"""Second derivatives through `integrators.solve` and `integrators.diffeqsolve`.

Forward over reverse works: `jax.hessian` (= `jacfwd(jacrev)`), `jax.jacfwd(jax.grad)`
and Hessian-vector products `jax.jvp(jax.grad(l), ...)` push tangents through the
conjugate sweep, which is ordinary JAX code. Reference: the same derivatives of the
plain scan (`integrators.output`, and diffrax's `DirectAdjoint`, which differentiates
its own loop). Tolerance 1e-12 relative L2: both sides are exact for the same
discrete map and differ by rounding. Reverse over forward (`jax.jacrev(jax.jacfwd)`)
needs the tangent of a custom-VJP function and is refused by JAX by name.
"""

import diffrax
import jax
import jax.numpy as jnp
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import rel_l2

FIELD = L.NeuralODE(3)
THETA = FIELD.init(jax.random.key(0))
X0 = jnp.array([0.3, -0.5, 0.8])

SLOW = pytest.mark.slow   # each case compiles three second-order programs of both sides
CASES = [
    pytest.param("rk4", I.StoreAll(), marks=SLOW),
    pytest.param("rk4", I.StoreStages(), marks=SLOW),
    ("midpoint", I.StoreStages()),
    pytest.param("rk4", I.Checkpoint(levels=2), marks=SLOW),
    pytest.param("gauss-legendre-2", I.StoreStages(), marks=SLOW),
    pytest.param("reversible-heun", I.Reversible(), marks=SLOW),
]


def losses(scheme, memory):
    """`l(theta, x0)` through `solve` (the least-action gradient) and through the plain scan."""
    system = I.discretise(FIELD, I.uniform_grid(1.0, 12), scheme)

    def through_solve(theta, x0):
        states = I.solve(system, theta, x0, memory=memory, saveat=(6, 12))
        return jnp.sum(jnp.sin(states)) + jnp.sum(states[-1] ** 4)

    def through_scan(theta, x0):
        xs = I.forward(system, theta, x0)
        states = jnp.stack([system.project(xs[6]), system.project(xs[12])])
        return jnp.sum(jnp.sin(states)) + jnp.sum(states[-1] ** 4)

    return through_solve, through_scan


@pytest.mark.parametrize("scheme, memory", CASES, ids=lambda c: str(c))
def test_hessian_and_hvp_equal_autodiff_of_the_scan(scheme, memory):
    """Each derivative is compiled whole by `jax.jit` (dispatched op by op, the six second-order
    programs took 20 s on one core instead of 8)."""
    got, reference = losses(scheme, memory)
    hessian = jax.jit(jax.hessian(got, argnums=1))(THETA, X0)
    assert rel_l2(hessian, jax.jit(jax.hessian(reference, argnums=1))(THETA, X0)) <= 1e-12
    mixed = jax.jit(jax.jacfwd(jax.grad(got, argnums=1), argnums=0))(THETA, X0)
    assert rel_l2(mixed, jax.jit(jax.jacfwd(jax.grad(reference, argnums=1), argnums=0))(THETA, X0)) <= 1e-12
    direction = jax.tree.map(lambda a: jnp.cos(jnp.arange(a.size, dtype=a.dtype)).reshape(a.shape), THETA)

    def hvp(loss):
        return jax.jvp(lambda th: jax.grad(loss)(th, X0), (THETA,), (direction,))[1]

    assert rel_l2(jax.jit(lambda: hvp(got))(), jax.jit(lambda: hvp(reference))()) <= 1e-12


def test_reverse_over_forward_is_refused_by_name():
    got, _ = losses("rk4", I.StoreAll())
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jacrev(jax.jacfwd(got, argnums=1), argnums=1)(THETA, X0)


@pytest.mark.parametrize("memory", [I.StoreStages(), pytest.param(I.StoreAll(), marks=SLOW),
                                    pytest.param(I.Checkpoint(levels=2), marks=SLOW)], ids=lambda m: type(m).__name__)
def test_hessian_through_diffeqsolve_equals_diffrax_direct_adjoint(memory):
    """`jax.hessian` through `diffeqsolve` with a pytree state and off-grid save times, against
    diffrax's `DirectAdjoint` (forward-mode-capable autodiff of diffrax's own loop). Both Hessians
    are compiled whole by `jax.jit` (op by op, the least-action side took twice as long)."""
    term = diffrax.ODETerm(lambda t, y, a: {"q": y["v"], "v": -a * jnp.sin(y["q"]) - 0.1 * y["v"]})
    saveat = diffrax.SaveAt(ts=jnp.array([0.35, 1.0]))

    def loss(library, adjoint):
        def f(args, y0):
            sol = library.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1.0, 0.1, y0, args, saveat=saveat,
                                      adjoint=adjoint)
            return jnp.sum(sol.ys["q"] ** 2 * sol.ys["v"])

        return f

    y0 = {"q": jnp.array(0.4), "v": jnp.array(-0.2)}
    got = jax.jit(jax.hessian(loss(I, I.LeastAction(memory)), argnums=(0, 1)))(1.3, y0)
    reference = jax.jit(jax.hessian(loss(diffrax, diffrax.DirectAdjoint()), argnums=(0, 1)))(1.3, y0)
    assert rel_l2(got, reference) <= 1e-12
