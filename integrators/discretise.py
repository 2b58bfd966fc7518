"""`discretise`: a vector field plus a time grid plus a method is a layered system."""

import jax.numpy as jnp
from jaxtyping import Array, Float

from lagrangian import VectorField

from .discretisation import Discretisation
from .reversible import AsynchronousLeapfrog, ReversibleHeun
from .runge_kutta import RungeKutta
from .splitting import Splitting
from .tableau import SPLITTINGS, TABLEAUX, ButcherTableau, SplittingTableau, tableau

REVERSIBLE = {"reversible-heun": ReversibleHeun, "asynchronous-leapfrog": AsynchronousLeapfrog}
"""The reversible schemes by name: the `Discretisation` class `discretise` builds for each."""


def method_names() -> list[str]:
    """Every name `discretise` accepts.

    Example:
        >>> "rk4" in integrators.method_names() and "reversible-heun" in integrators.method_names()
        True
    """
    return sorted(TABLEAUX) + sorted(SPLITTINGS) + sorted(REVERSIBLE)


def discretise(
    field: VectorField,
    ts: Float[Array, " N1"],
    method: ButcherTableau | SplittingTableau | str = "euler",
    **options,
) -> Discretisation:
    """The layer maps of `field` on the grid `ts` for `method`: a `ButcherTableau`,
    a `SplittingTableau`, or a name (a tableau, a splitting, ``"reversible-heun"``
    or ``"asynchronous-leapfrog"``). `options` go to the scheme (e.g. the Newton
    `rtol`/`atol` of implicit Runge-Kutta stages).

    Example:
        >>> ode = integrators.discretise(lagrangian.NeuralODE(2), integrators.uniform_grid(1.0, 100), "rk4")
        >>> ode.depth, ode.layout
        (100, 'shared')
    """
    ts = jnp.asarray(ts)
    if isinstance(method, str):
        if method in REVERSIBLE:
            return REVERSIBLE[method](field=field, ts=ts, **options)
        if method not in TABLEAUX and method not in SPLITTINGS and not _is_alias(method):
            raise ValueError(f"unknown integrator {method!r}; choose one of {method_names()}")
        method = tableau(method)
    if isinstance(method, SplittingTableau):
        return Splitting(field=field, ts=ts, tableau=method, **options)
    if isinstance(method, ButcherTableau):
        return RungeKutta(field=field, ts=ts, tableau=method, **options)
    raise TypeError(f"method must be a tableau or a name; got {method!r}")


def _is_alias(name: str) -> bool:
    try:
        tableau(name)
        return True
    except ValueError:
        return False
