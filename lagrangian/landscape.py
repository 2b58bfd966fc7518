"""The discrete action near its stationary point: a saddle in `(x, p)`.

For `S_d = w l(x_N) + sum_k p_{k+1} . (Phi_k(x_k) - x_{k+1})` with `x_0` clamped,
order the free variables as `z = (x_1 .. x_N, p_1 .. p_N)` (`M = sum_k n_k` of
each). The Hessian has the block form

    Hess S_d = [[A, B], [B^T, 0]],
    A = blockdiag( Hess_x (p_{k+1} . Phi_k)(x_k) for k = 1..N-1,  w Hess l(x_N) ),
    B[x_j, p_{k+1}] = dPhi_k/dx_k if j = k,  -I if j = k + 1,

`S_d` being linear in `p`. `B` is block bidiagonal with `-I` on its diagonal,
so `det B = (-1)^M` and the Hessian is congruent to `[[0, B], [B^T, 0]]`
(`P = [[I, 0], [-B^{-1} A / 2, I]]`, `P^T Hess P`), whose eigenvalues are
`+-sigma_i(B)`. By Sylvester's law of inertia the Hessian has exactly `M`
positive and `M` negative eigenvalues whatever `A` is: the stationary point is
a saddle of index `M`, never a minimum; when `A = 0` (linear layers, a loss
linear in `x_N`) the spectrum is exactly the pairs `+-sigma_i(B)`.

The Hessian is assembled from local pieces only: `jax.jacfwd` of one layer map
(the blocks of `B`), forward-over-reverse of one layer map contracted with
`p_{k+1}` and of one evaluation of the loss (the blocks of `A`).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .loss import Loss
from .system import LayerMaps


def action_hessian(
    system: LayerMaps,
    theta: PyTree,
    xs: Sequence[Array],
    ps: Sequence[Array],
    loss: Loss,
    loss_weight: float = 1.0,
) -> Float[Array, "2M 2M"]:
    """`Hess S_d` in `z = (x_1 .. x_N, p_1 .. p_N)` at the trajectory `(xs, ps)`
    (`xs[k]`, `ps[k]` for `k = 0..N`, one state each, no batch axis).

    Example:
        >>> mlp = lagrangian.MLP((2, 2, 2), activation="identity")
        >>> theta, loss = mlp.init(jax.random.key(0)), lagrangian.SquaredError()
        >>> sol = integrators.sweep(mlp, theta, jnp.ones(2), loss)
        >>> hess = lagrangian.action_hessian(mlp, theta, sol.xs, sol.ps, loss)     # z = (x_1, x_2, p_1, p_2)
        >>> hess.shape, lagrangian.inertia(jnp.linalg.eigvalsh(hess))            # a saddle: M positive, M negative
        ((8, 8), (4, 4, 0))
    """
    n = system.depth
    if len(xs) != n + 1 or len(ps) != n + 1:
        raise ValueError(f"need xs and ps for k = 0..{n} ({n + 1} each); got {len(xs)} and {len(ps)}")
    if any(jnp.ndim(x) != 1 for x in xs):
        raise ValueError("action_hessian takes one trajectory: every xs[k] must have shape (n_k,), no batch axis")
    dims = [int(xs[k].shape[0]) for k in range(1, n + 1)]
    offsets = np.concatenate([[0], np.cumsum(dims)])
    m = int(offsets[-1])
    hess = jnp.zeros((2 * m, 2 * m), dtype=xs[-1].dtype)

    def x_slice(k):  # x_k, k = 1..N
        return slice(int(offsets[k - 1]), int(offsets[k]))

    def p_slice(k):  # p_k, k = 1..N
        return slice(m + int(offsets[k - 1]), m + int(offsets[k]))

    for k in range(n):
        theta_k = system.theta_at(theta, k)
        phi = lambda x_, k=k, theta_k=theta_k: system.layer(k, x_, theta_k)  # noqa: E731
        eye = jnp.eye(dims[k], dtype=hess.dtype)
        hess = hess.at[x_slice(k + 1), p_slice(k + 1)].set(-eye).at[p_slice(k + 1), x_slice(k + 1)].set(-eye)
        if k == 0:
            continue  # x_0 is clamped
        jac = jax.jacfwd(phi)(xs[k])  # (n_{k+1}, n_k)
        hess = hess.at[p_slice(k + 1), x_slice(k)].set(jac).at[x_slice(k), p_slice(k + 1)].set(jac.T)
        curvature = jax.jacfwd(lambda x_, p=ps[k + 1], phi=phi: jax.vjp(phi, x_)[1](p)[0])(xs[k])
        hess = hess.at[x_slice(k), x_slice(k)].add(curvature)
    loss_curvature = jax.jacfwd(lambda x_: loss.grad(x_)[1])(xs[n])
    return hess.at[x_slice(n), x_slice(n)].add(loss_weight * loss_curvature)


def inertia(eigenvalues: Float[Array, " m"], rtol: float = 1e-10) -> tuple[int, int, int]:
    """`(positive, negative, zero)` counts, zero meaning `|lambda| <= rtol max |lambda|`.

    Example:
        >>> lagrangian.inertia(jnp.array([2.0, -1.0, 1e-14]))
        (1, 1, 1)
    """
    lam = np.asarray(eigenvalues)
    tol = rtol * np.max(np.abs(lam), initial=0.0)
    return int(np.sum(lam > tol)), int(np.sum(lam < -tol)), int(np.sum(np.abs(lam) <= tol))


def linearised_flows(hessian: Float[Array, "2M 2M"]) -> dict[str, Float[Array, "2M 2M"]]:
    """Jacobians, at the stationary point, of pseudo-time flows `dz/dtau = G grad S_d`:

    - ``"descent"``: `G = -I` (`-Hess`): unstable along the `M` negative directions;
    - ``"arrow-hurwicz"``: `G = diag(-I, +I)`, descent in `x`, ascent in `p`;
    - ``"relaxation"``: `G = [[0, I], [I, 0]]`, each variable along the derivative
      with respect to its conjugate (docs/design.md 2.6): `[[B^T, 0], [A, B]]`, block
      triangular with every eigenvalue `-1`.

    Example:
        >>> mlp = lagrangian.MLP((2, 2, 2))
        >>> theta, loss = mlp.init(jax.random.key(0)), lagrangian.SquaredError()
        >>> sol = integrators.sweep(mlp, theta, jnp.ones(2), loss)
        >>> flows = lagrangian.linearised_flows(lagrangian.action_hessian(mlp, theta, sol.xs, sol.ps, loss))
        >>> bool(jnp.allclose(jnp.linalg.eigvals(flows["relaxation"]), -1.0))   # every eigenvalue -1
        True
    """
    m = hessian.shape[0] // 2
    eye, zero = jnp.eye(m, dtype=hessian.dtype), jnp.zeros((m, m), hessian.dtype)
    swap = jnp.block([[zero, eye], [eye, zero]])
    signs = jnp.concatenate([-jnp.ones(m, hessian.dtype), jnp.ones(m, hessian.dtype)])
    return {"descent": -hessian, "arrow-hurwicz": signs[:, None] * hessian, "relaxation": swap @ hessian}
