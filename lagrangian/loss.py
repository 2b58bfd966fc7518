"""Terminal losses `l(x_N)`, averaged over a batch.

For a batch `X_N` of shape `(B, n)` the loss is `l = (1/B) sum_b l_b(x_N^b)`, so
the terminal conjugate field is `p_N^b = grad l_b(x_N^b) / B`.
"""


import abc

import equinox as eqx
from equinox import AbstractClassVar, AbstractVar
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Scalar


class Loss(eqx.Module):
    """A terminal loss: `pointwise(x, target)` for one state, batch-averaged by `__call__`.

    Example:
        >>> loss = lagrangian.SquaredError()                 # a Loss: pointwise, averaged over a batch
        >>> loss.pointwise(jnp.array([3.0, 4.0]), None), loss(jnp.array([[3.0, 4.0], [0.0, 0.0]]))
        (Array(12.5, dtype=float64), Array(6.25, dtype=float64))
    """

    target_ndim: AbstractClassVar[int]

    @abc.abstractmethod
    def pointwise(self, x: Float[Array, " n"], target) -> Scalar:
        """The loss `l(x)` of one final state against its target."""

    @abc.abstractmethod
    def targets(self):
        """The target(s): one per batch element, or one shared by all."""

    def __call__(self, x_final: Float[Array, "*batch n"]) -> Scalar:
        target = self.targets()
        if x_final.ndim == 1:
            return self.pointwise(x_final, target)
        batched = target is not None and jnp.ndim(target) == self.target_ndim + 1
        in_axes = (0, 0 if batched else None)
        return jnp.mean(jax.vmap(self.pointwise, in_axes=in_axes)(x_final, target))

    def grad(self, x_final: Float[Array, "*batch n"]) -> Float[Array, "*batch n"]:
        """`p_N = dl/dx_N`: `jax.vjp` of one evaluation of the loss."""
        value, pullback = jax.vjp(self, x_final)
        return value, pullback(jnp.ones_like(value))[0]


class SquaredError(Loss):
    """`l(x) = 0.5 |x - y|^2`; `target` is `None` (zero), `(n,)` or `(B, n)`.

    Example:
        >>> lagrangian.SquaredError(target=jnp.ones(2))(jnp.array([[1.0, 3.0], [1.0, 1.0]]))   # mean over the batch
        Array(1., dtype=float64)
    """

    target: Float[Array, "*batch n"] | None = None
    target_ndim = 1

    def targets(self):
        return self.target

    def pointwise(self, x, target):
        y = 0.0 if target is None else target
        return 0.5 * jnp.sum((x - y) ** 2)


class CrossEntropy(Loss):
    """Softmax cross-entropy `l(x) = logsumexp(x) - x[y]` for integer labels `y`.

    Example:
        >>> loss = lagrangian.CrossEntropy(labels=jnp.array([0, 1]))
        >>> bool(loss(jnp.zeros((2, 3))) == jnp.log(3.0))
        True
    """

    labels: Int[Array, "*batch"]
    target_ndim = 0

    def targets(self):
        return self.labels

    def pointwise(self, x, label):
        return jax.nn.logsumexp(x) - x[label]


class LinearFunctional(Loss):
    """`l(x) = c . x`: a loss of zero curvature (its conjugate field is `p_N = c`, so the
    sweep returns the directional sensitivity of `c . x_N`); `c` is `(n,)` or `(B, n)`.

    Example:
        >>> lagrangian.LinearFunctional(c=jnp.array([1.0, 2.0]))(jnp.array([3.0, 4.0]))
        Array(11., dtype=float64)
    """

    c: Float[Array, "*batch n"]
    target_ndim = 1

    def targets(self):
        return self.c

    def pointwise(self, x, c):
        return jnp.vdot(c, x)
