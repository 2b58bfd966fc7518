"""Fixed-point layers: implicit differentiation against unrolled backprop.

Layer: the fixed point `x* = h(x*, theta)` of the contraction

    h(x, theta) = sigma(W x + U u + c),   theta = {"W": (n, n), "U": (n, m), "c": (n,)},

(`sigma = tanh`, or the identity for the linear layer with a closed form),
loss `l(x*) = (1/2) |x* - y|^2`. Two gradients from `K` iterations
`x_{j+1} = h(x_j, theta)`, `x_0 = 0`:

- unrolled: `jax.grad` of `theta -> l(x_K(theta))`, backprop through all `K` maps;
- implicit: at `x = x_K`, solve the adjoint equation of the fixed point
  `(I - dh/dx)^T lam = grad l(x)` (dense, `numpy.linalg.solve`; `dh/dx` is
  `jax.jacfwd` of one evaluation of `h`) and pull back `(dh/dtheta)^T lam`
  (`jax.vjp` of one evaluation of `h`): one layer evaluation, O(1) memory in `K`.

Both errors shrink like the contraction factor `rho^K` (`rho` the spectral
radius of `dh/dx` at `x*`); the exact gradient is the implicit formula at the
Newton-converged fixed point, checked against the closed form of the linear
layer, `x* = (I - W)^{-1} (U u + c)`, `dl/dW = lam x*^T`, `lam = (I - W)^{-T} (x* - y)`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..harness.metrics import relative_error

ACTIVATIONS = {"tanh": jnp.tanh, "identity": lambda z: z}


class FixedPointLayer(NamedTuple):
    """`h(x, theta) = sigma(W x + U u + c)` with input `u`, target `y` and activation name."""

    u: jax.Array
    y: jax.Array
    activation: str = "tanh"

    def __call__(self, x, theta):
        sigma = ACTIVATIONS[self.activation]
        return sigma(theta["W"] @ x + theta["U"] @ self.u + theta["c"])

    def loss(self, x):
        return 0.5 * jnp.sum((x - self.y) ** 2)


def random_layer(n: int, m: int, key, contraction: float = 0.8, activation: str = "tanh"):
    """`(layer, theta)` with `W` rescaled to spectral norm `contraction < 1` (so `h` contracts)."""
    if not 0 < contraction < 1:
        raise ValueError(f"contraction must be in (0, 1) for a unique fixed point; got {contraction}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    k = jax.random.split(key, 5)
    W = jax.random.normal(k[0], (n, n))
    W = contraction * W / jnp.linalg.norm(W, 2)
    theta = {"W": W, "U": jax.random.normal(k[1], (n, m)) / np.sqrt(m), "c": 0.1 * jax.random.normal(k[2], (n,))}
    return FixedPointLayer(u=jax.random.normal(k[3], (m,)), y=jax.random.normal(k[4], (n,)), activation=activation), theta


def iterate(layer: FixedPointLayer, theta, iterations, max_iterations: int | None = None):
    """`x_K` from `x_0 = 0` by `K = iterations` applications of `h`.

    With `max_iterations` (static) the scan runs that many steps and freezes `x`
    after step `K`, so `K` may be traced (one compilation for every `K`).
    """
    length = int(iterations) if max_iterations is None else int(max_iterations)

    def body(x, j):
        return jnp.where(j < iterations, layer(x, theta), x), None

    return jax.lax.scan(body, jnp.zeros_like(layer.y), jnp.arange(length))[0]


def unrolled_gradient(layer: FixedPointLayer, theta, iterations, max_iterations: int | None = None):
    """`jax.grad` of `theta -> l(x_K(theta))` through the `K` unrolled maps."""
    return jax.grad(lambda th: layer.loss(iterate(layer, th, iterations, max_iterations)))(theta)


def implicit_gradient(layer: FixedPointLayer, theta, x):
    """`(dh/dtheta)^T lam` with `(I - dh/dx)^T lam = grad l(x)`, all at the point `x`."""
    jac = np.asarray(jax.jacfwd(lambda z: layer(z, theta))(x))
    lam = np.linalg.solve((np.eye(x.shape[0]) - jac).T, np.asarray(jax.grad(layer.loss)(x)))
    return jax.vjp(lambda th: layer(x, th), theta)[1](jnp.asarray(lam))[0]


def newton_fixed_point(layer: FixedPointLayer, theta, tol: float = 1e-15, max_iter: int = 50):
    """`x*` by Newton on `x - h(x) = 0` from the Picard iterate `x_20`, until `|x - h(x)| <= tol`."""
    x = iterate(layer, theta, 20)
    for _ in range(max_iter):
        residual = np.asarray(x - layer(x, theta))
        if np.max(np.abs(residual)) <= tol:
            break
        jac = np.asarray(jax.jacfwd(lambda z: layer(z, theta))(x))
        x = x - jnp.asarray(np.linalg.solve(np.eye(x.shape[0]) - jac, residual))
    return x


def linear_closed_form(layer: FixedPointLayer, theta):
    """For `sigma = identity`: `x* = (I - W)^{-1}(U u + c)` and the exact `dl/dtheta`."""
    if layer.activation != "identity":
        raise ValueError("the closed form holds for the linear layer (activation 'identity') only")
    W, U, c = (np.asarray(theta[k]) for k in ("W", "U", "c"))
    n = W.shape[0]
    x = np.linalg.solve(np.eye(n) - W, U @ np.asarray(layer.u) + c)
    lam = np.linalg.solve((np.eye(n) - W).T, x - np.asarray(layer.y))
    return x, {"W": np.outer(lam, x), "U": np.outer(lam, np.asarray(layer.u)), "c": lam}


class IterationErrors(NamedTuple):
    """Relative gradient errors against the exact gradient, per iteration count."""

    iterations: np.ndarray
    unrolled: np.ndarray
    implicit: np.ndarray
    residual: np.ndarray
    contraction: float


def errors_against_iterations(layer: FixedPointLayer, theta, iterations) -> IterationErrors:
    """Errors of the unrolled and implicit gradients for each `K`, and `rho = max |eig(dh/dx(x*))|`."""
    x_star = newton_fixed_point(layer, theta)
    exact = implicit_gradient(layer, theta, x_star)
    rel = lambda g: relative_error(g, exact)  # noqa: E731
    unrolled, implicit, residual = [], [], []
    top = int(max(iterations))
    grad_fn = jax.jit(lambda th, k: unrolled_gradient(layer, th, k, top))
    iterate_fn = jax.jit(lambda th, k: iterate(layer, th, k, top))
    for k in iterations:
        x_k = iterate_fn(theta, int(k))
        unrolled.append(rel(grad_fn(theta, int(k))))
        implicit.append(rel(implicit_gradient(layer, theta, x_k)))
        residual.append(float(jnp.max(jnp.abs(x_k - x_star))))
    rho = float(np.max(np.abs(np.linalg.eigvals(np.asarray(jax.jacfwd(lambda z: layer(z, theta))(x_star))))))
    return IterationErrors(np.asarray(iterations), np.asarray(unrolled), np.asarray(implicit), np.asarray(residual), rho)


def fitted_rate(iterations, errors, floor: float = 1e-13) -> float:
    """`exp` of the least-squares slope of `log error` against `K`, over errors above `floor`.

    Example:
        >>> round(fitted_rate([1, 2, 3, 4], [0.5, 0.25, 0.125, 0.0625]), 12)    # errors 2^-K
        0.5
    """
    iterations, errors = np.asarray(iterations, float), np.asarray(errors, float)
    keep = errors > floor
    if keep.sum() < 2:
        raise ValueError("need at least two errors above the floor to fit a rate")
    return float(np.exp(np.polyfit(iterations[keep], np.log(errors[keep]), 1)[0]))
