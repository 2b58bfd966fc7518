"""`discretise`: a vector field plus a time grid plus a scheme is a layered system."""

import functools

import jax.numpy as jnp
from jaxtyping import Array, Float

from lagrangian import VectorField

from .discretisation import Discretisation
from .reversible import AsynchronousLeapfrog, ReversibleHeun, ReversibleRungeKutta, reversible_name
from .runge_kutta import RungeKutta
from .splitting import Splitting
from .tableau import SPLITTINGS, TABLEAUX, ButcherTableau, SplittingTableau, tableau

REVERSIBLE = {
    "reversible-heun": ReversibleHeun,
    "asynchronous-leapfrog": AsynchronousLeapfrog,
    **{reversible_name(t): functools.partial(ReversibleRungeKutta, base=t) for t in TABLEAUX.values() if t.explicit},
}
"""The reversible schemes on an augmented state, by name: what `discretise` builds for each
(reversible Heun, the asynchronous leapfrog, and the McCallum-Foster version
``"reversible-<tableau>"`` of every explicit tableau, whose `coupling` is an option)."""


def scheme_names() -> list[str]:
    """Every name `discretise` accepts.

    Example:
        >>> "rk4" in integrators.scheme_names() and "reversible-heun" in integrators.scheme_names()
        True
    """
    return sorted(TABLEAUX) + sorted(SPLITTINGS) + sorted(REVERSIBLE)


def discretise(
    field: VectorField,
    ts: Float[Array, " N1"],
    scheme: ButcherTableau | SplittingTableau | str = "euler",
    **options,
) -> Discretisation:
    """The layer maps of `field` on the grid `ts` stepped by `scheme`: a `ButcherTableau`,
    a `SplittingTableau`, or a name (a tableau, a splitting, ``"reversible-heun"``,
    ``"asynchronous-leapfrog"`` or ``"reversible-<explicit tableau>"``). `options` go to
    the scheme (e.g. the Newton `rtol`/`atol` of implicit Runge-Kutta stages, the
    `coupling` of a McCallum-Foster reversible scheme).

    Example:
        >>> ode = integrators.discretise(lagrangian.NeuralODE(2), integrators.uniform_grid(1.0, 100), "rk4")
        >>> ode.depth, ode.layout
        (100, 'shared')
    """
    ts = jnp.asarray(ts)
    if isinstance(scheme, str):
        if scheme in REVERSIBLE:
            return REVERSIBLE[scheme](field=field, ts=ts, **options)
        if scheme not in TABLEAUX and scheme not in SPLITTINGS and not _is_alias(scheme):
            raise ValueError(f"unknown integrator {scheme!r}; choose one of {scheme_names()}")
        scheme = tableau(scheme)
    if isinstance(scheme, SplittingTableau):
        return Splitting(field=field, ts=ts, tableau=scheme, **options)
    if isinstance(scheme, ButcherTableau):
        return RungeKutta(field=field, ts=ts, tableau=scheme, **options)
    raise TypeError(f"scheme must be a tableau or a name; got {scheme!r}")


def _is_alias(name: str) -> bool:
    try:
        tableau(name)
        return True
    except ValueError:
        return False
