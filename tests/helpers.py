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
