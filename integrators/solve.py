"""The one sweep that solves the stationarity conditions of the discrete action.

For `S_d = l(x_N) + sum_k p_{k+1} . (Phi_k(x_k, theta_k) - x_{k+1})`:

    forward sweep     x_{k+1} = Phi_k(x_k, theta_k),             x_0 given
    conjugate sweep   p_k = (dPhi_k/dx_k)^T p_{k+1},             p_N = grad l(x_N)
    gradient          dl/dtheta_k = (dPhi_k/dtheta_k)^T p_{k+1}

Every derivative is local: each system's `conjugate` uses `jax.vjp` of one
layer map (or of one evaluation of `f` per Runge-Kutta stage), never
`jax.grad` through the network. The loop is a `jax.lax.scan` when the layers
share a shape (layouts ``"stacked"`` and ``"shared"``) and an unrolled Python
loop under `jit` when widths change (``"unrolled"``). A batch `x0` of shape
`(B, n)` is handled by `jax.vmap` over each step; the loss averages over it.
The memory strategy (`integrators.memory`) decides where the backward sweep
gets `x_k` from: stored, recomputed from checkpoints, or reconstructed.
"""

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree, Scalar

from lagrangian import LayerMaps, Loss

from .memory import Checkpoint, Memory, Reversible, StoreAll


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


# --- one step, for one state or a batch -------------------------------------------------


def _batched(fn, x, *per_sample):
    """Apply `fn(x, *per_sample)` to one state, or `jax.vmap` it over a batch."""
    if x.ndim == 1:
        return fn(x, *per_sample)
    return jax.vmap(fn)(x, *per_sample)


def _embed(system, x0, theta):
    return _batched(lambda x: system.embed(x, theta), x0)


def _project(system, z):
    return _batched(system.project, z)


def _conjugate_step(system: LayerMaps, k, z, theta_k, p_next):
    """`system.conjugate` for one state or a batch (theta-cotangents summed over it)."""
    return system.conjugate(k, z, theta_k, p_next)


def _inverse_step(system, k, z_next, theta_k):
    return _batched(lambda z: system.inverse(k, z, theta_k), z_next)


def _masked_forward(system, theta, k, z):
    """`Phi_k(z)` for `k < N`, identity for the padding steps `k >= N`."""
    z_next = system.apply(k, z, system.theta_at(theta, k))
    return jnp.where(k < system.depth, z_next, z)


def _on_grid(system, k, pair):
    """`system` with its time grid replaced by `pair = (t_k, t_{k+1})`: its layer 0 is layer `k`."""
    return eqx.tree_at(lambda s: s.ts, system, pair)


def _grid_cotangent(system, theta_k, k, z, p_next):
    """`(dl/dt_k, dl/dt_{k+1})` through step `k`: the pullback of `p_{k+1}` by
    `jax.vjp` of this one layer map with respect to its two grid times."""
    pair = jax.lax.dynamic_slice_in_dim(system.ts, k, 2)
    _, pullback = jax.vjp(lambda pair_: _on_grid(system, k, pair_).apply(0, z, theta_k), pair)
    return pullback(p_next)[0]


def _masked_conjugate(system, theta, k, z, p_next, total, jumps=None):
    """One conjugate step, accumulated into `total = (dl/dtheta, dl/dts or None)`;
    identity for padding steps.

    `jumps[k]` (the cotangent of a saved state `x_k`) is added to `p_k`. When
    `total` carries a grid cotangent, step `k` adds its `(dl/dt_k, dl/dt_{k+1})`.
    """
    grads, grid = total
    theta_k = system.theta_at(theta, k)
    p, g = _conjugate_step(system, k, z, theta_k, p_next)
    if jumps is not None:
        p = p + jumps[k]
    valid = k < system.depth
    p = jnp.where(valid, p, p_next)
    g = jax.tree.map(lambda a: jnp.where(valid, a, jnp.zeros_like(a)), g)
    if system.layout == "stacked":
        grads = jax.tree.map(lambda total, a: total.at[k].add(a, mode="drop"), grads, g)
    else:
        grads = jax.tree.map(jnp.add, grads, g)
    if grid is not None:
        c = jnp.where(valid, _grid_cotangent(system, theta_k, k, z, p_next), 0.0)
        grid = grid.at[k].add(c[0], mode="drop").at[k + 1].add(c[1], mode="drop")
    return p, (grads, grid)


# --- spans of steps -----------------------------------------------------------------------


