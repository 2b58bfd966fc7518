"""Two physical copies of the state relaxing under the one doubled Lagrangian (docs/design.md 2.2).

Two copies `x1_k, x2_k` of every layer state, `x+ = (x1 + x2)/2`, `x- = x1 - x2`, and the
doubled action of the layered flow

    S_beta[x1, x2] = beta l(x+_N) + sum_k x-_{k+1} . ( Phi_k(x+_k) - x+_{k+1} ),

with the input clamped, `x1_0 = x2_0 = x_0`. Each copy moves along the derivative of
`S_beta` with respect to itself, the first up and the second down:

    dx1_k/dtau = + dS_beta/dx1_k = dS_beta/dx-_k + (1/2) dS_beta/dx+_k,
    dx2_k/dtau = - dS_beta/dx2_k = dS_beta/dx-_k - (1/2) dS_beta/dx+_k,        k = 1..N,

where, from the local terms only,

    dS_beta/dx-_k = Phi_{k-1}(x+_{k-1}) - x+_k,
    dS_beta/dx+_k = (dPhi_k/dx_k)^T x-_{k+1} - x-_k   (k < N),    beta grad l(x+_N) - x-_N   (k = N).

In the mean and difference this is the conjugate relaxation of `integrators.relax` with
`x-` in the place of `p`: `x+` relaxes to the forward pass whatever `beta` is and
`x-` to the tension `beta p`. Nothing here calls the sweep or rescales its result:
the copies are two arrays each updated by its own force, and the tension is read as
their difference, `x1 - x2`. That difference of two numbers of size `|x+|` carries an
absolute rounding error of about `eps |x+|`, so the relative error of `x1 - x2`
against `beta p` has the floor `eps |x+| / (beta |p|)` (`rounding_floor`), which
dominates at small `beta`.

The parameter gradient is read from the copies as the derivative of the doubled action,
`dS_beta/dtheta_k = (dPhi_k/dtheta_k)^T x-_{k+1}` at `x+_k`, divided by `beta`; the force
on the clamp, `dS_beta/dx+_0 = (dPhi_0/dx_0)^T x-_1`, divided by `beta`, is `dl/dx_0`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from lagrangian import LayerMaps, Loss

from . import _local as local


class CopiesResult(eqx.Module):
    """Two relaxed copies and what is read from them.

    - `x1`, `x2`: the copies at the final `tau` (leading axis `N + 1`, or tuples when widths change);
    - `grad`: `(dS_beta/dtheta) / beta`, the gradient read from the copies; `grad_x0`: the
      force on the clamp over `beta`;
    - `force_history`: per iteration, the largest `|dS_beta/dx1|`, `|dS_beta/dx2|` over nodes `1..N`.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4)
        >>> run = integrators.relax_copies(net, net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(),
        ...                                beta=0.1, iterations=50)
        >>> run.x1.shape, run.force_history.shape
        ((5, 2), (50,))
    """

    x1: Array | tuple[Array, ...]
    x2: Array | tuple[Array, ...]
    grad: PyTree
    grad_x0: Array
    force_history: Array
    beta: Array


def doubled_forces(system: LayerMaps, theta: PyTree, loss: Loss, beta, x1, x2, feedback=None):
    """`(dS_beta/dx1, dS_beta/dx2, dS_beta/dtheta, dS_beta/dx+_0)` at the copies `x1`, `x2`.

    The entries of the forces at the clamped node `0` are zero. Every derivative is the
    pullback of one layer map at `x+_k` applied to `x-_{k+1}`; with `feedback` (`B_k`,
    `integrators.mismatched_feedback`) the backward force uses `B_k` in place of `W_k`.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> theta, loss = net.init(jax.random.key(0)), lagrangian.SquaredError()
        >>> x = jnp.ones((4, 2))
        >>> f1, f2, g, clamp = integrators.doubled_forces(net, theta, loss, 0.5, x, x)   # equal copies
        >>> f1.shape, clamp.shape                   # one force per node; the clamp's force on x_0
        ((4, 2), (2,))
    """
    x_plus = local.tmap(lambda a, b: 0.5 * (a + b), x1, x2)
    x_minus = local.tmap(lambda a, b: a - b, x1, x2)
    phi, back, grads, terminal = local.targets(system, theta, loss, local.head(x_plus), local.head(x_plus),
                                               local.tail(x_minus), x_plus[-1], loss_weight=beta,
                                               feedback=feedback)
    d_minus = local.tmap(lambda f, x: f - x, phi, local.tail(x_plus))                     # k = 1..N
    pulled = local.append_like(x_minus, back[1:], terminal)                              # k = 1..N
    d_plus = local.tmap(lambda f, x: f - x, pulled, local.tail(x_minus))                  # k = 1..N
    f1 = local.tmap(lambda m, p: m + 0.5 * p, d_minus, d_plus)
    f2 = local.tmap(lambda m, p: 0.5 * p - m, d_minus, d_plus)
    zero = jnp.zeros_like(x1[0])
    return local.stack_like(x1, zero, f1), local.stack_like(x2, zero, f2), grads, back[0]


def relax_copies(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    beta: float,
    iterations: int = 300,
    eta: float = 0.5,
) -> CopiesResult:
    """Relax the two copies for `iterations` forward-Euler steps of size `eta` in `tau`:
    `x1 += eta dS_beta/dx1`, `x2 -= eta dS_beta/dx2`, from `x1 = x2 = x_0` (or `0` when
    widths change); the input stays clamped.

    The mean relaxes to the forward pass and the difference to `beta p` exponentially (the
    conjugate relaxation's rate); `eta = 1` is the Jacobi sweep, exact after `2N + 1` steps.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(target=jnp.ones(1))
        >>> run = integrators.relax_copies(mlp, theta, x0, loss, beta=1e-2, iterations=200)
        >>> exact = jax.grad(lambda th: loss(integrators.output(mlp, th, x0)))(theta)
        >>> bool(all(jnp.allclose(a, b, rtol=1e-9, atol=0) for a, b in zip(jax.tree.leaves(run.grad), jax.tree.leaves(exact))))
        True
    """
    if not 0 < eta <= 1:
        raise ValueError(f"relaxation step eta must lie in (0, 1]; got {eta}")
    if not beta > 0:
        raise ValueError(f"the copies need a positive beta (the strength of the loss); got {beta}")
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    return _relax_copies(system, theta, x0, loss, jnp.asarray(beta, x0.dtype), int(iterations), float(eta))


@eqx.filter_jit
def _relax_copies(system, theta, x0, loss, beta, iterations, eta):
    x1, _ = local.initial_fields(system, theta, x0)
    x2 = x1

    def step(carry, _):
        x1, x2 = carry
        f1, f2, _, _ = doubled_forces(system, theta, loss, beta, x1, x2)
        x1 = local.tmap(lambda x, f: x + eta * f, x1, f1)
        x2 = local.tmap(lambda x, f: x - eta * f, x2, f2)
        return (x1, x2), jnp.maximum(local.largest(f1), local.largest(f2))

    (x1, x2), history = jax.lax.scan(step, (x1, x2), None, length=iterations)
    _, _, grads, clamp = doubled_forces(system, theta, loss, beta, x1, x2)
    return CopiesResult(x1=x1, x2=x2, grad=jax.tree.map(lambda g: g / beta, grads), grad_x0=clamp / beta,
                        force_history=history, beta=beta)


def rounding_floor(x_plus, beta, p) -> Array:
    """`eps |x+| / (beta |p|)` (2-norms over all nodes): the relative rounding error of the
    tension read as the difference `x1 - x2` of two copies of size `|x+|`.

    Example:
        >>> f"{float(integrators.rounding_floor(jnp.ones(4), 1e-6, jnp.ones(4))):.1e}"
        '2.2e-10'
    """
    norm = lambda f: jnp.sqrt(sum(jnp.sum(jnp.square(a)) for a in jax.tree.leaves(f)))
    eps = jnp.finfo(jnp.result_type(*jax.tree.leaves(x_plus))).eps
    return eps * norm(x_plus) / (beta * norm(p))
