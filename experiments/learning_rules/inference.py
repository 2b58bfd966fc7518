"""Inference on the layered energy: the equilibria that energy-based learning rules read.

The energy of a layered network `x_{k+1} = Phi_k(x_k, theta_k)` with layer weights
`w_k` (precisions) and an output term,

    F(x) = sum_{k=0}^{N-1} w_k 0.5 |x_{k+1} - Phi_k(x_k)|^2 + beta * l(x_N)     (output free)
    F(x) = sum_{k=0}^{N-1} w_k 0.5 |x_{k+1} - Phi_k(x_k)|^2,  x_N = y           (output clamped)

with `x_0` clamped to the input. Its stationarity conditions, with the prediction
errors `e_{k+1} = x_{k+1} - Phi_k(x_k)` and `J_k = dPhi_k/dx_k`, are local:

    dF/dx_k = w_{k-1} e_k - w_k J_k^T e_{k+1}   (k < N),   dF/dx_N = w_{N-1} e_N + beta grad l(x_N),

assembled here from one `jax.vjp` per layer map and of the loss. Two solvers:

- `newton`: Newton's method on `dF/dx = 0` over all free states of one sample at once,
  with the Hessian `d^2F/dx^2` as the forward-mode Jacobian (`jax.jacfwd`) of that local
  residual, a dense LU solve and an Armijo backtracking on `F`, started from the forward
  pass (the free equilibrium); it stops one step after the step fell below
  `tol * (1 + |x|_inf)` (default `1e-13`), or after `max_iterations` (quadratic
  convergence: the equilibrium is then exact to rounding, so it does not limit the errors
  the learning rules show);
- `sweeps`: the same equilibrium by alternating backward (errors) and forward (states)
  sweeps, a contraction with factor `O(beta)`: Hessian-free and cheap to compile, for the
  small nudges of the comparison harness;
- `descend`: the physical relaxation `dx/dtau = -dF/dx` by forward Euler with step `eta`,
  for error-against-inference-time curves.

The parameter gradient of the energy at a state is local too:
`dF/dtheta_k = -w_k (dPhi_k/dtheta_k)^T e_{k+1}` (`energy_theta_gradient`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree

import integrators
import lagrangian


class Equilibrium(NamedTuple):
    """A solved state: `xs = (x_0, ..., x_N)` (each `(B, n_k)`), the Newton iterations taken
    (largest over the batch), the largest stationarity residual `|dF/dx|_inf` (Newton) or last
    state change (sweeps), and whether every sample reached the tolerance before `max_iterations`."""

    xs: tuple[Array, ...]
    iterations: Array
    residual: Array
    converged: Array


UnconvergedWarning = integrators.UnconvergedWarning
"""`integrators.UnconvergedWarning`, the one warning of every iterative solver of the project."""

ON_UNCONVERGED = integrators.ON_UNCONVERGED
"""`integrators.ON_UNCONVERGED`: warn (the default), raise or ignore."""


def report_convergence(name: str, eq: Equilibrium, tol: float, on_unconverged: str) -> Equilibrium:
    """`eq`, after acting on `eq.converged` as `on_unconverged` says (`ON_UNCONVERGED`), by
    `integrators.report_unconverged`: a warning from the running program (under `jit`, `vmap`
    and `scan` too), or an error raised by it, or nothing.

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian, warnings
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     eq = newton(net, theta, jnp.ones((1, 2)), lagrangian.SquaredError(), 0.1, max_iterations=1)
        ...     jax.effects_barrier()
        >>> bool(eq.converged), caught[0].category.__name__
        (False, 'UnconvergedWarning')
    """
    return integrators.report_unconverged(
        name, eq, eq.converged, eq.residual, eq.iterations, tol, on_unconverged,
        hint="(raise max_iterations, or use a solver that converges here); the estimate read from this state "
             "is not the equilibrium's")


def sample_losses(loss: lagrangian.Loss, batch: int) -> tuple[Callable[[Array, Array], Array], Array | None]:
    """`(l_b, targets)`: the per-sample loss `l_b(x, target_b)` and the batched targets
    (`None` if every sample shares the loss's target), so that `l = mean_b l_b`."""
    target = loss.targets()
    if target is not None and jnp.ndim(target) == loss.target_ndim + 1:
        return loss.pointwise, target
    return (lambda x, _: loss.pointwise(x, target)), None


def _loss_gradient(lfn, x, target):
    value, pullback = jax.vjp(lambda x_: lfn(x_, target), x)
    return pullback(jnp.ones_like(value))[0]


def _check(system, weights):
    if len(weights) != system.depth:
        raise ValueError(f"layer weights need one entry per layer ({system.depth}); got {len(weights)}")


def stationarity_residual(system, theta, x0, free, target, lfn, beta, weights, clamped):
    """`dF/dx` of one sample at the free states `free` (a tuple of `N` or, clamped, `N - 1`
    arrays), assembled from one `jax.vjp` per layer map: a tuple shaped like `free`."""
    n = system.depth
    xs = (x0, *free, target) if clamped else (x0, *free)
    out = []
    errors, pulls = [], []
    for k in range(n):
        phi, pull = jax.vjp(lambda x: system.layer(k, x, system.theta_at(theta, k)), xs[k])
        errors.append(xs[k + 1] - phi)
        pulls.append(pull)
    for j in range(1, len(free) + 1):
        r = weights[j - 1] * errors[j - 1]
        if j < n:
            r = r - weights[j] * pulls[j](errors[j])[0]
        else:
            r = r + beta * _loss_gradient(lfn, xs[n], target)
        out.append(r)
    return tuple(out)


def _initial(system, theta, x0, clamped):
    xs = integrators.forward(system, theta, x0[None])
    states = tuple(x[0] for x in xs) if isinstance(xs, (tuple, list)) else tuple(xs[:, 0])
    return states[1:-1] if clamped else states[1:]


def _energy_one(system, theta, x0, free, target, lfn, beta, weights, clamped):
    """`F` of one sample at the free states (layer maps evaluated once each)."""
    xs = (x0, *free, target) if clamped else (x0, *free)
    value = sum(weights[k] * 0.5 * jnp.sum((xs[k + 1] - system.layer(k, xs[k], system.theta_at(theta, k))) ** 2)
                for k in range(system.depth))
    return value if clamped else value + beta * lfn(xs[-1], target)


def _newton_one(system, theta, x0, target, lfn, beta, weights, clamped, tol, max_iterations):
    free0 = _initial(system, theta, x0, clamped)
    z0, unravel = ravel_pytree(free0)
    eps = jnp.finfo(z0.dtype).eps

    def residual(z):
        return ravel_pytree(stationarity_residual(system, theta, x0, unravel(z), target, lfn, beta, weights,
                                                  clamped))[0]

    def energy(z):
        return _energy_one(system, theta, x0, unravel(z), target, lfn, beta, weights, clamped)

    def body(carry):
        z, it, small, _ = carry
        g, tangent = jax.linearize(residual, z)
        hess = jax.vmap(tangent, out_axes=1)(jnp.eye(z.shape[0], dtype=z.dtype))
        d = -jnp.linalg.solve(hess, g)
        slope = g @ d
        descent = jnp.isfinite(slope) & (slope < 0)
        d = jnp.where(descent, d, -g)
        slope = jnp.where(descent, slope, -(g @ g))
        f0 = energy(z)

        def too_far(t):
            return (t > 1e-12) & ~(energy(z + t * d) <= f0 + 1e-4 * t * slope + 64 * eps * jnp.abs(f0))

        t = jax.lax.while_loop(too_far, lambda t: 0.5 * t, jnp.asarray(1.0, z.dtype))
        new = z + t * d
        step = jnp.max(jnp.abs(new - z))
        converged = step <= tol * (1.0 + jnp.max(jnp.abs(new)))
        return new, it + 1, jnp.where(converged, small + 1, 0), jnp.max(jnp.abs(g))

    def cond(carry):
        _, it, small, _ = carry
        return (it < max_iterations) & (small < 2)  # stop one step after the step became small

    start = (z0, jnp.asarray(0), jnp.asarray(0), jnp.asarray(jnp.inf, z0.dtype))
    z, it, small, res = jax.lax.while_loop(cond, body, start)
    return unravel(z), it, res, small >= 2


def _arguments(name: str, system, x0, loss, clamp, weights) -> tuple[tuple[float, ...], Array, bool]:
    """`(weights, x0, clamped)` of an equilibrium solver, checked: the layer precisions
    (default all 1), the batch `(B, n_0)`, and whether the output is clamped (else a loss is needed)."""
    weights = (1.0,) * system.depth if weights is None else tuple(weights)
    _check(system, weights)
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(f"{name} needs a batch x0 of shape (B, n); got {x0.shape}")
    clamped = clamp is not None
    if not clamped and loss is None:
        raise ValueError(f"{name} needs a loss when the output is free")
    return weights, x0, clamped


def newton(
    system: lagrangian.LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: lagrangian.Loss | None = None,
    beta: float | Array = 0.0,
    *,
    clamp: Array | None = None,
    weights: Sequence[float] | None = None,
    tol: float = 1e-13,
    max_iterations: int = 40,
    on_unconverged: str = "warn",
) -> Equilibrium:
    """The equilibrium `dF/dx = 0` of every sample of the batch `x0` `(B, n_0)` by Newton's
    method (module docstring), output free with `beta * l(x_N)` (`beta` may be traced), or
    clamped to `clamp` `(B, n_N)` (then `loss` and `beta` are unused). `weights`: the layer
    precisions `w_k` (default all 1).

    Each step solves `H d = -dF/dx` (dense LU; `d = -dF/dx` where that is not a descent
    direction) and backtracks on `F` (Armijo, halving) so that it finds a minimum, not a
    saddle; near the minimum the full step is taken and convergence is quadratic. It stops
    one step after the step fell below `tol * (1 + |x|_inf)`, or after `max_iterations`.
    `residual` is the largest `|dF/dx|_inf` before that last step (it is then at rounding).
    Stopping at `max_iterations` first warns, raises or is only recorded in `converged`, as
    `on_unconverged` says (`report_convergence`).

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> eq = newton(net, theta, jnp.ones((1, 2)), lagrangian.SquaredError(), 0.1)
        >>> float(eq.residual) < 1e-12
        True
    """
    weights, x0, clamped = _arguments("newton", system, x0, loss, clamp, weights)
    if clamped:
        lfn, targets = (lambda x, t: 0.0 * jnp.sum(x)), jnp.asarray(clamp)
    else:
        lfn, targets = sample_losses(loss, x0.shape[0])

    def one(x, t):
        return _newton_one(system, theta, x, t, lfn, beta, weights, clamped, tol, max_iterations)

    free, its, res, done = jax.vmap(one, in_axes=(0, None if targets is None else 0))(x0, targets)
    xs = (x0, *free, jnp.asarray(clamp)) if clamped else (x0, *free)
    eq = Equilibrium(xs=tuple(xs), iterations=jnp.max(its), residual=jnp.max(res), converged=jnp.all(done))
    return report_convergence("newton (equilibrium)", eq, tol, on_unconverged)


def sweeps(
    system: lagrangian.LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: lagrangian.Loss | None = None,
    beta: float | Array = 0.0,
    *,
    clamp: Array | None = None,
    weights: Sequence[float] | None = None,
    tol: float = 1e-13,
    max_iterations: int = 60,
    on_unconverged: str = "warn",
) -> Equilibrium:
    """The same equilibrium as `newton` by a fixed-point iteration of the stationarity
    conditions, alternating a backward sweep of the errors and a forward sweep of the states:

        e_N = -(beta / w_{N-1}) grad l(x_N)   (free)   or   e_N = y - Phi_{N-1}(x_{N-1})   (clamped),
        e_k = (w_k / w_{k-1}) J_k(x_k)^T e_{k+1},        x_{k+1} = Phi_k(x_k) + e_{k+1}.

    A contraction with factor `O(beta)` (free) or `O(w_{N-1})` (clamped, weak precision), so it
    converges to rounding in a few sweeps at the small nudges the harness uses, with no
    Hessian (cheap to compile); it does not converge for strong nudges (use `newton`). Stops
    one sweep after the largest state change fell below `tol * (1 + |x|_inf)`, or after
    `max_iterations`; `residual` is the last state change. Stopping at `max_iterations` first
    warns, raises or is only recorded in `converged`, as `on_unconverged` says
    (`report_convergence`).

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> a = sweeps(net, theta, jnp.ones((1, 2)), lagrangian.SquaredError(), 1e-3)
        >>> b = newton(net, theta, jnp.ones((1, 2)), lagrangian.SquaredError(), 1e-3)
        >>> float(jnp.max(jnp.abs(a.xs[1] - b.xs[1]))) < 1e-14
        True
    """
    weights, x0, clamped = _arguments("sweeps", system, x0, loss, clamp, weights)
    n = system.depth
    start = integrators.forward(system, theta, x0)
    start = tuple(start) if isinstance(start, (tuple, list)) else tuple(start[k] for k in range(n + 1))
    if clamped:
        start = (*start[:-1], jnp.asarray(clamp))
    last_free = n - 1 if clamped else n

    def sweep(xs):
        pulls = []
        for k in range(1, n):
            _, pull = jax.vjp(lambda x, k=k: system.apply(k, x, system.theta_at(theta, k)), xs[k])
            pulls.append(pull)
        if clamped:
            e = xs[n] - system.apply(n - 1, xs[n - 1], system.theta_at(theta, n - 1))
        else:
            e = -(beta / weights[n - 1]) * loss.grad(xs[n])[1] * x0.shape[0]  # per-sample gradient
        errors = [None] * (n + 1)
        errors[n] = e
        for k in range(n - 1, 0, -1):
            errors[k] = (weights[k] / weights[k - 1]) * pulls[k - 1](errors[k + 1])[0]
        new = [xs[0]]
        for k in range(last_free):
            new.append(system.apply(k, new[k], system.theta_at(theta, k)) + errors[k + 1])
        if clamped:
            new.append(xs[n])
        return tuple(new)

    def body(carry):
        xs, it, small, _ = carry
        new = sweep(xs)
        change = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in zip(new[1:last_free + 1],
                                                                          xs[1:last_free + 1])]))
        size = jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in new[1:last_free + 1]]))
        converged = change <= tol * (1.0 + size)
        return new, it + 1, jnp.where(converged, small + 1, 0), change

    def cond(carry):
        _, it, small, _ = carry
        return (it < max_iterations) & (small < 2)

    xs, it, small, change = jax.lax.while_loop(cond, body, (start, jnp.asarray(0), jnp.asarray(0),
                                                            jnp.asarray(jnp.inf, x0.dtype)))
    eq = Equilibrium(xs=xs, iterations=it, residual=change, converged=small >= 2)
    return report_convergence("sweeps (equilibrium)", eq, tol, on_unconverged)


