"""`diffeqsolve` with diffrax's signature and types, differentiated by the least-action sweep.

A diffrax user switches by changing one import: `terms` is a `diffrax.ODETerm`
with `f(t, y, args)`, `solver` a diffrax solver, `saveat` a `diffrax.SaveAt`, the
step-size controller a diffrax controller, and the result a `diffrax.Solution`.
The solve runs the project's own scheme for the solver's tableau (`RungeKutta`,
`ReversibleHeun`) on the grid the controller gives; under `jax.grad` its backward
pass is the conjugate sweep of `integrators.solve` with the memory strategy of the
adjoint `LeastAction(memory=...)`: the exact gradient of the discrete map, with
respect to `y0` (any pytree of arrays of one dtype), `args` (any pytree,
equinox modules included), the arrays the term holds, `t0`, `t1` and `SaveAt(ts=...)`.

Save times between grid points are read from the solver's own dense interpolant
(diffrax's interpolation class for that solver, evaluated on the project's step),
as diffrax does; its gradient is `jax.vjp` of that one step's interpolant, whose
cotangent on `y_k` enters the conjugate field as a jump. The steps are not split
at the save times, so the discrete map is diffrax's. `SaveAt(dense=True)` returns
diffrax's `DenseInterpolation` built on the same per-step interpolants (every grid
state kept), so `sol.evaluate(t)` and its gradient are those of diffrax.

With `PIDController` the accepted grid comes from diffrax's own controller on the
forward solve (its step-size choices are not differentiated, as in diffrax, which
stops their gradient); the gradient is exact for the accepted steps, as diffrax's
`RecursiveCheckpointAdjoint` is.
"""

import math
import types
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from lagrangian import VectorField

from .differentiable import solve
from .memory import Memory, StoreAll
from .raveled import RaveledField, Raveling
from .schemes import discretise
from .tableau import (
    BOSH3, DOPRI5, DOPRI8, EULER, HEUN, IMPLICIT_EULER, KVAERNO3, KVAERNO4, KVAERNO5, MIDPOINT, RALSTON, SEMI_IMPLICIT_EULER, TSIT5,
)

SOLVERS = {
    diffrax.Euler: EULER, diffrax.Heun: HEUN, diffrax.Midpoint: MIDPOINT, diffrax.Ralston: RALSTON,
    diffrax.Bosh3: BOSH3, diffrax.Tsit5: TSIT5, diffrax.Dopri5: DOPRI5, diffrax.Dopri8: DOPRI8,
    diffrax.ImplicitEuler: IMPLICIT_EULER, diffrax.Kvaerno3: KVAERNO3, diffrax.Kvaerno4: KVAERNO4,
    diffrax.Kvaerno5: KVAERNO5, diffrax.ReversibleHeun: "reversible-heun",
    diffrax.SemiImplicitEuler: SEMI_IMPLICIT_EULER,
}
"""The diffrax solvers `diffeqsolve` accepts, and the project's scheme for each."""


class LeastAction(eqx.Module):
    """The adjoint of `integrators.diffeqsolve`: the least-action conjugate sweep, with the
    memory strategy `memory` (`StoreAll()`, `StoreStages()`, `Checkpoint(...)`, `Reversible()`
    for `diffrax.ReversibleHeun`).

    Example:
        >>> term = diffrax.ODETerm(lambda t, y, a: -a * y)
        >>> def loss(a):
        ...     sol = integrators.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1.0, 0.1, jnp.array(1.0), a,
        ...                                   adjoint=integrators.LeastAction(integrators.StoreStages()))
        ...     return sol.ys[-1]
        >>> bool(jnp.allclose(jax.grad(loss)(2.0), -jnp.exp(-2.0), rtol=1e-7))   # d/da e^{-a} at a = 2
        True
    """

    memory: Memory = StoreAll()


class _TermField(VectorField):
    """A diffrax `ODETerm` as a `VectorField` on its pytree state: `theta = (arrays of the
    term, args)`, `f(t, y, theta) = term.vf(t, y, args)` (stepped raveled, `RaveledField`)."""

    term: PyTree = eqx.field(static=True)   # the term's non-array part
    state_dim: int = eqx.field(static=True)

    def init(self, key, dtype=jnp.float64):
        raise TypeError("the parameters of diffeqsolve's field are the arrays of its ODETerm and the args of diffeqsolve")

    def __call__(self, t, y, theta):
        arrays, args = theta
        return eqx.combine(arrays, self.term).vf(t, y, args)


