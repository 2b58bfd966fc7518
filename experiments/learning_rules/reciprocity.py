"""EP and DP on imperfect substrates: mismatched feedback couplings and thermal noise, beside the
least-action relaxations of `integrators.substrate` on the same network.

Written for `lagrangian.MLP` (`x_{k+1} = sigma(W_k x_k + b_k)`). A feedback coupling `B_k`
(`integrators.mismatched_feedback`) replaces `W_k` wherever a rule sends a signal backward:

- EP (`ep_substrate`): the nudged phases of the layered energy
  `F_s = sum_k 0.5 |e_{k+1}|^2 + s beta l(x_N)`, `e_{k+1} = x_{k+1} - Phi_k(x_k)`, relaxed by
  the Langevin dynamics `x_k <- x_k - eta dF_s/dx_k + sqrt(2 T eta) xi` from the forward pass,
  with the backward term of `dF/dx_k = e_k - (dPhi_k/dx_k)_B^T e_{k+1}` through `B_k`;
  `dF/dtheta_k = -(dPhi_k/dtheta_k)^T e_{k+1}` averaged over the last `window` steps of each
  phase, and the symmetric estimate `(dF/dtheta|_{+beta} - dF/dtheta|_{-beta}) / (2 beta)`. With
  `B = W` and `T = 0` it is the symmetric EP of `equilibrium_propagation` (an `O(beta^2)` bias),
  whose nudge `beta` weights each sample's loss: `beta` here weights the batch-mean loss, so
  `beta` here is `B beta` there for a batch of `B`.
- DP (`dp_substrate`): the dyadic inference of `dual_propagation.infer` (variant "dp") with the
  feedback `f_k = B_k^T (s+_{k+1} - s-_{k+1})`; with `B = W` it is `dual_propagation` exactly.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

import integrators
import lagrangian

from .dual_propagation import _activation, check_mlp, schedule
from .inference import sample_losses


def _pullback(system, k, x, theta_k, v, feedback_k):
    """`((dPhi_k/dx_k)_B^T v, (dPhi_k/dtheta_k)^T v)` on a batch, per sample (the `B_k` correction
    needs the per-sample `(dPhi_k/db_k)^T v`), the theta part summed over the batch."""

    def one(x_, v_):
        back, grads = system.conjugate(k, x_, theta_k, v_)
        if feedback_k is not None:
            back = back + (feedback_k - theta_k["W"]).T @ grads["b"]
        return back, grads

    back, grads = jax.vmap(one)(x, v)
    return back, jax.tree.map(lambda g: jnp.sum(g, axis=0), grads)


def ep_substrate(system: lagrangian.MLP, theta: PyTree, x0: Array, loss: lagrangian.Loss, beta: float,
                 key: PRNGKeyArray, feedback=None, temperature: float = 0.0, iterations: int = 2000,
                 eta: float = 0.3, window: int = 1) -> PyTree:
    """Symmetric EP on a substrate (module docstring): `x0` a batch `(B, n_0)`; returns the estimate of
    `dl/dtheta` in the structure of `theta`. The descent on `F` is explicit: `eta` must stay below
    `2 / lambda_max` of its Hessian (`eta = 0.5` diverged on a 4-6-6-2 tanh MLP, `0.3` converged).

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> ep_substrate(net, theta, jnp.ones((4, 2)), lagrangian.SquaredError(), 1e-3, jax.random.key(1))[1]["W"].shape
        (1, 3)
    """
    check_mlp(system)
    return _ep(system, theta, jnp.asarray(x0), loss, jnp.asarray(beta, jnp.float64), key, feedback,
               jnp.asarray(temperature, jnp.float64), int(iterations), float(eta), int(window))


@eqx.filter_jit
def _ep(system, theta, x0, loss, beta, key, feedback, temperature, iterations, eta, window):
    n = system.depth
    fb = feedback if feedback is not None else (None,) * n
    scale = jnp.sqrt(2.0 * temperature * eta)

    def forces(xs, sign):
        errors = [xs[k + 1] - system.apply(k, xs[k], theta[k]) for k in range(n)]
        pulled = [_pullback(system, k, xs[k], theta[k], errors[k], fb[k]) for k in range(n)]
        _, grad_l = loss.grad(xs[n])
        d = [errors[k - 1] - pulled[k][0] for k in range(1, n)] + [errors[n - 1] + sign * beta * grad_l]
        read = tuple(jax.tree.map(lambda g: -g, pulled[k][1]) for k in range(n))
        return d, read

    def phase(sign, key):
        xs0 = tuple(integrators.forward(system, theta, x0))

        def step(carry, key):
            free, total, i = carry
            d, _ = forces((x0, *free), sign)
            keys = jax.random.split(key, n)
            free = tuple(f - eta * g + scale * jax.random.normal(k, f.shape, f.dtype)
                         for f, g, k in zip(free, d, keys))
            _, read = forces((x0, *free), sign)
            on = (i >= iterations - window).astype(x0.dtype)
            total = jax.tree.map(lambda t, r: t + on * r, total, read)
            return (free, total, i + 1), None

        zero = jax.tree.map(jnp.zeros_like, theta)
        (_, total, _), _ = jax.lax.scan(step, (xs0[1:], zero, 0), jax.random.split(key, iterations))
        return jax.tree.map(lambda t: t / window, total)

    k_plus, k_minus = jax.random.split(key)
    plus, minus = phase(1.0, k_plus), phase(-1.0, k_minus)
    return jax.tree.map(lambda a, b: (a - b) / (2.0 * beta), plus, minus)


def dp_substrate(system: lagrangian.MLP, theta: PyTree, x0: Array, loss: lagrangian.Loss, beta: float,
                 feedback=None, alpha: float = 0.5, passes: int = 20) -> PyTree:
    """Dual propagation ("dp" variant, `passes` inference sweeps) with the feedback through `B_k`;
    the contrastive estimate `-delta_{k+1} s_bar_k^T / beta` in the structure of `theta`.

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> dp_substrate(net, theta, jnp.ones((4, 2)), lagrangian.SquaredError(), 1e-3)[1]["W"].shape
        (1, 3)
    """
    check_mlp(system)
    n = system.depth
    fb = feedback if feedback is not None else tuple(theta[k]["W"] for k in range(n))
    lfn, targets = sample_losses(loss, x0.shape[0])
    out_act = lagrangian.activation("identity") if system.readout else lagrangian.activation(system.activation)

    def output_loss_gradient(a):
        def one(a_, t):
            value, pull = jax.vjp(lambda z: lfn(out_act(z), t), a_)
            return pull(jnp.ones_like(value))[0]

        return jax.vmap(one, in_axes=(0, None if targets is None else 0))(a, targets)

    def pre(k, s):
        return s @ theta[k]["W"].T + theta[k]["b"]

    xs = integrators.forward(system, theta, x0)
    plus = [*xs[:-1], pre(n - 1, xs[n - 1])]
    minus = list(plus)
    for i in schedule(n, passes):
        s_bar = alpha * plus[i - 1] + (1 - alpha) * minus[i - 1]
        a = pre(i - 1, s_bar)
        if i == n:
            g = beta * output_loss_gradient(a)
            plus[n], minus[n] = a - alpha * g, a + (1 - alpha) * g
        else:
            f = (plus[i + 1] - minus[i + 1]) @ fb[i]
            act = _activation(system, i - 1)
            plus[i], minus[i] = act(a + alpha * f), act(a - (1 - alpha) * f)
    batch = x0.shape[0]
    grads = []
    for k in range(n):
        s_bar = alpha * plus[k] + (1 - alpha) * minus[k]
        delta = plus[k + 1] - minus[k + 1]
        grads.append({"W": -delta.T @ s_bar / (beta * batch), "b": -jnp.sum(delta, axis=0) / (beta * batch)})
    return tuple(grads)