def descend(
    system: lagrangian.LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: lagrangian.Loss | None,
    beta: float,
    iterations: int,
    eta: float,
    record: Callable[[tuple[Array, ...]], PyTree],
    *,
    clamp: Array | None = None,
    weights: Sequence[float] | None = None,
):
    """`iterations` forward-Euler steps of `dx/dtau = -dF/dx` from the forward pass, every
    free state at once; returns `record(xs)` stacked over the iterations (after each step)."""
    weights = (1.0,) * system.depth if weights is None else tuple(weights)
    _check(system, weights)
    clamped = clamp is not None
    if clamped:
        lfn, targets = (lambda x, t: 0.0 * jnp.sum(x)), jnp.asarray(clamp)
    else:
        lfn, targets = sample_losses(loss, x0.shape[0])
    axis = None if targets is None else 0
    free = jax.vmap(lambda x: _initial(system, theta, x, clamped))(x0)

    def full(free):
        return (x0, *free, jnp.asarray(clamp)) if clamped else (x0, *free)

    def body(free, _):
        grads = jax.vmap(lambda x, f, t: stationarity_residual(system, theta, x, f, t, lfn, beta, weights, clamped),
                         in_axes=(0, 0, axis))(x0, free, targets)
        free = tuple(f - eta * g for f, g in zip(free, grads))
        return free, record(full(free))

    _, history = jax.lax.scan(body, free, None, length=int(iterations))
    return history