def _run(system, theta, z, k0, length):
    """`length` forward steps from global step `k0`, keeping only the last state.

    The step index is carried, not scanned over, so no length-`N` index array is
    materialised (memory O(1) in `N`).
    """

    def body(carry, _):
        z, k = carry
        return (_masked_forward(system, theta, k, z), k + 1), None

    (z, _), _ = jax.lax.scan(body, (z, jnp.asarray(k0)), None, length=length)
    return z


def _backward_stored(system, theta, zs, p_end, grads, ks, jumps=None):
    """The conjugate sweep over steps `ks` reading stored input states `zs[i] = z_{ks[i]}`."""

    def body(carry, inputs):
        p, total = carry
        k, z = inputs
        p, total = _masked_conjugate(system, theta, k, z, p, total, jumps)
        return (p, total), p

    (p, grads), ps = jax.lax.scan(body, (p_end, grads), (ks, zs), reverse=True)
    return p, grads, ps


def _backward_recursive(system, theta, z_start, p_end, grads, k0, level, m, jumps=None):
    """Recursive checkpointing over `m ** level` steps from global step `k0`.

    Level 1 stores its `m` states and sweeps back; level `l > 1` stores the `m`
    start states of its sub-segments and recurses into them in reverse order.
    """
    ks = k0 + jnp.arange(m)
    if level == 1:

        def store(z, k):
            return _masked_forward(system, theta, k, z), z

        _, zs = jax.lax.scan(store, z_start, ks)
        p, grads, _ = _backward_stored(system, theta, zs, p_end, grads, ks, jumps)
        return p, grads

    sub = m ** (level - 1)

    def store_starts(z, j):
        return _run(system, theta, z, k0 + j * sub, sub), z

    _, starts = jax.lax.scan(store_starts, z_start, jnp.arange(m))

    def body(carry, inputs):
        p, total = carry
        j, z = inputs
        return _backward_recursive(system, theta, z, p, total, k0 + j * sub, level - 1, m, jumps), None

    (p, grads), _ = jax.lax.scan(body, (p_end, grads), (jnp.arange(m), starts), reverse=True)
    return p, grads


# --- the sweep ----------------------------------------------------------------------------


def _terminal(system, loss, z_final, loss_weight):
    """`l(x_N)` and `p_N = w grad l(project(z_N))`: `jax.vjp` of one loss evaluation."""
    value, pullback = jax.vjp(lambda z: loss(_project(system, z)), z_final)
    return value, pullback(jnp.asarray(loss_weight, value.dtype))[0]


def _forward_pass(system, theta, z0, store: bool, saveat: tuple[int, ...] | None = None):
    """Forward sweep from `z0`: `(z_N, zs, saved)` with `zs = z_0..z_{N-1}` if `store`
    (else `None`) and `saved` the states at the indices `saveat` (else `None`)."""
    n = system.depth
    if system.layout == "unrolled":
        zs = [z0]
        for k in range(n):
            zs.append(system.apply(k, zs[-1], theta[k]))
        saved = None if saveat is None else tuple(zs[i] for i in saveat)
        return zs[-1], tuple(zs[:-1]), saved
    buffer = None
    if saveat is not None:
        indices = jnp.asarray(saveat)

        def slot(k):
            """The buffer row of step `k`, or `len(saveat)` (dropped) if it is not saved."""
            hit = indices == k
            return jnp.where(jnp.any(hit), jnp.argmax(hit), len(saveat))

        buffer = jnp.zeros((len(saveat),) + z0.shape, z0.dtype).at[slot(0)].set(z0, mode="drop")

    def body(carry, _):
        z, buf, k = carry
        z_next = _masked_forward(system, theta, k, z)
        if buf is not None:
            buf = buf.at[slot(k + 1)].set(z_next, mode="drop")
        return (z_next, buf, k + 1), (z if store else None)

    (z_final, saved, _), zs = jax.lax.scan(body, (z0, buffer, jnp.asarray(0)), None, length=n)
    return z_final, zs, saved


class _Backward(NamedTuple):
    """What the conjugate sweep returns: `p_0`, `dl/dtheta`, the conjugate field
    (`StoreAll` only), the reversible reconstruction error and `dl/dts` (when asked)."""

    p0: Array
    grad: PyTree
    ps: Array | tuple[Array, ...] | None
    reconstruction_error: Scalar | None
    grad_ts: Array | None


