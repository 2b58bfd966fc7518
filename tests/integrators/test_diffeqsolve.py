"""`integrators.diffeqsolve` against `diffrax.diffeqsolve` on diffrax's own kinds of gradient test.

The problems follow diffrax's gradient tests: an equinox-module field with `args`, a
pytree state `{"a": (3,), "b": (1,)}`, save times on and off the step grid, reverse
time, gradients with respect to `y0`, the module's arrays, `args`, `t0` and `t1`, and
adaptive `PIDController` steps. Reference: `diffrax.diffeqsolve(...,
adjoint=RecursiveCheckpointAdjoint())`, i.e. reverse-mode autodiff through diffrax's own
solve, an independent implementation of the same discrete map. Tolerance: 1e-12
relative L2 over all values and gradients (1e-10 for implicit solvers, whose stages
both libraries solve by Newton to 1e-13).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
import pytest

import integrators as I
from tests.helpers import rel_l2


class Field(eqx.Module):
    """`f(t, y, args)` on the pytree state `{"a": (3,), "b": (1,)}`, with arrays and `args`."""

    W: jax.Array
    c: jax.Array

    def __call__(self, t, y, args):
        return {"a": jnp.tanh(self.W @ y["a"] + self.c) * args + t * y["b"], "b": -args * y["a"][:1] ** 2}


FIELD = Field(W=jax.random.normal(jax.random.key(0), (3, 3)) / 2, c=jnp.array([0.1, -0.2, 0.3]))
Y0 = {"a": jnp.array([1.0, 0.5, -0.3]), "b": jnp.array([0.2])}
ARGS = 0.7

IMPLICIT = (diffrax.ImplicitEuler, diffrax.Kvaerno3, diffrax.Kvaerno4, diffrax.Kvaerno5)
SOLVERS = [diffrax.Euler, diffrax.Heun, diffrax.Midpoint, diffrax.Ralston, diffrax.Bosh3, diffrax.Tsit5,
           diffrax.Dopri5, diffrax.Dopri8, diffrax.ReversibleHeun, *IMPLICIT]


def solver_of(cls):
    """The solver as both libraries use it: implicit stages Newton-solved to 1e-13."""
    return cls(root_finder=optx.Newton(rtol=1e-13, atol=1e-13)) if cls in IMPLICIT else cls()


def memories(cls):
    """Every memory strategy that applies to the solver's scheme."""
    found = [I.StoreAll(), I.StoreStages(), I.Checkpoint(levels=2), I.Checkpoint.logarithmic()]
    return found + [I.Reversible()] if cls is diffrax.ReversibleHeun else found


def loss_of(library, solver, saveat, adjoint=None, **kwargs):
    """`l(field, y0, args, t0, t1)`: a nonlinear function of every saved state."""
    extra = {} if adjoint is None else {"adjoint": adjoint}

    def loss(field, y0, args, t0, t1):
        sol = library.diffeqsolve(diffrax.ODETerm(field), solver, t0, t1, kwargs.get("dt0"), y0, args,
                                  saveat=saveat, **{k: v for k, v in kwargs.items() if k != "dt0"}, **extra)
        return jnp.sum(jnp.sin(sol.ys["a"])) + jnp.sum(sol.ys["b"] ** 2) + jnp.sum(sol.ts ** 2), sol

    return loss


def values_and_grads(loss, *args):
    (value, sol), grads = jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True)(*args)
    return value, sol.ts, sol.ys, grads


TOL = {cls: 1e-10 if cls in IMPLICIT else 1e-12 for cls in SOLVERS}

FAST = {(diffrax.Tsit5, "forward", "StoreStages"), (diffrax.ReversibleHeun, "reverse", "Reversible")}
"""The cases of the default suite; the others (every solver in both directions, every memory
strategy) are `slow`: each compiles two programs of second-order size, 5-15 s on 2 cores."""

CASES = [pytest.param(cls, direction, memory, id=f"{cls.__name__}-{direction}-{memory}",
                      marks=() if (cls, direction, type(memory).__name__) in FAST else pytest.mark.slow)
         for cls in SOLVERS for direction in ("forward", "reverse") for memory in memories(cls)]


