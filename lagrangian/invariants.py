"""Quantities conserved by the stationary point of the action (docs/design.md 2.1).

- the bilinear invariant `p_k . v_k` along any tangent `v_{k+1} = (dPhi_k/dx) v_k`,
  equal to the directional derivative of the loss along `v_0`;
- the energy `H = p . f` when `f` does not depend on `t`;
- symplecticity of the `(x, p)` step map, `M^T J M = J`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .action import hamiltonian
from .system import VectorField


def bilinear_invariant(ps: Sequence[Array], vs: Sequence[Array]) -> Float[Array, " N1"]:
    """`[p_k . v_k for k = 0..N]` (summed over a batch axis if present).

    Example:
        >>> ps, vs = jnp.ones((3, 2)), jnp.arange(6.0).reshape(3, 2)
        >>> lagrangian.bilinear_invariant(ps, vs)
        Array([1., 5., 9.], dtype=float64)
    """
    return jnp.stack([jnp.vdot(p, v) for p, v in zip(ps, vs)])


def energy(
    field: VectorField,
    ts: Float[Array, " T"],
    xs: Float[Array, "T n"],
    ps: Float[Array, "T n"],
    theta: PyTree,
    running_cost: Callable | None = None,
) -> Float[Array, " T"]:
    """`H(t_k) = p_k . f(t_k, x_k, theta) (+ r)` along a sampled trajectory.

    Example:
        >>> osc = lagrangian.HarmonicOscillator()
        >>> theta, ts = osc.init(jax.random.key(0)), jnp.linspace(0.0, 1.0, 5)
        >>> xs = jnp.stack([jnp.cos(ts), -jnp.sin(ts)], axis=-1)
        >>> H = lagrangian.energy(osc, ts, xs, xs, theta)                   # p = x solves the conjugate equation here
        >>> bool(jnp.allclose(H, H[0], atol=1e-15))
        True
    """
    return jax.vmap(lambda t, x, p: hamiltonian(field, t, x, p, theta, running_cost))(ts, xs, ps)


def symplectic_form(n: int, dtype=jnp.float64) -> Float[Array, "2n 2n"]:
    """`J = [[0, I], [-I, 0]]` on the doubled phase space `(x, p)` with `x, p in R^n`.

    Example:
        >>> lagrangian.symplectic_form(1)
        Array([[ 0.,  1.],
               [-1.,  0.]], dtype=float64)
    """
    eye, zero = jnp.eye(n, dtype=dtype), jnp.zeros((n, n), dtype)
    return jnp.block([[zero, eye], [-eye, zero]])


def symplecticity_defect(jacobian: Float[Array, "2n 2n"]) -> Float[Array, ""]:
    """`max |M^T J M - J|` for the Jacobian `M` of a map of `(x, p)`.

    Example:
        >>> float(lagrangian.symplecticity_defect(jnp.eye(4)))   # the identity map is symplectic
        0.0
    """
    n = jacobian.shape[0] // 2
    j = symplectic_form(n, jacobian.dtype)
    return jnp.max(jnp.abs(jacobian.T @ j @ jacobian - j))