def _backward_pass(system, theta, z0, z_final, zs, p_final, memory, jumps=None, grid=False) -> _Backward:
    """Conjugate sweep from `p_N`.

    `ps` is the whole conjugate field for `StoreAll` (else `None`); `jumps[k]`,
    if given, is added to `p_k` (cotangents of saved intermediate states). With
    `grid`, a discretised field also gets `dl/dts`, summed step by step from the
    local cotangents of each step's two grid times.
    """
    n = system.depth
    grads = jax.tree.map(jnp.zeros_like, eqx.filter(theta, eqx.is_inexact_array))
    if system.layout == "unrolled":
        ps, grads = [p_final], [None] * n
        for k in reversed(range(n)):
            p, grads[k] = _conjugate_step(system, k, zs[k], theta[k], ps[0])
            ps.insert(0, p if jumps is None else p + jumps[k])
        return _Backward(ps[0], tuple(grads), tuple(ps), None, None)
    total = (grads, jnp.zeros_like(system.ts) if grid else None)
    if isinstance(memory, StoreAll):
        p0, (grads, grad_ts), ps = _backward_stored(system, theta, zs, p_final, total, jnp.arange(n), jumps)
        return _Backward(p0, grads, jnp.concatenate([ps, p_final[None]]), None, grad_ts)
    if isinstance(memory, Checkpoint):
        levels, m = memory.segment(n)
        p0, (grads, grad_ts) = _backward_recursive(system, theta, z0, p_final, total, 0, levels, m, jumps)
        return _Backward(p0, grads, None, None, grad_ts)
    if isinstance(memory, Reversible):

        def body(carry, _):
            z_next, p, total, k = carry
            z = _inverse_step(system, k, z_next, system.theta_at(theta, k))
            p, total = _masked_conjugate(system, theta, k, z, p, total, jumps)
            return (z, p, total, k - 1), None

        start = (z_final, p_final, total, jnp.asarray(n - 1))
        (z0_rec, p0, (grads, grad_ts), _), _ = jax.lax.scan(body, start, None, length=n)
        rec_error = jnp.max(jnp.abs(z0_rec - z0)) / jnp.maximum(jnp.max(jnp.abs(z0)), jnp.finfo(z0.dtype).tiny)
        return _Backward(p0, grads, None, rec_error, grad_ts)
    raise TypeError(f"unknown memory strategy {memory!r}")


def _pull_back_embed(system, theta, x0, p0, grads, grad_ts=None):
    """`dl/dx_0` and the gradient with `embed`'s theta-dependence added (`jax.vjp` of `embed`);
    with `grad_ts`, also `embed`'s dependence on the first grid times."""
    _, pullback = eqx.filter_vjp(lambda x, th: _embed(system, x, th), x0, theta)
    grad_x0, grad_embed = pullback(p0)
    grads = jax.tree.map(jnp.add, grads, grad_embed)
    if grad_ts is None:
        return grad_x0, grads
    _, pullback = jax.vjp(lambda pair: _embed(_on_grid(system, 0, pair), x0, theta), system.ts[:2])
    return grad_x0, grads, grad_ts.at[:2].add(pullback(p0)[0])


@eqx.filter_jit
def _sweep(system, theta, x0, loss, loss_weight, memory):
    z0 = _embed(system, x0, theta)
    store = system.layout == "unrolled" or isinstance(memory, StoreAll)
    z_final, zs, _ = _forward_pass(system, theta, z0, store)
    value, p_final = _terminal(system, loss, z_final, loss_weight)
    p0, grads, ps, rec_error, _ = _backward_pass(system, theta, z0, z_final, zs, p_final, memory)
    grad_x0, grads = _pull_back_embed(system, theta, x0, p0, grads)
    if ps is not None:
        zs = (*zs, z_final) if isinstance(zs, tuple) else jnp.concatenate([zs, z_final[None]])
    return Solution(
        xs=zs if ps is not None else None,
        ps=ps,
        grad=grads,
        grad_x0=grad_x0,
        x_final=_project(system, z_final),
        loss=value,
        reconstruction_error=rec_error,
    )


