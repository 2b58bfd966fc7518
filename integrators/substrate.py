"""Imperfect physical substrates: feedback couplings that are not the transposed forward
couplings, and thermal noise (docs/design.md 2.2, 2.6).

Reciprocity. In the action one term, `p_{k+1} . Phi_k(x_k)`, exerts both the forward drive
on `x_{k+1}` and the backward force `(dPhi_k/dx_k)^T p_{k+1}` on `p_k` (action and reaction).
A substrate that carries the backward force on a separate coupling `B_k` (as feedback
alignment does) computes instead, for layers whose pre-activation is `W_k x + b_k`,

    (dPhi_k/dx_k)_B^T p = (dPhi_k/dx_k)^T p + (B_k - W_k)^T (dPhi_k/db_k)^T p,

`B_k = W_k + delta |W_k|_F G_k / |G_k|_F` with `G_k` Gaussian (`mismatched_feedback`: the
relative mismatch is exactly `delta` in every layer). The relaxation then converges to a
conjugate field `p_B`, and the gradient read from it is off by `O(delta)`.

Noise. The relaxation as a Langevin dynamics at temperature `T`: every free variable gets
`sqrt(2 T eta) xi` per step of size `eta` (`xi` standard normal, independent per variable and
step; Euler-Maruyama of `d(x, p) = drive dtau + sqrt(2 T) dW`). The field then fluctuates
around the fixed point with a spread `~ sqrt(T)`; a substrate that accumulates the parameter
update over a window (as a synapse integrates) reads the gradient averaged over the last
`window` steps, whose error falls like `sqrt(T / window)`.

`langevin_relax` does this for the conjugate relaxation (the field `p`), `langevin_copies` for
the two physical copies of `integrators.copies`, whose tension `x1 - x2 = beta p` is of size
`beta`: the noise of the difference costs the copies a relative error `~ sqrt(T) / beta`, and
since the copies have no `O(beta^2)` bias they can use a large `beta`; what remains then is the
noise of the mean `x+`, at which the gradient is read, whose relative effect does not depend
on `beta`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from lagrangian import LayerMaps, Loss

from . import _local as local
from .copies import doubled_forces


def mismatched_feedback(system: LayerMaps, theta: PyTree, delta: float, key: PRNGKeyArray):
    """Feedback couplings `B_k = W_k + delta |W_k|_F G_k / |G_k|_F` (`G_k` standard normal), one
    per layer, in the layout of the weights (a tuple for `MLP`, a stacked array for `ResNet`).

    Example:
        >>> net = lagrangian.ResNet(dim=3, depth=4)
        >>> theta = net.init(jax.random.key(0))
        >>> b = integrators.mismatched_feedback(net, theta, 0.1, jax.random.key(1))
        >>> ratio = jnp.linalg.norm(b - theta["W"], axis=(1, 2)) / jnp.linalg.norm(theta["W"], axis=(1, 2))
        >>> bool(jnp.allclose(ratio, 0.1))
        True
    """
    weights = [theta[k]["W"] for k in range(system.depth)] if local.is_unrolled(system) else list(theta["W"])
    keys = jax.random.split(key, len(weights))
    mats = []
    for w, k in zip(weights, keys):
        g = jax.random.normal(k, w.shape, w.dtype)
        mats.append(w + delta * jnp.linalg.norm(w) * g / jnp.linalg.norm(g))
    return tuple(mats) if local.is_unrolled(system) else jnp.stack(mats)


class LangevinResult(eqx.Module):
    """The end of a noisy relaxation: the fields (or copies) at the last step, the gradient
    read at the last step (`grad`) and averaged over the last `window` steps (`averaged`).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> run = integrators.langevin_relax(net, net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(),
        ...                                  jax.random.key(1), temperature=1e-8, iterations=100, window=50)
        >>> run.xs.shape, sorted(run.averaged)
        ((4, 2), ['W', 'b'])
    """

    xs: Array | tuple[Array, ...]
    ps: Array | tuple[Array, ...]
    grad: PyTree
    averaged: PyTree


def _noise(key, fields, scale):
    """Independent `scale * N(0, 1)` on every entry but the clamped node `0`."""
    keys = jax.random.split(key, len(fields))
    if isinstance(fields, tuple):
        return tuple(jnp.zeros_like(f) if i == 0 else scale * jax.random.normal(k, f.shape, f.dtype)
                     for i, (k, f) in enumerate(zip(keys, fields)))
    noise = scale * jax.random.normal(keys[0], fields.shape, fields.dtype)
    return noise.at[0].set(0.0)


def _check(system, theta, x0, eta, temperature, iterations, window, feedback):
    if not 0 < eta <= 1 or not temperature >= 0 or not 1 <= window <= iterations:
        raise ValueError(f"Langevin relaxation needs 0 < eta <= 1, temperature >= 0 and 1 <= window <= iterations; "
                         f"got eta={eta}, temperature={temperature}, window={window}, iterations={iterations}")
    system.check(theta, x0)
    local.check_feedback(system, theta, feedback)


def langevin_relax(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    key: PRNGKeyArray,
    temperature: float = 0.0,
    iterations: int = 1000,
    eta: float = 0.5,
    window: int = 500,
    feedback=None,
) -> LangevinResult:
    """The conjugate relaxation on a substrate: backward forces through `feedback` (`B_k`; the
    transposed forward couplings if `None`), and Langevin noise at `temperature` on every
    `x_k` (`k >= 1`) and `p_k`. Forward Euler-Maruyama with step `eta`, from `x_k = x_0`
    (or `0`), `p_k = 0`; the gradient `(dPhi_k/dtheta_k)^T p_{k+1}` is read at every step and
    averaged over the last `window` steps.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> exact = jax.grad(lambda th: loss(integrators.output(mlp, th, x0)))(theta)
        >>> run = integrators.langevin_relax(mlp, theta, x0, loss, jax.random.key(1), iterations=300, window=1)
        >>> bool(all(jnp.allclose(a, b, rtol=1e-12, atol=0) for a, b in zip(jax.tree.leaves(run.grad), jax.tree.leaves(exact))))
        True
    """
    x0 = jnp.asarray(x0)
    _check(system, theta, x0, eta, temperature, iterations, window, feedback)
    return _langevin(system, theta, x0, loss, key, jnp.asarray(temperature, x0.dtype), int(iterations), float(eta),
                     int(window), feedback)


@eqx.filter_jit
def _langevin(system, theta, x0, loss, key, temperature, iterations, eta, window, feedback):
    xs, ps = local.initial_fields(system, theta, x0)
    scale = jnp.sqrt(2.0 * temperature * eta)

    def step(carry, key):
        xs, ps = carry
        phi, back, grads, p_final = local.targets(system, theta, loss, local.head(xs), local.head(xs),
                                                  local.tail(ps), xs[-1], feedback=feedback)
        x_target = local.stack_like(xs, xs[0], phi)
        p_target = local.append_like(ps, back, p_final)
        kx, kp = jax.random.split(key)
        xs = local.tmap(lambda x, t, w: x + eta * (t - x) + w, xs, x_target, _noise(kx, xs, scale))
        ps = local.tmap(lambda p, t, w: p + eta * (t - p) + w, ps, p_target, _noise(kp, ps, scale))
        return (xs, ps), None

    def read(xs, ps):
        return local.targets(system, theta, loss, local.head(xs), local.head(xs), local.tail(ps), xs[-1],
                             feedback=feedback)[2]

    return _run_and_average(step, read, (xs, ps), key, iterations, window)


def langevin_copies(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    beta: float,
    key: PRNGKeyArray,
    temperature: float = 0.0,
    iterations: int = 1000,
    eta: float = 0.5,
    window: int = 500,
    feedback=None,
) -> LangevinResult:
    """The two physical copies (`integrators.relax_copies`) on a substrate: backward forces
    through `feedback`, and independent Langevin noise at `temperature` on each copy. Returns
    `xs = x1`, `ps = x2`, and the gradient `(dS_beta/dtheta) / beta` read at the last step and
    averaged over the last `window` steps.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> theta, x0, loss = net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> exact = jax.grad(lambda th: loss(integrators.output(net, th, x0)))(theta)
        >>> run = integrators.langevin_copies(net, theta, x0, loss, 10.0, jax.random.key(1), iterations=200, window=1)
        >>> bool(jnp.allclose(run.grad["W"], exact["W"], rtol=1e-12, atol=0))
        True
    """
    if not beta > 0:
        raise ValueError(f"the copies need a positive beta; got {beta}")
    x0 = jnp.asarray(x0)
    _check(system, theta, x0, eta, temperature, iterations, window, feedback)
    return _langevin_copies(system, theta, x0, loss, jnp.asarray(beta, x0.dtype), key,
                            jnp.asarray(temperature, x0.dtype), int(iterations), float(eta), int(window), feedback)


@eqx.filter_jit
def _langevin_copies(system, theta, x0, loss, beta, key, temperature, iterations, eta, window, feedback):
    x1, _ = local.initial_fields(system, theta, x0)
    x2 = x1
    scale = jnp.sqrt(2.0 * temperature * eta)

    def step(carry, key):
        x1, x2 = carry
        f1, f2, grads, _ = doubled_forces(system, theta, loss, beta, x1, x2, feedback)
        k1, k2 = jax.random.split(key)
        x1 = local.tmap(lambda x, f, w: x + eta * f + w, x1, f1, _noise(k1, x1, scale))
        x2 = local.tmap(lambda x, f, w: x - eta * f + w, x2, f2, _noise(k2, x2, scale))
        return (x1, x2), None

    read = lambda x1, x2: jax.tree.map(lambda g: g / beta, doubled_forces(system, theta, loss, beta, x1, x2,
                                                                          feedback)[2])
    return _run_and_average(step, read, (x1, x2), key, iterations, window)


def _run_and_average(step, read, fields, key, iterations: int, window: int) -> LangevinResult:
    """`iterations` noisy steps `step(fields, key)`; the gradient `read(*fields)` at the last one and
    its average over the last `window` (the time average a noisy substrate reports)."""
    keys = jax.random.split(key, iterations)
    fields, _ = jax.lax.scan(step, fields, keys[: iterations - window])

    def averaging(carry, key):
        fields, total = carry
        fields, _ = step(fields, key)
        return (fields, jax.tree.map(jnp.add, total, read(*fields))), None

    zero = jax.tree.map(jnp.zeros_like, read(*fields))
    (fields, total), _ = jax.lax.scan(averaging, (fields, zero), keys[iterations - window:])
    return LangevinResult(xs=fields[0], ps=fields[1], grad=read(*fields),
                          averaged=jax.tree.map(lambda g: g / window, total))
