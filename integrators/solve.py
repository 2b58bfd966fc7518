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
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree, Scalar

from lagrangian import LayerMaps, Loss, batched_layer


class Solution(eqx.Module):
    """The stationary point of the discrete action.

    `xs[k]` and `ps[k]`, `k = 0..N`, are the forward and conjugate fields (an
    array with leading axis `N + 1`, or a tuple when widths change); `grad` is
    `dl/dtheta` with the structure of `theta`; `grad_x0 = p_0`; `loss = l(x_N)`.
    """

    xs: Array | tuple[Array, ...]
    ps: Array | tuple[Array, ...]
    grad: PyTree
    loss: Scalar

    @property
    def grad_x0(self) -> Array:
        return self.ps[0]


def _conjugate_step(system: LayerMaps, k, x, theta_k, p_next):
    """`system.conjugate` for one state or, by `jax.vmap`, a batch (theta-cotangents summed)."""
    if x.ndim == 1:
        return system.conjugate(k, x, theta_k, p_next)
    p, g = jax.vmap(system.conjugate, in_axes=(None, 0, None, 0))(k, x, theta_k, p_next)
    return p, jax.tree.map(lambda a: jnp.sum(a, axis=0), g)


def _stack(first: Array, rest: Array) -> Array:
    return jnp.concatenate([first[None], rest], axis=0)


@eqx.filter_jit
def forward(system: LayerMaps, theta: PyTree, x0: Array):
    """The forward sweep `x_{k+1} = Phi_k(x_k, theta_k)`: all states `x_0..x_N`.

    Plain JAX operations: `jax.grad` through this function is the reference the
    least-action sweep is checked against.
    """
    if system.layout == "unrolled":
        xs = [x0]
        for k in range(system.depth):
            xs.append(batched_layer(system, k, xs[-1], theta[k]))
        return tuple(xs)

    def body(x, inputs):
        k, theta_k = inputs
        x_next = batched_layer(system, k, x, system.theta_at(theta, k) if theta_k is None else theta_k)
        return x_next, x_next

    per_layer = theta if system.layout == "stacked" else None
    _, tail = jax.lax.scan(body, x0, (jnp.arange(system.depth), per_layer))
    return _stack(x0, tail)


@eqx.filter_jit
def _conjugate_sweep(system: LayerMaps, theta: PyTree, xs, p_final: Array):
    """The backward sweep from `p_N`, reading the stored states `xs`."""
    if system.layout == "unrolled":
        ps, grads = [p_final], []
        for k in reversed(range(system.depth)):
            p, g = _conjugate_step(system, k, xs[k], theta[k], ps[0])
            ps.insert(0, p)
            grads.insert(0, g)
        return tuple(ps), tuple(grads)

    ks = jnp.arange(system.depth)
    if system.layout == "stacked":

        def body(p_next, inputs):
            k, x, theta_k = inputs
            p, g = _conjugate_step(system, k, x, theta_k, p_next)
            return p, (p, g)

        _, (ps, grads) = jax.lax.scan(body, p_final, (ks, xs[:-1], theta), reverse=True)
        return jnp.concatenate([ps, p_final[None]]), grads

    def body_shared(carry, inputs):
        p_next, total = carry
        k, x = inputs
        p, g = _conjugate_step(system, k, x, theta, p_next)
        return (p, jax.tree.map(jnp.add, total, g)), p

    zero = jax.tree.map(jnp.zeros_like, theta)
    (_, grads), ps = jax.lax.scan(body_shared, (p_final, zero), (ks, xs[:-1]), reverse=True)
    return jnp.concatenate([ps, p_final[None]]), grads


def sweep(system: LayerMaps, theta: PyTree, x0: Array, loss: Loss, check: bool = True) -> Solution:
    """Solve the stationarity conditions of `S_d`: forward pass, conjugate field, gradient.

    Args:
        system: the layer maps `Phi_k` (an MLP, a ResNet, a discretised field...).
        theta: parameters, a pytree matching `system.init`.
        x0: initial state `(n,)` or batch `(B, n)`.
        loss: the terminal loss `l(x_N)` (batch-averaged).
        check: validate shapes and finiteness first (a clear `ValueError` otherwise).
    """
    x0 = jnp.asarray(x0)
    if check:
        system.check(theta, x0)
    xs = forward(system, theta, x0)
    value, p_final = loss.grad(xs[-1])
    ps, grads = _conjugate_sweep(system, theta, xs, p_final)
    return Solution(xs=xs, ps=ps, grad=grads, loss=value)


@eqx.filter_jit
def tangent_sweep(system: LayerMaps, theta: PyTree, xs: Sequence[Array], v0: Array):
    """Tangents `v_{k+1} = (dPhi_k/dx_k) v_k` along stored states (`jax.jvp` of one layer map)."""

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
        k, x, theta_k = inputs
        v_next = step(k, x, theta if theta_k is None else theta_k, v)
        return v_next, v_next

    per_layer = theta if system.layout == "stacked" else None
    _, tail = jax.lax.scan(body, v0, (jnp.arange(system.depth), xs[:-1], per_layer))
    return _stack(v0, tail)


def tension(system: LayerMaps, theta: PyTree, x0: Array, loss: Loss, beta: float):
    """Solve the doubled action `S_beta[x+, x-]` of DESIGN.md 2.2.

    Stationarity in `x-` moves `x+` along the forward pass; stationarity in `x+`
    sends the tension `x-` backward from `x-_N = beta * grad l(x+_N)`. Returns
    `(x_plus, x_minus, dS_beta/dtheta)`; the identities `x- = beta * p` and
    `dS_beta/dtheta = beta * dl/dtheta` are what the tests check.
    """
    beta = float(beta)
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    x_plus = forward(system, theta, x0)
    _, grad_l = loss.grad(x_plus[-1])
    x_minus, grad = _conjugate_sweep(system, theta, x_plus, beta * grad_l)
    return x_plus, x_minus, grad
