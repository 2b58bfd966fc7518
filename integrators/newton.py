"""Newton's method for the stages of an implicit step, differentiable by the implicit function theorem.

    K_{m+1} = K_m - J(K_m)^{-1} R(K_m),   J = dR/dK (dense, by `jax.jacfwd`),

stopping when `max |K_{m+1} - K_m| / (atol + rtol |K_{m+1}|) <= 1`. The root is
returned through `jax.lax.custom_root`, so `jax.grad` of anything computed from
it uses `dK/dtheta = -J^{-1} dR/dtheta` at the root instead of differentiating
the iterations. A root that has not converged after `max_steps` is an error
(`equinox.error_if`), never a silently inexact stage.

Why not `optimistix.root_find`: for the stage equations of one step (a few
dozen unknowns) it does the same dense Newton iteration, but tracing it, and
`jax.grad` through it, costs about twice as much as this loop, and an implicit
scheme traces one solve per program; the comparison harness traces hundreds.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def newton_root(
    residual, guess: Float[Array, "..."], rtol: float, atol: float, max_steps: int
) -> Float[Array, "..."]:
    """The root `K` of `residual(K) = 0` (same shape as `guess`) by Newton's method.

    Example:
        >>> def root(a):       # k^2 = a from k = 1
        ...     return integrators.newton_root(lambda k: k**2 - a, jnp.array([1.0]), 1e-14, 1e-14, max_steps=20)[0]
        >>> bool(jnp.abs(root(2.0) - jnp.sqrt(2.0)) < 1e-15)
        True
        >>> jax.grad(root)(2.0)      # implicit function theorem: 1 / (2 sqrt 2)
        Array(0.35355339, dtype=float64, weak_type=True)
    """
    if max_steps < 1 or rtol <= 0 or atol <= 0:
        raise ValueError(f"need max_steps >= 1 and positive tolerances; got {max_steps}, {rtol}, {atol}")
    shape = guess.shape

    def flat(k):
        return residual(k.reshape(shape)).reshape(-1)

    def solve(res, k0):
        def step(carry):
            k, _, m = carry
            dk = jnp.linalg.solve(jax.jacfwd(res)(k), res(k))
            return k - dk, dk, m + 1

        def unconverged(dk, k):
            return jnp.max(jnp.abs(dk) / (atol + rtol * jnp.abs(k))) > 1.0

        def cond(carry):
            k, dk, m = carry
            return (m < max_steps) & unconverged(dk, k)

        k, dk, _ = jax.lax.while_loop(cond, step, (k0, jnp.full_like(k0, jnp.inf), 0))
        return eqx.error_if(k, unconverged(dk, k), f"Newton's method did not converge in {max_steps} steps")

    def tangent_solve(linear, y):
        return jnp.linalg.solve(jax.jacfwd(linear)(y), y)

    return jax.lax.custom_root(flat, guess.reshape(-1), solve, tangent_solve).reshape(shape)
