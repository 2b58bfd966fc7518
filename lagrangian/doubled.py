"""Doubled variables of the non-conservative (Galley) formalism, docs/design.md 2.2.

Two copies `x1, x2` of the state, `x+ = (x1 + x2) / 2`, `x- = x1 - x2`. To first
order in `x-` the doubled action of a layered flow is

    S_beta[x+, x-] = beta * l(x+_N) + sum_k x-_{k+1} . ( Phi_k(x+_k) - x+_{k+1} ).

Stationarity in `x-` is the forward pass for `x+` (whatever `beta` is);
stationarity in `x+` is the conjugate recursion for `x-` with
`x-_N = beta * grad l`, so the tension between the copies is `x- = beta * p`.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxtyping import Array, PyTree, Scalar

from .action import discrete_action
from .loss import Loss
from .system import LayerMaps


def copies(x_plus: Array, x_minus: Array) -> tuple[Array, Array]:
    """`(x1, x2) = (x+ + x-/2, x+ - x-/2)`: the two physical copies.

    Example:
        >>> lagrangian.copies(jnp.array([1.0]), jnp.array([0.5]))
        (Array([1.25], dtype=float64), Array([0.75], dtype=float64))
    """
    return x_plus + 0.5 * x_minus, x_plus - 0.5 * x_minus


def mean_and_difference(x1: Array, x2: Array) -> tuple[Array, Array]:
    """`(x+, x-) = ((x1 + x2)/2, x1 - x2)`: the inverse of `copies`.

    Example:
        >>> lagrangian.mean_and_difference(jnp.array([1.25]), jnp.array([0.75]))
        (Array([1.], dtype=float64), Array([0.5], dtype=float64))
    """
    return 0.5 * (x1 + x2), x1 - x2


def doubled_action(
    system: LayerMaps,
    theta: PyTree,
    x_plus: Sequence[Array],
    x_minus: Sequence[Array],
    loss: Loss,
    beta: float,
) -> Scalar:
    """`S_beta[x+, x-] = beta l(x+_N) + sum_k x-_{k+1} . (Phi_k(x+_k) - x+_{k+1})`.

    It is the discrete action with the loss weighted by `beta` and `x-` in the
    place of `p`; for `beta != 0`, `S_beta[x+, x-] = beta * S_d[x+, x-/beta]`.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> sol = integrators.sweep(mlp, theta, x0, loss)
        >>> beta = 0.1
        >>> x_minus = jax.tree.map(lambda p: beta * p, sol.ps)              # x- = beta p
        >>> s_beta = lagrangian.doubled_action(mlp, theta, sol.xs, x_minus, loss, beta)
        >>> bool(jnp.isclose(s_beta, beta * sol.loss))                      # S_beta = beta S_d at the solution
        True
    """
    return discrete_action(system, theta, x_plus, x_minus, loss, loss_weight=beta)
