"""`sweep`: the stationary point of the discrete action, by the one loop.

For `S_d = l(x_N) + sum_k p_{k+1} . (Phi_k(x_k, theta_k) - x_{k+1})`:

    forward sweep     x_{k+1} = Phi_k(x_k, theta_k),             x_0 given
    conjugate sweep   p_k = (dPhi_k/dx_k)^T p_{k+1},             p_N = grad l(x_N)
    gradient          dl/dtheta_k = (dPhi_k/dtheta_k)^T p_{k+1}

Every derivative is local: the pullback of one layer map (`LayerMaps.linearise`:
`jax.vjp` of the map, or of one evaluation of `f` per Runge-Kutta stage), never
`jax.grad` through the network. The memory strategy (`integrators.memory`) runs
the forward and the conjugate pass; a batch `x0` of shape `(B, n)` is one
`jax.vmap` at this boundary (`LayerMaps.batched`), the loss averaging over it.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree, Scalar

from lagrangian import LayerMaps, Loss, batched

from ._loop import append, pull_back_embed, scan
from .memory import Memory, StoreAll
from .raveled import Raveling, ravel_state


class Solution(eqx.Module):
    """The stationary point of the discrete action.

    - `xs[k]`, `ps[k]`, `k = 0..N`: the forward and conjugate fields on the
      layer states (an array with leading axis `N + 1`, or a tuple when widths
      change); `None` unless the memory strategy is `StoreAll`.
    - `grad`: `dl/dtheta`, with the structure of `theta`.
    - `grad_x0`: `dl/dx_0`; `x_final`: `x_N`; `loss`: `l(x_N)`.
    - `reconstruction_error`: for `Reversible`, `max |x_0^rec - x_0| / max |x_0|`
      after the backward reconstruction; `None` otherwise.

    Example:
        >>> mlp = lagrangian.MLP((3, 4, 2))
        >>> sol = integrators.sweep(mlp, mlp.init(jax.random.key(0)), jnp.ones((5, 3)), lagrangian.SquaredError())
        >>> [x.shape for x in sol.xs], sol.grad_x0.shape, sol.x_final.shape     # widths change: xs is a tuple
        ([(5, 3), (5, 4), (5, 2)], (5, 3), (5, 2))
    """

    xs: Array | tuple[Array, ...] | None
    ps: Array | tuple[Array, ...] | None
    grad: PyTree
    grad_x0: Array
    x_final: Array
    loss: Scalar
    reconstruction_error: Scalar | None = None


def terminal(system: LayerMaps, loss: Loss, z_final, loss_weight=1.0):
    """`l(x_N)` and `p_N = w grad l(project(z_N))`: `jax.vjp` of one loss evaluation."""
    value, pullback = jax.vjp(lambda z: loss(system.project(z)), z_final)
    return value, pullback(jnp.asarray(loss_weight, value.dtype))[0]


@eqx.filter_jit
def _sweep(system, theta, x0, loss, loss_weight, memory):
    system = batched(system, x0)
    z0 = system.embed(x0, theta)
    z_final, residuals, _ = memory.forward(system, theta, z0)
    value, p_final = terminal(system, loss, z_final, loss_weight)
    back = memory.backward(system, theta, z0, z_final, residuals, p_final)
    grad_x0, grads, _ = pull_back_embed(system, theta, x0, back)
    return Solution(
        xs=back.zs,
        ps=back.ps,
        grad=grads,
        grad_x0=grad_x0,
        x_final=system.project(z_final),
        loss=value,
        reconstruction_error=back.reconstruction_error,
    )


def check_memory(system: LayerMaps, memory: Memory) -> None:
    """A `TypeError` if `memory` is not a strategy, the strategy's own `ValueError` if it
    cannot sweep `system`."""
    if not isinstance(memory, Memory):
        raise TypeError(f"memory must be a Memory strategy (e.g. integrators.StoreAll()); got {memory!r}")
    memory.check(system)


def sweep(
    system: LayerMaps,
    theta: PyTree,
    x0: Array | PyTree,
    loss: Loss,
    memory: Memory = StoreAll(),
    loss_weight: float = 1.0,
    check: bool = True,
) -> Solution:
    """Solve the stationarity conditions of `S_d`: forward pass, conjugate field, gradient.

    Args:
        system: the layer maps `Phi_k` (an MLP, a ResNet, a discretised field...).
        theta: parameters, a pytree matching `system.init`.
        x0: initial state `(n,)`, batch `(B, n)`, or one state that is a pytree of arrays
            (a discretised field on that pytree, stepped as the flat vector of its leaves:
            `x_final`, `grad_x0` and, where the layer state is `x` itself, `xs` and `ps`
            come back as pytrees, the last two with a leading axis `N + 1`).
        loss: the terminal loss `l(x_N)` (batch-averaged), or any function of the final state.
        memory: a strategy of `integrators.memory` (default `StoreAll()`).
        loss_weight: `w` in `p_N = w grad l`; the sweep then returns `w dl/dtheta`.
        check: validate shapes and finiteness first (a clear `ValueError` otherwise).

    Example:
        >>> system = lagrangian.MLP((2, 8, 1))
        >>> sol = integrators.sweep(system, system.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError())
        >>> len(sol.grad), sorted(sol.grad[0])    # dl/dtheta, one dict per layer
        (2, ['W', 'b'])
    """
    system, x0, raveling = ravel_state(system, x0)
    if check:
        system.check(theta, x0)
    check_memory(system, memory)
    if raveling is None:
        return _sweep(system, theta, x0, loss, loss_weight, memory)
    solution = _sweep(system, theta, x0, _RaveledLoss(loss, raveling), loss_weight, memory)
    layer_states = solution.xs is not None and solution.xs.shape[-1] == raveling.size
    return eqx.tree_at(
        lambda s: (s.xs, s.ps, s.grad_x0, s.x_final), solution,
        (raveling.unravel_stacked(solution.xs) if layer_states else solution.xs,
         raveling.unravel_stacked(solution.ps) if layer_states else solution.ps,
         raveling.unravel(solution.grad_x0), raveling.unravel(solution.x_final)),
        is_leaf=lambda x: x is None,
    )


class _RaveledLoss(eqx.Module):
    """`l(unravel(x))`: a loss of a pytree final state, read on the flat state."""

    loss: Loss
    raveling: Raveling

    def __call__(self, x):
        return self.loss(self.raveling.unravel(x))


@eqx.filter_jit
def forward(system: LayerMaps, theta: PyTree, x0: Array):
    """The forward sweep `x_{k+1} = Phi_k(x_k, theta_k)`: all layer states `z_0..z_N`.

    Plain JAX operations: `jax.grad` through this function is the reference the
    least-action sweep is checked against. Read the physical state with
    `system.project` (identity except for augmented-state schemes).
    """
    system = batched(system, x0)
    z0 = system.embed(x0, theta)
    z_final, zs, _ = StoreAll().forward(system, theta, z0)
    return append(zs, z_final)


def output(system: LayerMaps, theta: PyTree, x0: Array) -> Array:
    """The physical final state `x_N = project(z_N)` of the forward map.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 1))
        >>> integrators.output(mlp, mlp.init(jax.random.key(0)), jnp.ones((3, 2))).shape
        (3, 1)
    """
    x0 = jnp.asarray(x0)
    return batched(system, x0).project(forward(system, theta, x0)[-1])


@eqx.filter_jit
def tangent_sweep(system: LayerMaps, theta: PyTree, xs: Sequence[Array], v0: Array):
    """Tangents `v_{k+1} = (dPhi_k/dx_k) v_k` along stored states (`jax.jvp` of one layer map).

    Example:
        >>> mlp = lagrangian.MLP((2, 2, 2))
        >>> theta, x0 = mlp.init(jax.random.key(0)), jnp.ones(2)
        >>> sol = integrators.sweep(mlp, theta, x0, lagrangian.SquaredError())
        >>> vs = integrators.tangent_sweep(mlp, theta, sol.xs, jnp.array([1.0, 0.0]))
        >>> invariant = lagrangian.bilinear_invariant(sol.ps, vs)     # constant in k
        >>> bool(jnp.allclose(invariant, invariant[0], rtol=1e-12))
        True
    """
    system = batched(system, v0)

    def body(carry, x):
        v, k = carry
        v_next = system.tangent(k, x, system.theta_at(theta, k), v)
        return (v_next, k + 1), v_next

    _, tail = scan(system, body, (v0, 0), xs[:-1])
    return (v0, *tail) if isinstance(tail, tuple) else jnp.concatenate([v0[None], tail])


def tension(system: LayerMaps, theta: PyTree, x0: Array, loss: Loss, beta: float):
    """Solve the doubled action `S_beta[x+, x-]` (docs/design.md, doubled variables).

    Stationarity in `x-` moves `x+` along the forward pass; stationarity in `x+`
    sends the tension `x-` backward from `x-_N = beta * grad l(x+_N)`. Returns
    `(x_plus, x_minus, dS_beta/dtheta)`; the identities `x- = beta * p` and
    `dS_beta/dtheta = beta * dl/dtheta` are what the tests check. This is the
    sweep with the loss weighted by `beta`, not an independent computation.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> doubled = integrators.tension(mlp, theta, x0, loss, beta=1e-3)
    """
    # an array, not a Python float: one compilation serves every beta
    solution = sweep(system, theta, x0, loss, loss_weight=jnp.asarray(beta, jnp.result_type(float)))
    return solution.xs, solution.ps, solution.grad
