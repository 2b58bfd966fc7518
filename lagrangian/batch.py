"""A batch of states as one system: `jax.vmap` at the boundary.

Systems are written for one state, and so is the sweep of `integrators`. Given a
batch `x0` of shape `(B, n)`, the sweep runs `system.batched()` instead: by default
`Batched(system)`, whose layer map is the per-state map vmapped over the batch and
whose pullback is `jax.vjp` of that one batched layer map, so the cotangent of the
shared `theta` comes out summed over the batch (one matrix product, not `B` outer
products). A system with its own pullback (`linearise`) that should also serve
batches overrides `batched` (Runge-Kutta schemes step a `BatchedField`).
"""

import equinox as eqx
import jax
from jaxtyping import Array, Float, PyTree

from .system import LayerMaps, VectorField


class Batched(LayerMaps):
    """`system` applied to every state of a batch `(B, n)`; `theta` is shared.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> batched = lagrangian.Batched(net)
        >>> batched.layer(0, jnp.ones((5, 2)), net.theta_at(net.init(jax.random.key(0)), 0)).shape
        (5, 2)
    """

    system: LayerMaps

    @property
    def layout(self):
        return self.system.layout

    @property
    def depth(self) -> int:
        return self.system.depth

    @property
    def input_dim(self) -> int:
        return self.system.input_dim

    @property
    def ts(self):
        return self.system.ts

    def init(self, key, dtype=None):
        return self.system.init(key) if dtype is None else self.system.init(key, dtype)

    def layer(self, k, x: Float[Array, "B n_k"], theta_k: PyTree) -> Float[Array, "B n_k1"]:
        return jax.vmap(lambda x_: self.system.layer(k, x_, theta_k))(x)

    def apply(self, k, x, theta_k):
        return self.layer(k, x, theta_k)

    def linearise(self, k, x, theta_k):
        return eqx.filter_vjp(lambda x_, th: self.layer(k, x_, th), x, theta_k)

    def conjugate(self, k, x, theta_k, p_next):
        return self.linearise(k, x, theta_k)[1](p_next)

    def tangent(self, k, x, theta_k, v):
        return jax.vmap(lambda x_, v_: self.system.tangent(k, x_, theta_k, v_))(x, v)

    def embed(self, x0, theta):
        return jax.vmap(lambda x_: self.system.embed(x_, theta))(x0)

    def project(self, z):
        return jax.vmap(self.system.project)(z)

    def inverse(self, k, z_next, theta_k):
        return jax.vmap(lambda z_: self.system.inverse(k, z_, theta_k))(z_next)

    def theta_at(self, theta, k):
        return self.system.theta_at(theta, k)

    def add_at(self, total, k, g_k):
        return self.system.add_at(total, k, g_k)

    def on_grid(self, k, pair):
        return Batched(self.system.on_grid(k, pair))


class BatchedField(VectorField):
    """`field` evaluated on every state of a batch `(B, n)`: `f(t, X, theta) = vmap(f)(X)`.

    Example:
        >>> field = lagrangian.NeuralODE(2)
        >>> lagrangian.BatchedField(field)(0.0, jnp.ones((5, 2)), field.init(jax.random.key(0))).shape
        (5, 2)
    """

    field: VectorField

    @property
    def state_dim(self) -> int:
        return self.field.state_dim

    def init(self, key, dtype=None):
        return self.field.init(key) if dtype is None else self.field.init(key, dtype)

    def __call__(self, t, x, theta):
        return jax.vmap(lambda x_: self.field(t, x_, theta))(x)


def batched(system: LayerMaps, x0: Array) -> LayerMaps:
    """`system` for the states `x0`: itself for one state `(n,)`, `system.batched()` for a batch `(B, n)`.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> type(lagrangian.batched(net, jnp.ones((5, 2)))).__name__, lagrangian.batched(net, jnp.ones(2)) is net
        ('Batched', True)
    """
    return system.batched() if x0.ndim == 2 else system