def assemble(system: lagrangian.LayerMaps, per_layer: Sequence[PyTree]) -> PyTree:
    """Per-layer parameter cotangents `[g_0, ..., g_{N-1}]` in the structure of `theta`
    (a tuple, stacked along a leading axis, or summed for shared weights)."""
    if system.layout == "unrolled":
        return tuple(per_layer)
    if system.layout == "stacked":
        return jax.tree.map(lambda *a: jnp.stack(a), *per_layer)
    return jax.tree.map(lambda *a: sum(a), *per_layer)


def energy_theta_gradient(system: lagrangian.LayerMaps, theta: PyTree, xs: Sequence[Array],
                          weights: Sequence[float] | None = None) -> PyTree:
    """`dF/dtheta_k = -w_k (dPhi_k/dtheta_k)^T e_{k+1}`, batch-averaged (`xs` batched
    `(B, n_k)`): one `jax.vjp` of each layer map at `x_k` (`system.conjugate`)."""
    weights = (1.0,) * system.depth if weights is None else tuple(weights)
    batch = xs[0].shape[0]
    errors = lagrangian.prediction_errors(system, theta, xs)
    return assemble(system, [
        system.conjugate(k, xs[k], system.theta_at(theta, k), -weights[k] * errors[k] / batch)[1]
        for k in range(system.depth)
    ])


def tree_combine(a: PyTree, b: PyTree, ca: float, cb: float) -> PyTree:
    """`ca * a + cb * b` leaf by leaf."""
    return jax.tree.map(lambda x, y: ca * x + cb * y, a, b)


__all__ = ["Equilibrium", "ON_UNCONVERGED", "UnconvergedWarning", "assemble", "descend", "energy_theta_gradient", "newton", "report_convergence",
           "sample_losses", "stationarity_residual", "sweeps", "tree_combine"]
