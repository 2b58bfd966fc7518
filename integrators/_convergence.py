"""What an iterative solver does when it stops before its tolerance.

Every solver that iterates towards a stationary point (`relax`, `saddle_flow`,
`newton_in_time` here; the equilibria of `experiments.learning_rules`) reports whether its
final state met its tolerance, `converged`, beside the `residual` it measured, and acts on
an unconverged stop as its caller asks (`on_unconverged`, one of `ON_UNCONVERGED`):

- `"warn"` (the default): an `UnconvergedWarning` naming the solver, the tolerance, the
  residual and the iterations, from the running program (`jax.debug.callback`, so under
  `jit`, `vmap` and `scan` too);
- `"raise"`: an error from the compiled program (`equinox.error_if`) for callers that ask
  for strictness;
- `"ignore"`: nothing; the caller reads `converged` and `residual` itself (convergence
  curves, fixed budgets that are reported as such).

A tolerance below the rounding of the state's dtype cannot be met, so the test uses
`max(tol, tolerance_floor(dtype))`, `64 eps` (1.4e-14 in float64, 7.6e-6 in float32): a
float32 solve at rounding level counts as converged.
"""

import functools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

ON_UNCONVERGED = ("warn", "raise", "ignore")
"""What a solver does when it stops before its tolerance: warn (`UnconvergedWarning`, the
default), raise (an error from the compiled program, for callers that ask for strictness), or
ignore (the caller reads `converged` and `residual` itself)."""


class UnconvergedWarning(RuntimeWarning):
    """An iterative solver stopped at its iteration limit before its tolerance: the state it
    returned, and any estimate read from it, is not the solution's.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     flow = integrators.saddle_flow(lagrangian.ResNet(dim=2, depth=4), lagrangian.ResNet(dim=2, depth=4).init(
        ...         jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(), iterations=10)
        ...     jax.effects_barrier()
        >>> caught[0].category is integrators.UnconvergedWarning, bool(flow.converged)
        (True, False)
    """


def check_on_unconverged(on_unconverged: str) -> str:
    """`on_unconverged`, or a `ValueError` listing `ON_UNCONVERGED` (call it before any work).

    Example:
        >>> integrators.check_on_unconverged("raise")
        'raise'
    """
    if on_unconverged not in ON_UNCONVERGED:
        raise ValueError(f"on_unconverged must be one of {ON_UNCONVERGED}; got {on_unconverged!r}")
    return on_unconverged


def tolerance_floor(dtype) -> float:
    """`64 eps` of `dtype`: the smallest tolerance a residual test uses (a smaller `tol` is
    raised to it, since rounding alone leaves residuals of a few `eps`).

    Example:
        >>> integrators.tolerance_floor(jnp.float64) < 1e-13 < integrators.tolerance_floor(jnp.float32)
        True
    """
    return 64 * float(jnp.finfo(dtype).eps)


def within_tolerance(residual, size, tol: float, dtype):
    """`residual <= max(tol, tolerance_floor(dtype)) * (1 + size)`: the convergence test of
    every solver here (`size` is the largest magnitude of the state, `|x|_inf`).

    Example:
        >>> bool(integrators.within_tolerance(jnp.asarray(2e-10), jnp.asarray(1.0), 1e-10, jnp.float64))
        True
    """
    return residual <= max(float(tol), tolerance_floor(dtype)) * (1.0 + size)


def _warn(name, converged, residual, iterations, tol, hint):
    if not bool(np.all(np.asarray(converged))):
        warnings.warn(
            f"{name} stopped before its tolerance {float(tol):.0e}: residual {float(np.max(residual)):.3g} "
            f"after {int(np.max(iterations))} iterations {hint}", UnconvergedWarning, stacklevel=2)


def report_unconverged(name: str, value, converged, residual, iterations, tol: float, on_unconverged: str,
                       hint: str = "(raise the iterations); the estimate read from this state is not the solution's"):
    """`value` (any pytree: the solver's result), after acting on `converged` as
    `on_unconverged` says (`ON_UNCONVERGED`): a warning from the running program
    (`jax.debug.callback`) naming `residual` and `iterations`, or an error raised by it
    (`equinox.error_if` on the leaves of `value`), or nothing. `converged`, `residual` and
    `iterations` may be batched (under `vmap`): the warning names the largest.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     x = integrators.report_unconverged("my solver", jnp.ones(2), jnp.asarray(False), jnp.asarray(0.5),
        ...                                        jnp.asarray(10), 1e-10, "warn")
        ...     jax.effects_barrier()
        >>> str(caught[0].message).split(";")[0]
        'my solver stopped before its tolerance 1e-10: residual 0.5 after 10 iterations (raise the iterations)'
    """
    check_on_unconverged(on_unconverged)
    if on_unconverged == "warn":
        jax.debug.callback(functools.partial(_warn, name, tol=tol, hint=hint), converged, residual, iterations)
    elif on_unconverged == "raise":
        value = eqx.error_if(value, ~jnp.all(converged),
                             f"{name} stopped at its iteration limit before its tolerance {tol:.0e} "
                             "(on_unconverged='raise')")
    return value