class _TermPair(_TermField):
    """diffrax's `(term_1, term_2)` of `SemiImplicitEuler` on the state `y = (y_1, y_2)`: the separable
    field `f(t, y) = (term_1.vf(t, y_2, args), term_2.vf(t, y_1, args))`."""

    separable: ClassVar[bool] = True

    def __call__(self, t, y, theta):
        arrays, args = theta
        term_1, term_2 = eqx.combine(arrays, self.term)
        return term_1.vf(t, y[1], args), term_2.vf(t, y[0], args)


def _refuse_unsupported(terms, solver, saveat, event, stepsize_controller):
    if isinstance(solver, diffrax.SemiImplicitEuler):
        if not (isinstance(terms, tuple) and len(terms) == 2 and all(isinstance(t, diffrax.ODETerm) for t in terms)):
            raise TypeError("diffrax.SemiImplicitEuler takes terms = (ODETerm, ODETerm): dy_1/dt = f_1(t, y_2), "
                            "dy_2/dt = f_2(t, y_1)")
    elif not isinstance(terms, diffrax.ODETerm):
        raise TypeError(f"integrators.diffeqsolve solves ODEs: terms must be a diffrax.ODETerm; got "
                        f"{type(terms).__name__} (SDE terms, MultiTerm and control terms are not supported)")
    if type(solver) not in SOLVERS:
        raise TypeError(f"integrators.diffeqsolve has no scheme for the solver {type(solver).__name__}; supported: "
                        f"{', '.join(sorted(s.__name__ for s in SOLVERS))}")
    if event is not None:
        raise ValueError("integrators.diffeqsolve does not support events")
    if not isinstance(stepsize_controller, (diffrax.ConstantStepSize, diffrax.StepTo, diffrax.PIDController)):
        raise TypeError(f"integrators.diffeqsolve supports ConstantStepSize, StepTo and PIDController; got "
                        f"{type(stepsize_controller).__name__}")
    subs = saveat.subs
    if subs is None and saveat.dense:
        return
    if not isinstance(subs, diffrax.SubSaveAt):
        raise ValueError("integrators.diffeqsolve supports one SubSaveAt, not a pytree of them")
    if subs.fn is not diffrax.SaveAt(t1=True).subs.fn:
        raise ValueError("integrators.diffeqsolve saves the state y only (SaveAt(fn=...) is not supported)")
    if subs.ts is not None and subs.steps:
        raise ValueError("integrators.diffeqsolve saves at SaveAt(ts=...) or at SaveAt(steps=True), not both")


_NOTHING = types.SimpleNamespace(t0=False, t1=False, ts=None, steps=False)
"""What `SaveAt(dense=True)` alone saves besides the interpolation (diffrax's `subs` is `None`)."""


def _value(x, name: str) -> float:
    if isinstance(x, (int, float, np.number, np.ndarray)):
        return float(x)
    try:
        return float(jax.lax.stop_gradient(x))
    except jax.errors.ConcretizationTypeError:
        raise ValueError(f"integrators.diffeqsolve needs a concrete {name} to fix the number of steps (not a value "
                         "traced under jax.jit); close over it or pass it as a static value") from None