def sweep(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    memory: Memory = StoreAll(),
    loss_weight: float = 1.0,
    check: bool = True,
) -> Solution:
    """Solve the stationarity conditions of `S_d`: forward pass, conjugate field, gradient.

    Args:
        system: the layer maps `Phi_k` (an MLP, a ResNet, a discretised field...).
        theta: parameters, a pytree matching `system.init`.
        x0: initial state `(n,)` or batch `(B, n)`.
        loss: the terminal loss `l(x_N)` (batch-averaged).
        memory: `StoreAll()` (default), `Checkpoint(levels)` or `Reversible()`.
        loss_weight: `w` in `p_N = w grad l`; the sweep then returns `w dl/dtheta`
            (`w = beta` is the doubled-variable tension, DESIGN.md 2.2).
        check: validate shapes and finiteness first (a clear `ValueError` otherwise).

    Example:
        >>> system = lagrangian.MLP((2, 8, 1))
        >>> sol = integrators.sweep(system, system.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError())
        >>> len(sol.grad), sorted(sol.grad[0])    # dl/dtheta, one dict per layer
        (2, ['W', 'b'])
    """
    x0 = jnp.asarray(x0)
    if check:
        system.check(theta, x0)
    _check_memory(system, memory)
    return _sweep(system, theta, x0, loss, loss_weight, memory)


def _check_memory(system, memory):
    if not isinstance(memory, Memory):
        raise TypeError(f"memory must be a Memory strategy (StoreAll, Checkpoint, Reversible); got {memory!r}")
    if system.layout == "unrolled" and not isinstance(memory, StoreAll):
        raise ValueError(
            f"{type(system).__name__} has layers of changing shape (layout 'unrolled'); "
            f"only StoreAll memory applies to it, not {type(memory).__name__}"
        )
    if isinstance(memory, Reversible) and not hasattr(system, "inverse"):
        raise ValueError(
            f"{type(system).__name__} has no algebraic inverse; Reversible memory needs a reversible "
            "scheme (integrators.ReversibleHeun or integrators.AsynchronousLeapfrog)"
        )


@eqx.filter_jit
def forward(system: LayerMaps, theta: PyTree, x0: Array):
    """The forward sweep `x_{k+1} = Phi_k(x_k, theta_k)`: all layer states `z_0..z_N`.

    Plain JAX operations: `jax.grad` through this function is the reference the
    least-action sweep is checked against. Read the physical state with
    `system.project` (identity except for augmented-state schemes).
    """
    z0 = _embed(system, x0, theta)
    if system.layout == "unrolled":
        zs = [z0]
        for k in range(system.depth):
            zs.append(system.apply(k, zs[-1], theta[k]))
        return tuple(zs)

    def body(z, k):
        z_next = system.apply(k, z, system.theta_at(theta, k))
        return z_next, z_next

    _, tail = jax.lax.scan(body, z0, jnp.arange(system.depth))
    return jnp.concatenate([z0[None], tail])


def output(system: LayerMaps, theta: PyTree, x0: Array) -> Array:
    """The physical final state `x_N = project(z_N)` of the forward map.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 1))
        >>> integrators.output(mlp, mlp.init(jax.random.key(0)), jnp.ones((3, 2))).shape
        (3, 1)
    """
    return _project(system, forward(system, theta, x0)[-1])


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

    def step(k, x, theta_k, v):
        if x.ndim == 1:
            return system.tangent(k, x, theta_k, v)
        return jax.vmap(system.tangent, in_axes=(None, 0, None, 0))(k, x, theta_k, v)

    if system.layout == "unrolled":
        vs = [v0]
        for k in range(system.depth):
            vs.append(step(k, xs[k], theta[k], vs[-1]))
        return tuple(vs)

    def body(v, inputs):
        k, x = inputs
        v_next = step(k, x, system.theta_at(theta, k), v)
        return v_next, v_next

    _, tail = jax.lax.scan(body, v0, (jnp.arange(system.depth), xs[:-1]))
    return jnp.concatenate([v0[None], tail])


def tension(system: LayerMaps, theta: PyTree, x0: Array, loss: Loss, beta: float):
    """Solve the doubled action `S_beta[x+, x-]` of DESIGN.md 2.2.

    Stationarity in `x-` moves `x+` along the forward pass; stationarity in `x+`
    sends the tension `x-` backward from `x-_N = beta * grad l(x+_N)`. Returns
    `(x_plus, x_minus, dS_beta/dtheta)`; the identities `x- = beta * p` and
    `dS_beta/dtheta = beta * dl/dtheta` are what the tests check.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> doubled = integrators.tension(mlp, theta, x0, loss, beta=1e-3)
    """
    # an array, not a Python float: one compilation serves every beta
    solution = sweep(system, theta, x0, loss, loss_weight=jnp.asarray(beta, jnp.result_type(float)))
    return solution.xs, solution.ps, solution.grad
