"""Argmin layers and the envelope (Danskin) theorem, against unrolled gradients.

Energy, strongly convex in `x in R^n` for every `theta in R^q`:

    E(x, theta) = (1/2) x^T A x + c sum_i log cosh(x_i) - x^T B theta,
    grad_x E = A x + c tanh(x) - B theta,   dE/dtheta = -B^T x,

value `V(theta) = min_x E(x, theta)` and argmin `x*(theta)`. The envelope
theorem: `dV/dtheta = dE/dtheta(x*, theta) = -B^T x*` (no derivative of `x*`
needed). With `K` gradient-descent steps `x_{j+1} = x_j - eta grad_x E(x_j)`
(`x_0 = 0`, `eta = 1 / L`, `L = |A| + c`) three estimates of `dV/dtheta`:

- envelope:  `dE/dtheta(x_K, theta)`; error O(|x_K - x*|);
- unrolled:  `jax.grad` of `theta -> E(x_K(theta), theta)` through the `K` steps;
- implicit:  `dE/dtheta - (d^2E/dtheta dx) (d^2E/dx^2)^{-1} grad_x E` at `x_K`
  (one Newton correction); both O(|x_K - x*|^2) (Ablin, Peyre, Moreau 2020).

The argmin layer's Jacobian `dx*/dtheta = (d^2E/dx^2)^{-1} B` (implicit
function theorem at `x_K`) is compared with `jax.jacfwd` of `x_K(theta)`.
Exact references: `x*` by Newton to 1e-15; for `c = 0` the closed forms
`x* = A^{-1} B theta`, `dV/dtheta = -B^T A^{-1} B theta`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..harness.metrics import relative_error
from .fixed_point import fitted_rate


class Energy(NamedTuple):
    """`E(x, theta) = x^T A x / 2 + c sum log cosh x - x^T B theta` (`A` symmetric positive definite)."""

    A: jax.Array
    B: jax.Array
    c: float

    def __call__(self, x, theta):
        return 0.5 * x @ self.A @ x + self.c * jnp.sum(jnp.logaddexp(x, -x) - jnp.log(2.0)) - x @ self.B @ theta

    @property
    def lipschitz(self) -> float:
        """`|A|_2 + c`, a Lipschitz constant of `grad_x E`."""
        return float(np.linalg.norm(np.asarray(self.A), 2) + self.c)


def random_energy(n: int, q: int, key, conditioning: float = 10.0, c: float = 1.0) -> tuple[Energy, jax.Array]:
    """`(E, theta)`: `A` with eigenvalues spread over `[1, conditioning]`, `B ~ N(0, 1/q)`, `theta ~ N(0, 1)`."""
    if conditioning < 1 or c < 0:
        raise ValueError(f"need conditioning >= 1 and c >= 0; got {conditioning}, {c}")
    k1, k2, k3 = jax.random.split(key, 3)
    Q, _ = jnp.linalg.qr(jax.random.normal(k1, (n, n)))
    A = (Q * jnp.linspace(1.0, conditioning, n)) @ Q.T
    return Energy(A=0.5 * (A + A.T), B=jax.random.normal(k2, (n, q)) / np.sqrt(q), c=float(c)), jax.random.normal(k3, (q,))


def descend(energy: Energy, theta, steps, max_steps: int | None = None):
    """`x_K` by `K = steps` gradient steps of size `1/L` from `x_0 = 0`.

    With `max_steps` (static) the scan runs `max_steps` steps and freezes `x` after
    step `K`, so `K` may be traced (one compilation serves every `K <= max_steps`).
    """
    eta = 1.0 / energy.lipschitz
    grad_x = jax.grad(energy, argnums=0)
    length = int(steps) if max_steps is None else int(max_steps)

    def body(x, j):
        return jnp.where(j < steps, x - eta * grad_x(x, theta), x), None

    return jax.lax.scan(body, jnp.zeros(energy.A.shape[0]), jnp.arange(length))[0]


@jax.jit
def _derivatives(energy: Energy, theta, x):
    """`(grad_x E, dE/dtheta, H = d^2E/dx^2, d^2E/dx dtheta)` at `(x, theta)`."""
    g_x, g_theta = jax.grad(energy, argnums=(0, 1))(x, theta)
    H = jax.hessian(energy, argnums=0)(x, theta)
    mixed = jax.jacfwd(jax.grad(energy, argnums=0), argnums=1)(x, theta)  # (n, q)
    return g_x, g_theta, H, mixed


def newton_argmin(energy: Energy, theta, tol: float = 1e-15, max_iter: int = 50):
    """`x*` by Newton on `grad_x E = 0` from `x_0 = 0` (strongly convex: converges)."""
    x = jnp.zeros(energy.A.shape[0])
    for _ in range(max_iter):
        g, _, H, _ = (np.asarray(a) for a in _derivatives(energy, theta, x))
        if np.max(np.abs(g)) <= tol:
            break
        x = x - jnp.asarray(np.linalg.solve(H, g))
    return x


def envelope_gradient(energy: Energy, theta, x):
    """`dE/dtheta(x, theta)`: the envelope-theorem gradient of `V` read at `x`."""
    return jax.grad(energy, argnums=1)(x, theta)


def implicit_gradient(energy: Energy, theta, x):
    """`dE/dtheta - (d^2E/dx dtheta)^T H^{-1} grad_x E` at `x`, `H = d^2E/dx^2`."""
    g_x, g_theta, H, mixed = (np.asarray(a) for a in _derivatives(energy, theta, x))
    return g_theta - mixed.T @ np.linalg.solve(H, g_x)


def implicit_argmin_jacobian(energy: Energy, theta, x):
    """`dx*/dtheta = -H^{-1} d^2E/dx dtheta` at `x`, shape `(n, q)`."""
    _, _, H, mixed = (np.asarray(a) for a in _derivatives(energy, theta, x))
    return -np.linalg.solve(H, mixed)


class ArgminErrors(NamedTuple):
    """Relative errors against the exact gradient (and argmin Jacobian), per number of descent steps."""

    steps: np.ndarray
    envelope: np.ndarray
    unrolled: np.ndarray
    implicit: np.ndarray
    jacobian_unrolled: np.ndarray
    jacobian_implicit: np.ndarray
    distance: np.ndarray


def errors_against_steps(energy: Energy, theta, steps) -> ArgminErrors:
    """Errors of the three value-gradient estimates and of the two argmin Jacobians for each `K`."""
    x_star = newton_argmin(energy, theta)
    exact = np.asarray(envelope_gradient(energy, theta, x_star))
    exact_jac = implicit_argmin_jacobian(energy, theta, x_star)
    rel = relative_error
    top = int(max(steps))
    descend_fn = jax.jit(lambda th, k: descend(energy, th, k, top))
    unrolled_fn = jax.jit(jax.grad(lambda th, k: energy(descend(energy, th, k, top), th)))
    jac_fn = jax.jit(jax.jacfwd(lambda th, k: descend(energy, th, k, top)))
    envelope_fn = jax.jit(lambda x: envelope_gradient(energy, theta, x))
    rows = []
    for k in steps:
        x_k = descend_fn(theta, int(k))
        rows.append((rel(envelope_fn(x_k), exact), rel(unrolled_fn(theta, int(k)), exact),
                     rel(implicit_gradient(energy, theta, x_k), exact), rel(jac_fn(theta, int(k)), exact_jac),
                     rel(implicit_argmin_jacobian(energy, theta, x_k), exact_jac),
                     relative_error(x_k, x_star)))
    cols = np.asarray(rows).T
    return ArgminErrors(np.asarray(steps), *cols)


def quadratic_closed_form(energy: Energy, theta):
    """For `c = 0`: `(x*, dV/dtheta) = (A^{-1} B theta, -B^T A^{-1} B theta)`."""
    if energy.c != 0:
        raise ValueError("the closed form holds for the quadratic energy (c = 0) only")
    x = np.linalg.solve(np.asarray(energy.A), np.asarray(energy.B) @ np.asarray(theta))
    return x, -np.asarray(energy.B).T @ x