@pytest.mark.parametrize("cls, direction, memory", CASES)
def test_agrees_with_diffrax(cls, direction, memory):
    """Values and gradients (field arrays, pytree `y0`, `args`, `t0`, `t1`) with save times on
    the grid (`t0`, `t1`) and off it (0.25, 0.75 with `dt0 = 0.1`), for every memory strategy,
    under `jax.jit` (so `t0`, `t1` are traced: the grid is padded to `max_steps` with steps of
    zero length, and the save times are located while tracing)."""
    solver = solver_of(cls)
    t0, t1, dt0 = (0.0, 1.0, 0.1) if direction == "forward" else (1.0, 0.0, -0.1)
    saveat = diffrax.SaveAt(t0=True, ts=jnp.linspace(t0, t1, 5), t1=True)
    args = (FIELD, Y0, ARGS, t0, t1)

    def run(library, adjoint=None):
        loss = loss_of(library, solver, saveat, adjoint, dt0=dt0, max_steps=16)
        return jax.jit(lambda *a: values_and_grads(loss, *a))(*args)

    assert rel_l2(run(I, I.LeastAction(memory)), run(diffrax)) <= TOL[cls]


def test_concrete_grid_agrees_with_diffrax():
    """Outside `jax.jit` the grid has exactly `N` steps and the save times are located on it
    (only the states of the steps that hold them are saved)."""
    saveat = diffrax.SaveAt(ts=jnp.array([0.0, 0.25, 0.3, 0.75, 0.95]))
    args = (FIELD, Y0, ARGS, 0.0, 0.95)
    reference = values_and_grads(loss_of(diffrax, diffrax.Dopri5(), saveat, dt0=0.1), *args)
    got = values_and_grads(loss_of(I, diffrax.Dopri5(), saveat, I.LeastAction(I.Checkpoint(levels=2)), dt0=0.1),
                           *args)
    assert rel_l2(got, reference) <= 1e-12


@pytest.mark.parametrize("cls", [diffrax.Heun, pytest.param(diffrax.Dopri5, marks=pytest.mark.slow)],
                         ids=lambda c: c.__name__)
def test_pid_controller_agrees_with_diffrax(cls):
    """Adaptive steps: the accepted grid is diffrax's own; the gradient is that of the accepted
    steps, as diffrax's `RecursiveCheckpointAdjoint` computes it."""
    controller = diffrax.PIDController(rtol=1e-6, atol=1e-8)
    saveat = diffrax.SaveAt(ts=jnp.array([0.3, 1.0, 2.0]))
    kwargs = dict(dt0=0.05, stepsize_controller=controller)
    args = (FIELD, Y0, ARGS, 0.0, 2.0)
    reference = values_and_grads(loss_of(diffrax, cls(), saveat, **kwargs), *args)
    got = values_and_grads(loss_of(I, cls(), saveat, I.LeastAction(I.StoreStages()), **kwargs), *args)
    reference_grads, got_grads = reference[3][:3], got[3][:3]   # t0, t1 move diffrax's controller too
    assert rel_l2(got[:3], reference[:3]) <= 1e-12
    assert rel_l2(got_grads, reference_grads) <= 1e-12


def test_step_to_and_saved_steps_agree_with_diffrax():
    """`StepTo(ts)` on an uneven grid, saving every step (`SaveAt(steps=True)`, padded with inf)."""
    grid = jnp.array([0.0, 0.1, 0.35, 0.4, 0.8, 1.0])
    kwargs = dict(stepsize_controller=diffrax.StepTo(grid), max_steps=8)
    saveat = diffrax.SaveAt(steps=True)

    def finite_loss(library, adjoint=None):
        extra = {} if adjoint is None else {"adjoint": adjoint}

        def loss(field, y0, args):
            sol = library.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, 1.0, None, y0, args,
                                      saveat=saveat, **kwargs, **extra)
            finite = jnp.isfinite(sol.ts)
            return jnp.sum(jnp.where(finite, jnp.sin(sol.ts) * jnp.cos(sol.ys["a"][:, 0]), 0.0)), sol

        return loss

    (ref, ref_sol), ref_grad = jax.value_and_grad(finite_loss(diffrax), argnums=(0, 1, 2), has_aux=True)(
        FIELD, Y0, ARGS)
    (got, got_sol), got_grad = jax.value_and_grad(finite_loss(I, I.LeastAction()), argnums=(0, 1, 2),
                                                  has_aux=True)(FIELD, Y0, ARGS)
    assert jnp.array_equal(jnp.isinf(got_sol.ts), jnp.isinf(ref_sol.ts))
    assert rel_l2((got, got_grad), (ref, ref_grad)) <= 1e-12


