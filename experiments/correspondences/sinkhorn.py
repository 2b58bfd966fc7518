"""Sinkhorn: the gradient of the entropic OT value in the histograms, three ways.

Histograms `a (n,)`, `b (m,)` (positive, equal mass), cost `C_ij = |x_i - y_j|^2`,
regularisation `eps`. The entropic OT value is the maximum of the dual

    D(f, g; a, b) = f . a + g . b - eps sum_ij exp((f_i + g_j - C_ij) / eps) + eps,

reached by Sinkhorn's alternating maximisation in the log domain
(`f = eps log u`, `g = eps log v` of the scalings `u, v`), from `g = 0`:

    f_i = eps log a_i - eps logsumexp_j((g_j - C_ij) / eps),
    g_j = eps log b_j - eps logsumexp_i((f_i - C_ij) / eps).

Envelope theorem: `dW/da = dD/da (f*, g*) = f* = eps log u*`, defined up to an
additive constant (the histograms live on a simplex), so every gradient is
centred (mean removed) before comparing. After `L` iterations:

- envelope: `f_L`, the log of the current scaling; error O(|f_L - f*|);
- unrolled: `jax.grad` in `a` of `D(f_L(a), g_L(a); a, b)`, backprop through
  the `L` iterations;
- implicit: the implicit function theorem on the stationarity `grad_z D = 0`,
  `z = (f, g)`, read at `z_L`: `f_L - [H^+ grad_z D]_f`, `H` the Hessian of `D` in
  `z` (pseudo-inverse: `H` has the null vector `(1, -1)`), in closed form:

      grad_f D = a - P 1,  grad_g D = b - P^T 1,  P = exp((f + g^T - C) / eps),
      H = -(1/eps) [[diag(P 1), P], [P^T, diag(P^T 1)]].

The unrolled and implicit estimates converge at about twice the rate of the
envelope estimate (errors quadratic in `|z_L - z*|`). The reference `f*` is
Sinkhorn run until the marginals match to 1e-15; central finite differences of
the converged value along mass-preserving directions `e_i - e_j` check it.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from ..harness.metrics import relative_error


class Problem(NamedTuple):
    """Histograms `a (n,)`, `b (m,)`, cost `C (n, m)`, regularisation `eps`."""

    a: jax.Array
    b: jax.Array
    C: jax.Array
    eps: float


def random_problem(n: int, m: int, key, eps: float = 0.1) -> Problem:
    """Points uniform on [0, 1], `C = |x - y|^2`, histograms uniform(0.5, 1.5) normalised to mass 1."""
    if n < 2 or m < 2 or not eps > 0:
        raise ValueError(f"need n, m >= 2 and eps > 0; got n={n}, m={m}, eps={eps}")
    k = jax.random.split(key, 4)
    x, y = jax.random.uniform(k[0], (n,)), jax.random.uniform(k[1], (m,))
    a, b = jax.random.uniform(k[2], (n,), minval=0.5, maxval=1.5), jax.random.uniform(k[3], (m,), minval=0.5, maxval=1.5)
    return Problem(a / a.sum(), b / b.sum(), (x[:, None] - y[None, :]) ** 2, float(eps))


def dual(f, g, a, b, C, eps):
    """`D(f, g; a, b)`."""
    return f @ a + g @ b - eps * jnp.sum(jnp.exp((f[:, None] + g[None, :] - C) / eps)) + eps


def sinkhorn_potentials(a, b, C, eps, iterations, max_iterations: int | None = None):
    """`(f_L, g_L)` after `L = iterations` log-domain Sinkhorn sweeps from `g = 0`.

    With `max_iterations` (static) the scan runs that many sweeps and freezes the
    potentials after sweep `L`, so `L` may be traced (one compilation for all `L`).
    """
    length = int(iterations) if max_iterations is None else int(max_iterations)

    def body(z, j):
        f, g = z
        f_new = eps * jnp.log(a) - eps * logsumexp((g[None, :] - C) / eps, axis=1)
        g_new = eps * jnp.log(b) - eps * logsumexp((f_new[:, None] - C) / eps, axis=0)
        keep = j < iterations
        return (jnp.where(keep, f_new, f), jnp.where(keep, g_new, g)), None

    z0 = (jnp.zeros_like(a), jnp.zeros_like(b))
    return jax.lax.scan(body, z0, jnp.arange(length))[0]


def centred(v):
    """`v - mean(v)`: the representative of a gradient on the simplex."""
    return v - jnp.mean(v)


def converged(problem: Problem, tol: float = 1e-15, chunk: int = 200, max_chunks: int = 500):
    """`(f*, g*)` by Sinkhorn until the row marginal `P 1` matches `a` to `tol` (max abs)."""
    a, b, C, eps = problem
    z = (jnp.zeros_like(a), jnp.zeros_like(b))
    for _ in range(max_chunks):
        z = _sweeps(z, a, b, C, eps, chunk)
        f, g = z
        P = jnp.exp((f[:, None] + g[None, :] - C) / eps)
        if float(jnp.max(jnp.abs(P.sum(1) - a))) <= tol:
            return z
    raise RuntimeError(f"Sinkhorn did not reach marginal error {tol} in {chunk * max_chunks} iterations")


def sinkhorn_from(z, a, b, C, eps, iterations: int):
    """`iterations` Sinkhorn sweeps from the potentials `z = (f, g)` (only `g` is read)."""

    def body(z, _):
        _, g = z
        f = eps * jnp.log(a) - eps * logsumexp((g[None, :] - C) / eps, axis=1)
        g = eps * jnp.log(b) - eps * logsumexp((f[:, None] - C) / eps, axis=0)
        return (f, g), None

    return jax.lax.scan(body, z, None, length=iterations)[0]


_sweeps = jax.jit(sinkhorn_from, static_argnums=5)


def value(problem: Problem, a=None) -> float:
    """The converged entropic OT value `W(a, b) = D(f*, g*)` (with histogram `a` if given)."""
    p = problem if a is None else problem._replace(a=jnp.asarray(a))
    f, g = converged(p)
    return float(dual(f, g, p.a, p.b, p.C, p.eps))


def implicit_gradient(problem: Problem, f, g):
    """`f - [H^+ grad_z D]_f` at `z = (f, g)` (closed-form gradient and Hessian of `D`)."""
    a, b, C, eps = (np.asarray(v) if not isinstance(v, float) else v for v in problem)
    f, g = np.asarray(f), np.asarray(g)
    P = np.exp((f[:, None] + g[None, :] - C) / eps)
    grad = np.concatenate([a - P.sum(1), b - P.sum(0)])
    H = -np.block([[np.diag(P.sum(1)), P], [P.T, np.diag(P.sum(0))]]) / eps
    step = np.linalg.lstsq(H, grad, rcond=None)[0]
    return f - step[: f.shape[0]]


class SinkhornErrors(NamedTuple):
    """Relative errors of the centred gradient estimates against the centred `f*`, per iteration count."""

    iterations: np.ndarray
    envelope: np.ndarray
    unrolled: np.ndarray
    implicit: np.ndarray
    marginal: np.ndarray


def errors_against_iterations(problem: Problem, iterations) -> SinkhornErrors:
    """The three estimates after each `L` in `iterations`, against the converged `f*`."""
    a, b, C, eps = problem
    f_star, _ = converged(problem)
    exact = np.asarray(centred(f_star))
    top = int(max(iterations))
    run = jax.jit(lambda aa, k: sinkhorn_potentials(aa, b, C, eps, k, top))
    unrolled = jax.jit(jax.grad(lambda aa, k: dual(*sinkhorn_potentials(aa, b, C, eps, k, top), aa, b, C, eps)))
    rel = lambda v: relative_error(centred(jnp.asarray(v)), exact)  # noqa: E731
    rows = []
    for k in iterations:
        f, g = run(a, int(k))
        P = jnp.exp((f[:, None] + g[None, :] - C) / eps)
        rows.append((rel(f), rel(unrolled(a, int(k))), rel(implicit_gradient(problem, f, g)),
                     float(jnp.max(jnp.abs(P.sum(1) - a)))))
    cols = np.asarray(rows).T
    return SinkhornErrors(np.asarray(iterations), *cols)


def finite_difference_check(problem: Problem, pairs, delta: float = 1e-5) -> float:
    """Max relative error of `f* . d` against the central difference of `W` along `d = e_i - e_j`."""
    f_star, _ = converged(problem)
    errors = []
    for i, j in pairs:
        d = np.zeros(problem.a.shape[0])
        d[i], d[j] = 1.0, -1.0
        a = np.asarray(problem.a)
        fd = (value(problem, a + delta * d) - value(problem, a - delta * d)) / (2 * delta)
        exact = float(np.asarray(f_star) @ d)
        errors.append(abs(fd - exact) / max(abs(exact), 1e-300))
    return float(max(errors))
