"""Tree comparisons used across the tests."""

import jax
import jax.numpy as jnp
import numpy as np


def flat(tree) -> np.ndarray:
    """All leaves of a pytree concatenated into one float64 vector."""
    leaves = jax.tree.leaves(tree)
    return np.concatenate([np.asarray(leaf, dtype=np.float64).ravel() for leaf in leaves])


def rel_l2(a, b) -> float:
    """Relative L2 error `|a - b|_2 / |b|_2` of two pytrees, flattened.

    When `b` is exactly zero (e.g. dead relu units) the absolute error `|a|_2` is returned.
    """
    fa, fb = flat(a), flat(b)
    norm = np.linalg.norm(fb)
    return float(np.linalg.norm(fa - fb) / (norm if norm > 0 else 1.0))


def reference_grad(system, theta, x0, loss):
    """The reference: `jax.grad` of `l(forward(theta))` through the whole composed map."""
    from integrators import forward

    return jax.grad(lambda th: loss(forward(system, th, x0)[-1]))(theta)


def cast(tree, dtype):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def van_loan_gradient(a: np.ndarray, x0: np.ndarray, t_final: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed form for `dx/dt = A x`, `l = 0.5 |x(T)|^2`: `(x(T), dl/dA)`, where

        dl/dA = integral_0^T e^{A^T (T-s)} x(T) x0^T e^{A^T s} ds

    is the top-right block of `expm(T [[A^T, x(T) x0^T], [0, A^T]])` (Van Loan 1978),
    computed with scipy, which shares no code with the project.
    """
    import scipy.linalg

    n = a.shape[0]
    x_final = scipy.linalg.expm(a * t_final) @ x0
    block = np.zeros((2 * n, 2 * n))
    block[:n, :n] = a.T
    block[:n, n:] = np.outer(x_final, x0)
    block[n:, n:] = a.T
    return x_final, scipy.linalg.expm(t_final * block)[:n, n:]