def _grid(t0, t1, dt0, controller, max_steps, refine):
    """`(ts, grid, steps)`: the step grid `t_0 .. t_N` as an array (differentiable in `t0`, `t1`),
    as numpy values when they are concrete (else `None`), and `N`. Where the number of steps is
    not known when tracing, the grid has `max_steps` steps, those past `t1` of zero length."""
    if isinstance(controller, diffrax.StepTo):
        ts = jnp.asarray(controller.ts)
        return ts, _concrete(ts), ts.shape[0] - 1
    if isinstance(controller, diffrax.PIDController):
        ends = refine()                     # t_1 .. t_n, then inf up to max_steps
        start = jnp.reshape(jnp.asarray(t0, ends.dtype), (1,))
        grid = _concrete(ends)
        if grid is not None:
            accepted = int(np.sum(np.isfinite(grid)))
            ts = jnp.concatenate([start, ends[:accepted]])
            return ts, _concrete(ts), accepted
        return jnp.concatenate([start, jnp.where(jnp.isfinite(ends), ends, t1)]), None, ends.shape[0]
    if dt0 is None:
        raise ValueError("ConstantStepSize needs dt0")
    step = _value(dt0, "dt0")
    try:
        start, end = _value(t0, "t0"), _value(t1, "t1")
    except ValueError:
        if max_steps is None:
            raise ValueError("with t0 or t1 traced under jax.jit, ConstantStepSize needs a max_steps") from None
        steps = jnp.ceil((t1 - t0) / jnp.nextafter(dt0, jnp.inf))
        return _constant_grid(t0, t1, dt0, jnp.arange(max_steps + 1), steps), None, max_steps
    if step == 0 or (end - start) * step < 0:
        raise ValueError(f"dt0 = {step} must be non-zero and have the sign of t1 - t0 = {end - start}")
    steps = max(1, math.ceil((end - start) / np.nextafter(step, np.inf)))
    if max_steps is not None and steps > max_steps:
        raise ValueError(f"{steps} steps of dt0 = {step} exceed max_steps = {max_steps}")
    k = np.arange(steps + 1)
    return _constant_grid(t0, t1, dt0, k, steps), _constant_grid(start, end, step, k, steps, np), steps


def _constant_grid(t0, t1, dt0, k, steps, xp=jnp):
    """diffrax's `ConstantStepSize` grid: `t_1 = t0 + dt0`, then `t_k = t0 + (t1 - t0) k / N`
    (fractions of the interval, not sums of `dt0`), and `t_N = t1`; `t_k = t1` past `N`."""
    interior = xp.where(k == 1, t0 + dt0, t0 + (t1 - t0) * (k / steps))
    return xp.where(k == 0, t0, xp.where(k < steps, interior, t1))


def _concrete(x):
    """`x` as numpy values, or `None` when it is traced."""
    try:
        return np.asarray(jax.lax.stop_gradient(x))
    except jax.errors.TracerArrayConversionError:
        return None


def _step_of(grid, s, steps: int):
    """The step `k` whose interval `(t_k, t_{k+1}]` holds the save time `s` (clipped to
    `0..N-1`; `grid` increasing or decreasing; numpy or traced): as in diffrax, a time on the
    grid is read at the end of the step that reaches it."""
    xp = np if isinstance(grid, np.ndarray) and isinstance(s, (float, np.ndarray)) else jnp
    direction = 1.0 if steps == 0 else xp.sign(grid[-1] - grid[0])
    return xp.clip(xp.searchsorted(direction * grid, direction * s, side="left") - 1, 0, steps - 1)


def _dense_info(system, solver, k, y, y_next, theta) -> dict:
    """What the solver's dense interpolant of step `k` reads (diffrax's `dense_info`): `y_k`, `y_{k+1}`
    and, unless the interpolant is linear, the stage increments `k_i = h K_i` of the project's step."""
    if solver.interpolation_cls is diffrax.LocalLinearInterpolation:
        return {"y0": y, "y1": y_next}
    _, slopes = system.stages(k, y, theta)
    return {"y0": y, "y1": y_next, "k": (system.ts[k + 1] - system.ts[k]) * slopes}


def _interpolant(system, solver, k, y, y_next, theta, s):
    """The solver's dense output at time `s` in step `k` (from `y = y_k`, `y_next = y_{k+1}`): diffrax's
    interpolation class for `solver` on the project's stage values."""
    info = _dense_info(system, solver, k, y, y_next, theta)
    return solver.interpolation_cls(t0=system.ts[k], t1=system.ts[k + 1], **info).evaluate(s)