@pytest.mark.parametrize("cls", [diffrax.Heun, pytest.param(diffrax.Dopri5, marks=pytest.mark.slow)],
                         ids=lambda c: c.__name__)
def test_jit_and_save_time_gradients(cls):
    """Under `jax.jit` with traced save times (their gradient is the dense interpolant's slope:
    linear for Heun, Dopri5's own quartic interpolant)."""
    def loss(library, adjoint=None):
        extra = {} if adjoint is None else {"adjoint": adjoint}

        def f(save_ts, args):
            sol = library.diffeqsolve(diffrax.ODETerm(FIELD), cls(), 0.0, 1.0, 0.1, Y0, args,
                                      saveat=diffrax.SaveAt(ts=save_ts), **extra)
            return jnp.sum(sol.ys["a"] ** 3)

        return jax.jit(jax.grad(f, argnums=(0, 1)))

    save_ts = jnp.array([0.05, 0.3, 0.55, 1.0])
    assert rel_l2(loss(I, I.LeastAction())(save_ts, ARGS), loss(diffrax)(save_ts, ARGS)) <= 1e-12


@pytest.mark.parametrize("memory", [I.StoreAll(), I.Reversible(),
                                    pytest.param(I.Checkpoint.logarithmic(), marks=pytest.mark.slow)], ids=repr)
def test_semi_implicit_euler_agrees_with_diffrax(memory):
    """`SemiImplicitEuler` on `terms = (ODETerm(f_1), ODETerm(f_2))`, `y = (q, v)` with time-dependent
    `f_1(t, v)`, `f_2(t, q)`, backward in time, saved off the grid: the project's splitting
    `semi-implicit-euler` (drift then kick, both at `t_k`); `Reversible()` undoes it shear by
    shear. Tolerance 1e-12 relative L2 over values and gradients."""
    weight = jax.random.normal(jax.random.key(1), (3, 3)) / 2
    terms = (diffrax.ODETerm(lambda t, v, a: v * a + 0.1 * t),
             diffrax.ODETerm(lambda t, q, a: -jnp.tanh(weight @ q) * (1 + t)))
    y0 = (jnp.array([1.0, 0.5, -0.3]), jnp.array([0.2, 0.0, 0.1]))
    saveat = diffrax.SaveAt(ts=jnp.array([0.77, 0.3]), t1=True)

    def run(library, adjoint=None):
        extra = {} if adjoint is None else {"adjoint": adjoint}

        def loss(y0, args):
            sol = library.diffeqsolve(terms, diffrax.SemiImplicitEuler(), 1.0, 0.0, -0.05, y0, args, saveat=saveat,
                                      **extra)
            return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(sol.ys)), sol.ys

        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(y0, 0.7)

    assert rel_l2(run(I, I.LeastAction(memory)), run(diffrax)) <= 1e-12


DENSE = [(diffrax.Tsit5, "forward"), (diffrax.ReversibleHeun, "reverse"),
         *[pytest.param(cls, direction, marks=pytest.mark.slow) for cls, direction in
           [(diffrax.Heun, "forward"), (diffrax.Dopri8, "reverse"), (diffrax.Kvaerno4, "forward")]]]


