"""Residual networks as a time discretisation, and the `1/tau` normalisation of the gradient.

Continuous model on `[0, T]`: `dx/dt = f(t, x) = tanh(W(t) x + b(t))` with the
smooth parameter path

    W(t) = W0 + sin(2 t) W1,   b(t) = b0 + cos(2 t) b1,

loss `l = (1/2) |x(T) - y|^2`. Its functional gradient is the density

    dl/dW(t) = (p(t) * sech^2(W(t) x(t) + b(t))) x(t)^T,   dl/db(t) = p(t) * sech^2(...),
    dp/dt = -(df/dx)^T p,   p(T) = x(T) - y.

The residual network with `N` layers and step `tau = T/N`,
`x_{k+1} = x_k + tau tanh(W_k x_k + b_k)` with `(W_k, b_k) = (W(t_k), b(t_k))`
(`lagrangian.ResNet`, gradient by the least-action sweep `integrators.sweep`),
has per-layer gradients `dl/dW_k = tau (dPhi/dW)^T p_{k+1} / tau = O(tau)`: they
vanish as the step shrinks. Normalised by `1/tau` they converge to the density
at `t_k`, at first order (forward Euler). The density is computed independently
by diffrax (`Tsit5`, `PIDController(rtol=atol=1e-12)`, dense output for `x`,
the adjoint equation solved backward with `jax.vjp` of `f` in its right-hand side).
"""

from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from ..harness.metrics import relative_error


class Path(NamedTuple):
    """The parameter path `W(t) = W0 + sin(2t) W1`, `b(t) = b0 + cos(2t) b1`, and the data."""

    W0: jax.Array
    W1: jax.Array
    b0: jax.Array
    b1: jax.Array
    x0: jax.Array
    y: jax.Array

    def at(self, t):
        """`(W(t), b(t))`; `t` a scalar or a vector of times (leading axis)."""
        t = jnp.asarray(t)
        s, c = jnp.sin(2 * t)[..., None, None], jnp.cos(2 * t)[..., None]
        return self.W0 + s * self.W1, self.b0 + c * self.b1


def random_path(dim: int, key, scale: float = 1.0) -> Path:
    """Random `W0, W1 ~ N(0, scale^2/d)`, `b0, b1 ~ N(0, 0.1 scale)`, `x0, y ~ N(0, 1)`."""
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1; got {dim}")
    k = jax.random.split(key, 6)
    n = lambda kk, shape, s: s * jax.random.normal(kk, shape)  # noqa: E731
    sd = scale / np.sqrt(dim)
    return Path(n(k[0], (dim, dim), sd), n(k[1], (dim, dim), sd), n(k[2], (dim,), 0.1 * scale),
                n(k[3], (dim,), 0.1 * scale), n(k[4], (dim,), 1.0), n(k[5], (dim,), 1.0))


def field(t, x, path: Path):
    """`f(t, x) = tanh(W(t) x + b(t))`."""
    W, b = path.at(t)
    return jnp.tanh(W @ x + b)


def resnet_gradient(path: Path, t_final: float, steps: int):
    """`(grad, reference)`: the least-action sweep's `dl/d(W_k, b_k)` of the `steps`-layer ResNet
    (`{"W": (N, d, d), "b": (N, d)}`) and `jax.grad` of the composed forward map."""
    dim = path.x0.shape[0]
    tau = t_final / steps
    net = lagrangian.ResNet(dim=dim, depth=steps, h=tau)
    W, b = path.at(jnp.arange(steps) * tau)
    theta = {"W": W, "b": b}
    loss = lagrangian.SquaredError(target=path.y)
    sol = integrators.sweep(net, theta, path.x0, loss)
    reference = jax.grad(lambda th: loss(integrators.forward(net, th, path.x0)[-1]))(theta)
    return sol.grad, reference


def continuous_density(path: Path, t_final: float, times, rtol: float = 1e-12):
    """The functional gradient `(dl/dW(t), dl/db(t))` at `times` (shapes `(M, d, d)`, `(M, d)`), by diffrax.

    `times` may also be a tuple of time arrays: one forward and one adjoint solve
    serve them all, and a tuple of `(dW, db)` pairs is returned.
    """
    controller = diffrax.PIDController(rtol=rtol, atol=rtol)
    forward = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, x, args: field(t, x, path)), diffrax.Tsit5(), 0.0, t_final, t_final / 100,
        path.x0, saveat=diffrax.SaveAt(t1=True, dense=True), stepsize_controller=controller, max_steps=100_000,
    )

    def adjoint(t, p, args):
        x = forward.evaluate(t)
        return -jax.vjp(lambda z: field(t, z, path), x)[1](p)[0]

    backward = diffrax.diffeqsolve(
        diffrax.ODETerm(adjoint), diffrax.Tsit5(), t_final, 0.0, -t_final / 100, forward.ys[-1] - path.y,
        saveat=diffrax.SaveAt(dense=True), stepsize_controller=controller, max_steps=100_000,
    )

    def density(t):
        x, p = forward.evaluate(t), backward.evaluate(t)
        W, b = path.at(t)
        delta = p * (1 - jnp.tanh(W @ x + b) ** 2)
        return jnp.outer(delta, x), delta

    if isinstance(times, tuple):
        return tuple(jax.vmap(density)(jnp.asarray(ts)) for ts in times)
    return jax.vmap(density)(jnp.asarray(times))


class Normalisation(NamedTuple):
    """One depth `N`: step, raw and normalised gradient sizes, error against the density."""

    steps: int
    tau: float
    max_raw_gradient: float
    normalised_relative_error: float
    sweep_vs_jax_grad: float


def measure(path: Path, t_final: float, steps: tuple[int, ...], curve_times=None):
    """`(runs, curve)`: `runs[i] = (numbers, t_k, (1/tau) dl/d(W_k, b_k))` for each depth in
    `steps`, and the density `(dl/dW, dl/db)` at `curve_times` (or `None`).

    The error is `max_k |(1/tau) g_k - g(t_k)| / max_k |g(t_k)|` over all `W` and `b`
    entries. Every depth must divide the largest, so the density is computed once,
    on the finest grid, and subsampled.
    """
    steps = tuple(int(n) for n in steps)
    finest = max(steps)
    if min(steps) < 1 or any(finest % n for n in steps):
        raise ValueError(f"every depth must be >= 1 and divide the largest ({finest}); got {steps}")
    grid = np.arange(finest) * (t_final / finest)
    if curve_times is None:
        (dW, db), curve = continuous_density(path, t_final, grid), None
    else:
        (dW, db), curve = continuous_density(path, t_final, (grid, np.asarray(curve_times)))
    density = np.concatenate([np.asarray(dW).reshape(finest, -1), np.asarray(db)], axis=1)
    out = []
    for n in steps:
        tau = t_final / n
        grad, reference = resnet_gradient(path, t_final, n)
        flat = lambda g: np.concatenate([np.asarray(g["W"]).reshape(n, -1), np.asarray(g["b"])], axis=1)  # noqa: B023, E731
        discrete, exact, ref = flat(grad) / tau, density[:: finest // n], flat(reference)
        numbers = Normalisation(
            steps=n, tau=tau, max_raw_gradient=float(np.max(np.abs(flat(grad)))),
            normalised_relative_error=float(np.max(np.abs(discrete - exact)) / np.max(np.abs(exact))),
            sweep_vs_jax_grad=relative_error(flat(grad), ref),
        )
        out.append((numbers, np.arange(n) * tau, discrete))
    return out, curve