def _dense(system, solver, theta, states, ts, y0, raveling: Raveling) -> diffrax.DenseInterpolation:
    """`SaveAt(dense=True)`: diffrax's `DenseInterpolation` over every step, its infos from the grid
    states `states` (all of them, from `solve`) and the stages of each step, unraveled to the
    pytree of `y0`. Its gradient is that of the interpolant of each step (one step's stages,
    `jax.vjp` of `f` only), entering the conjugate field through the grid states. As diffrax does,
    times are stored multiplied by the direction of integration; padding steps of zero length
    (a traced adaptive grid) lie past `ts_size`."""
    k = jnp.arange(states.shape[0] - 1)
    infos = jax.vmap(lambda k_, y, y1: _dense_info(system, solver, k_, y, y1, theta))(k, states[:-1], states[1:])
    infos = {name: raveling.unravel_stacked(v) if v.ndim == 2 else jax.vmap(raveling.unravel_stacked)(v)
             for name, v in infos.items()}
    direction = jnp.where(ts[-1] >= ts[0], 1, -1).astype(ts.dtype)
    return diffrax.DenseInterpolation(
        ts=direction * ts, ts_size=1 + jnp.sum(ts[1:] != ts[:-1]), infos=infos,
        interpolation_cls=solver.interpolation_cls, direction=direction,
        t0_if_trivial=direction * ts[0], y0_if_trivial=y0,
    )


def _saved(system, solver, theta, y0, memory, subs, ts, grid, steps, max_steps, throw, dense=False):
    """`(times, ys, states)` as diffrax's `SaveAt(t0, ts, steps, t1)` orders them, with `ys` flattened,
    and, with `dense`, every grid state `y_0 .. y_N` (else `None`).

    Grid states come from `solve` (`saveat` takes their layer indices), so memory stays that
    of the strategy. A time of `SaveAt(ts=...)` is read from the solver's dense interpolant in
    the step that holds it, as diffrax does; when those times or the grid are traced (under
    `jax.jit`, or differentiated) the step is located while tracing and every grid state is kept.
    """
    save_ts = None if subs.ts is None else jnp.asarray(subs.ts, y0.dtype)
    concrete = None if save_ts is None else _concrete(save_ts)
    located = concrete is not None and grid is not None
    if save_ts is not None and located:
        k_ts = [int(_step_of(grid, float(s), steps)) for s in concrete]
        wanted = {j for k in k_ts for j in (k, k + 1)}
    else:
        wanted = set(range(steps + 1)) if save_ts is not None else set()
    if subs.t0:
        wanted.add(0)
    if subs.steps:
        wanted.update(range(1, steps + 1))
    if subs.t1:
        wanted.add(steps)
    if dense:
        wanted = set(range(steps + 1))
    indices = tuple(sorted(wanted))
    states = solve(system, theta, y0, memory=memory, saveat=indices, throw=throw) if indices else None
    position = {k: i for i, k in enumerate(indices)}
    times, ys = [], []
    if subs.t0:
        times.append(ts[:1])
        ys.append(states[position[0]][None])
    if save_ts is not None:
        if located:
            y_k = states[jnp.asarray([position[k] for k in k_ts])]
            y_next = states[jnp.asarray([position[k + 1] for k in k_ts])]
            k_ts = jnp.asarray(k_ts)
        else:
            k_ts = _step_of(ts, save_ts, steps)
            y_k, y_next = states[k_ts], states[k_ts + 1]
        interpolate = jax.vmap(lambda k, y, y1, s: _interpolant(system, solver, k, y, y1, theta, s))
        times.append(save_ts)
        ys.append(interpolate(k_ts, y_k, y_next, save_ts))
    if subs.steps:                      # diffrax pads the saved steps to max_steps with inf
        pad = (max_steps or steps) - steps
        rows = jnp.asarray([position[k] for k in range(1, steps + 1)], dtype=int)
        times.append(jnp.concatenate([ts[1:], jnp.full((pad,), jnp.inf, ts.dtype)]))
        ys.append(jnp.concatenate([states[rows], jnp.full((pad,) + y0.shape, jnp.inf, y0.dtype)]))
    if subs.t1:
        times.append(ts[-1:])
        ys.append(states[position[steps]][None])
    every = states if dense else None
    if not times:
        return None, None, every
    return jnp.concatenate(times).astype(y0.dtype), jnp.concatenate(ys), every


