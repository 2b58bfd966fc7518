"""Terminal losses `l(x_N)`, averaged over a batch.

For a batch `X_N` of shape `(B, n)` the loss is `l = (1/B) sum_b l_b(x_N^b)`, so
the terminal conjugate field is `p_N^b = grad l_b(x_N^b) / B`.
"""


import abc
from typing import ClassVar

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
    target_name: ClassVar[str] = "target"

    @abc.abstractmethod
    def pointwise(self, x: Float[Array, " n"], target) -> Scalar:
        """The loss `l(x)` of one final state against its target."""

    @abc.abstractmethod
    def targets(self):
        """The target(s): one per batch element, or one shared by all."""

    def check_shapes(self, x_final: Float[Array, "*batch n"]) -> None:
        """Raise a `ValueError` naming both shapes unless the target(s) fit the final states:
        one target shared by every sample (its shape broadcasting to one sample's target
        shape, `(n,)` for a target state, `()` for a label, without growing it) or, for a
        batch `(B, n)`, one per sample (leading axis `B`). Shapes are static, so this costs
        nothing under `jit`.

        Example:
            >>> loss = lagrangian.SquaredError(target=jnp.ones(3))
            >>> loss.check_shapes(jnp.ones((4, 3)))                     # one target for every sample: fine
            >>> try:
            ...     loss.check_shapes(jnp.ones((4, 2)))
            ... except ValueError as error:
            ...     print(error)
            SquaredError: target of shape (3,) and final states of shape (4, 2) do not match: give one target of shape (2,) or one per sample, of shape (4, 2)
        """
        target = self.targets()
        if target is None:
            return
        x_shape, t_shape = tuple(jnp.shape(x_final)), tuple(jnp.shape(target))
        one = x_shape[-1:] if self.target_ndim == 1 else ()
        batch = x_shape[:-1]

        def shared(shape):
            try:
                return jnp.broadcast_shapes(shape, one) == one
            except ValueError:
                return False

        if shared(t_shape) and len(t_shape) <= self.target_ndim:
            return
        if len(batch) == 1 and len(t_shape) == self.target_ndim + 1 and t_shape[0] == batch[0] and shared(t_shape[1:]):
            return
        hint = f"give one {self.target_name} of shape {one}"
        if len(batch) == 1:
            hint += f" or one per sample, of shape {batch + one}"
        raise ValueError(f"{type(self).__name__}: {self.target_name} of shape {t_shape} and final states of shape "
                         f"{x_shape} do not match: {hint}")

    def __call__(self, x_final: Float[Array, "*batch n"]) -> Scalar:
        target = self.targets()
        self.check_shapes(x_final)
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
    target_name = "label"

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
    target_name = "c"

    def targets(self):
        return self.c

    def pointwise(self, x, c):
        return jnp.vdot(c, x)
