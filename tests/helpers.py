"""Tree comparisons used across the tests."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness.metrics import flat, relative_error as rel_l2  # noqa: F401  (re-exported for the tests)


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