def _result(ts, ys):
    """diffrax's `RESULTS.successful`, or `RESULTS.nonfinite` when a saved state is NaN or inf
    (reached with `throw=False`; with `throw=True` `solve` raises first). The inf padding of
    `SaveAt(steps=True)` past the last step is not a failure."""
    if ys is None:
        return diffrax.RESULTS.successful
    padding = jnp.isinf(ts).reshape((-1,) + (1,) * (ys.ndim - 1))
    ok = jnp.all(jnp.isfinite(ys) | padding)
    return diffrax.RESULTS.where(ok, diffrax.RESULTS.successful, diffrax.RESULTS.nonfinite)


def diffeqsolve(
    terms,
    solver,
    t0,
    t1,
    dt0,
    y0: PyTree,
    args: PyTree = None,
    *,
    saveat: diffrax.SaveAt = diffrax.SaveAt(t1=True),
    stepsize_controller=diffrax.ConstantStepSize(),
    adjoint: LeastAction = LeastAction(),
    event=None,
    max_steps: int | None = 4096,
    throw: bool = True,
) -> diffrax.Solution:
    """Solve `dy/dt = f(t, y, args)` as `diffrax.diffeqsolve` does, differentiable by the least-action sweep.

    Example:
        >>> term = diffrax.ODETerm(lambda t, y, args: {"q": y["v"], "v": -args * y["q"]})
        >>> y0 = {"q": jnp.array(1.0), "v": jnp.array(0.0)}
        >>> sol = integrators.diffeqsolve(term, diffrax.Dopri5(), 0.0, 1.0, 0.01, y0, 1.0,
        ...                               saveat=diffrax.SaveAt(ts=jnp.array([0.255, 1.0])))
        >>> bool(jnp.allclose(sol.ys["q"], jnp.cos(sol.ts), atol=1e-9))          # off-grid save times
        True
    """
    _refuse_unsupported(terms, solver, saveat, event, stepsize_controller)
    if not isinstance(adjoint, LeastAction):
        raise TypeError(f"adjoint must be integrators.LeastAction(memory=...); got {type(adjoint).__name__}")
    raveling = Raveling.of(y0, name="y0")
    y0_flat = raveling.ravel(y0)
    arrays, static = eqx.partition(terms, eqx.is_array)
    if isinstance(solver, diffrax.SemiImplicitEuler):
        halves = [Raveling.of(part, name="y0[i]").size for part in y0] if isinstance(y0, tuple) and len(y0) == 2 else []
        if len(halves) != 2 or halves[0] != halves[1]:
            raise ValueError("diffrax.SemiImplicitEuler needs y0 = (y0_1, y0_2), two parts of equal size, for the "
                             "project's splitting step")
        term_field = _TermPair(term=static, state_dim=raveling.size)
    else:
        term_field = _TermField(term=static, state_dim=raveling.size)
    field = RaveledField(field=term_field, raveling=raveling)
    theta = (arrays, args)

    def refine():
        controlled = diffrax.diffeqsolve(
            terms, solver, t0, t1, dt0, y0, jax.tree.map(lambda a: jax.lax.stop_gradient(a) if eqx.is_array(a) else a, args),
            saveat=diffrax.SaveAt(steps=True),
            stepsize_controller=stepsize_controller, max_steps=max_steps, throw=throw,
        )
        return jax.lax.stop_gradient(controlled.ts)

    ts, grid, steps = _grid(t0, t1, dt0, stepsize_controller, max_steps, refine)
    system = discretise(field, ts.astype(y0_flat.dtype), SOLVERS[type(solver)])
    ts_out, ys, every = _saved(system, solver, theta, y0_flat, adjoint.memory, saveat.subs or _NOTHING, ts, grid, steps,
                               max_steps, throw, dense=saveat.dense)
    interpolation = None if every is None else _dense(system, solver, theta, every, ts, y0, raveling)
    return diffrax.Solution(
        t0=t0, t1=t1, ts=ts_out, ys=None if ys is None else raveling.unravel_stacked(ys), interpolation=interpolation,
        stats={"num_steps": steps, "num_accepted_steps": steps, "num_rejected_steps": 0, "max_steps": max_steps},
        result=_result(ts_out, ys), solver_state=None, controller_state=None, made_jump=None,
        event_mask=None,
    )