@pytest.mark.parametrize("cls, direction", DENSE, ids=lambda x: getattr(x, "__name__", x))
def test_dense_output_agrees_with_diffrax(cls, direction):
    """`SaveAt(dense=True)`: `sol.evaluate(t)` and `sol.derivative(t)` at times off the grid, and
    their gradients (field arrays, pytree `y0`, `args`), against diffrax's dense interpolation
    differentiated by `RecursiveCheckpointAdjoint`. Tolerance as for the saved states."""
    t0, t1, dt0 = (0.0, 1.0, 0.1) if direction == "forward" else (1.0, 0.0, -0.1)
    times = jnp.array([0.03, 0.31, 0.5, 0.77, 0.999])
    times = times if direction == "forward" else 1.0 - times

    def loss(library, adjoint=None):
        extra = {} if adjoint is None else {"adjoint": adjoint}

        def f(field, y0, args):
            sol = library.diffeqsolve(diffrax.ODETerm(field), solver_of(cls), t0, t1, dt0, y0, args,
                                      saveat=diffrax.SaveAt(dense=True), **extra)
            values, slopes = jax.vmap(sol.evaluate)(times), jax.vmap(sol.derivative)(times)
            return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves((values, slopes))), (values, slopes)

        return jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(FIELD, Y0, ARGS)

    assert rel_l2(loss(I, I.LeastAction(I.StoreStages())), loss(diffrax)) <= TOL[cls]


def test_refuses_what_it_cannot_solve():
    """SDE terms, solvers with no tableau and events are refused by name."""
    term, y0 = diffrax.ODETerm(lambda t, y, a: -y), jnp.ones(2)
    with pytest.raises(TypeError, match="ODETerm"):
        I.diffeqsolve(diffrax.MultiTerm(term, term), diffrax.Euler(), 0.0, 1.0, 0.1, y0)
    with pytest.raises(TypeError, match="no scheme for the solver LeapfrogMidpoint"):
        I.diffeqsolve(term, diffrax.LeapfrogMidpoint(), 0.0, 1.0, 0.1, y0)
    with pytest.raises(TypeError, match=r"SemiImplicitEuler takes terms = \(ODETerm, ODETerm\)"):
        I.diffeqsolve(term, diffrax.SemiImplicitEuler(), 0.0, 1.0, 0.1, (y0, y0))
    with pytest.raises(ValueError, match="two parts of equal size"):
        I.diffeqsolve((term, term), diffrax.SemiImplicitEuler(), 0.0, 1.0, 0.1, (y0, jnp.ones(3)))
    with pytest.raises(ValueError, match="sign of t1 - t0"):
        I.diffeqsolve(term, diffrax.Euler(), 0.0, 1.0, -0.1, y0)
    with pytest.raises(ValueError, match="Reversible"):
        I.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1.0, 0.1, y0, adjoint=I.LeastAction(I.Reversible()))


def test_nonfinite_states_raise_under_jit_naming_the_step():
    """`throw=True` (diffrax's default): a NaN in `y0`, or a state that blows up, raises at run
    time under `jax.jit`, naming the layer index; `throw=False` reports it in `result`."""
    term = diffrax.ODETerm(lambda t, y, a: a / (0.55 - t) * y)   # a pole at t = 0.55

    @jax.jit
    def final(y0, a):
        return I.diffeqsolve(term, diffrax.Euler(), 0.0, 1.0, 0.1, y0, a).ys

    with pytest.raises(Exception, match="x0 .* holds a non-finite value"):
        jax.block_until_ready(final(jnp.array([jnp.nan]), 1.0))
    blown = diffrax.ODETerm(lambda t, y, a: a * y ** 2)
    with pytest.raises(Exception, match="non-finite .* from layer index 7 on"):
        jax.block_until_ready(jax.jit(lambda y0: I.diffeqsolve(blown, diffrax.Euler(), 0.0, 1.0, 0.1, y0, 1e3).ys)(
            jnp.array([10.0])))
    quiet = I.diffeqsolve(blown, diffrax.Euler(), 0.0, 1.0, 0.1, jnp.array([10.0]), 1e3, throw=False)
    assert quiet.result == diffrax.RESULTS.nonfinite
    assert I.diffeqsolve(term, diffrax.Euler(), 0.0, 0.5, 0.1, jnp.ones(1), 1.0).result == diffrax.RESULTS.successful
