"""Layered networks: the discrete-time systems of docs/design.md 2.3.

Each is a `LayerMaps` whose layer `Phi_k` is one line of mathematics; the
conjugate sweep (`integrators.sweep`) turns its stationarity conditions into
backpropagation.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .system import LayerMaps

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "identity": lambda z: z,
}
"""The activation functions by name (`MLP`, `ResNet` and `activation` accept these names)."""


def activation(name: str):
    """The activation function called `name` (one of `ACTIVATIONS`).

    Example:
        >>> lagrangian.activation("relu")(jnp.array([-1.0, 2.0]))
        Array([0., 2.], dtype=float64)
    """
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def _dense(key, n_out, n_in, scale, dtype):
    kw, kb = jax.random.split(key)
    w = scale * jax.random.normal(kw, (n_out, n_in), dtype) / jnp.sqrt(n_in)
    b = 0.1 * scale * jax.random.normal(kb, (n_out,), dtype)
    return {"W": w, "b": b}


class MLP(LayerMaps):
    """Multilayer perceptron `Phi_k(x) = sigma(W_k x + b_k)` with changing widths.

    `widths = (n_0, n_1, ..., n_N)`; `theta[k] = {"W": (n_{k+1}, n_k), "b": (n_{k+1},)}`.
    With `readout=True` the last layer is affine (no activation), as for logits.

    Example:
        >>> mlp = lagrangian.MLP((4, 16, 3), activation="tanh")
        >>> theta = mlp.init(jax.random.key(0))          # one pytree per layer (widths change)
        >>> integrators.output(mlp, theta, jnp.ones((5, 4))).shape
        (5, 3)
    """

    layout: ClassVar[str] = "unrolled"
    widths: tuple[int, ...] = eqx.field(static=True)
    activation: str = eqx.field(static=True, default="tanh")
    readout: bool = eqx.field(static=True, default=False)
    scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if len(self.widths) < 2 or any(int(w) < 1 for w in self.widths):
            raise ValueError(f"MLP widths must be at least two positive integers; got {self.widths}")
        activation(self.activation)

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def input_dim(self) -> int:
        return self.widths[0]

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        keys = jax.random.split(key, self.depth)
        return tuple(
            _dense(keys[k], self.widths[k + 1], self.widths[k], self.scale, dtype)
            for k in range(self.depth)
        )

    def layer(self, k, x: Float[Array, " n_k"], theta_k) -> Float[Array, " n_k1"]:
        z = theta_k["W"] @ x + theta_k["b"]
        if self.readout and k == self.depth - 1:
            return z
        return activation(self.activation)(z)


class ResNet(LayerMaps):
    """Residual network `Phi_k(x) = x + h sigma(W_k x + b_k)`: forward Euler of a
    neural ODE with layer-dependent parameters.

    `theta = {"W": (depth, d, d), "b": (depth, d)}` (stacked; the sweep scans).

    Example:
        >>> net = lagrangian.ResNet(dim=3, depth=10)
        >>> theta = net.init(jax.random.key(0))          # leaves stacked along a leading axis of 10
        >>> integrators.output(net, theta, jnp.ones(3)).shape
        (3,)
    """

    layout: ClassVar[str] = "stacked"
    dim: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    h: float = eqx.field(static=True, default=0.1)
    activation: str = eqx.field(static=True, default="tanh")
    scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if self.dim < 1 or self.depth < 1:
            raise ValueError(f"ResNet needs dim >= 1 and depth >= 1; got dim={self.dim}, depth={self.depth}")
        activation(self.activation)

    @property
    def input_dim(self) -> int:
        return self.dim

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        keys = jax.random.split(key, self.depth)
        layers = [_dense(k, self.dim, self.dim, self.scale, dtype) for k in keys]
        return jax.tree.map(lambda *a: jnp.stack(a), *layers)

    def layer(self, k, x, theta_k):
        return x + self.h * activation(self.activation)(theta_k["W"] @ x + theta_k["b"])


class Recurrent(LayerMaps):
    """Recurrent network with shared weights, driven by an input sequence `u`:

        x_{k+1} = tanh(W x_k + U u_k + b),   k = 0 .. N-1

    `theta = {"W": (d, d), "U": (d, m), "b": (d,)}` is the same at every step
    (layout ``"shared"``), so `dl/dtheta = sum_k (dPhi_k/dtheta)^T p_{k+1}`.

    Example:
        >>> rnn = lagrangian.Recurrent(inputs=jnp.ones((6, 2)), dim=3)      # 6 steps of a 2-D input sequence
        >>> theta = rnn.init(jax.random.key(0))                            # shared: W (3, 3), U (3, 2), b (3,)
        >>> rnn.depth, integrators.output(rnn, theta, jnp.zeros(3)).shape
        (6, (3,))
    """

    layout: ClassVar[str] = "shared"
    inputs: Float[Array, "N m"]
    dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if self.inputs.ndim != 2:
            raise ValueError(f"Recurrent inputs must have shape (steps, m); got {self.inputs.shape}")

    @property
    def depth(self) -> int:
        return self.inputs.shape[0]

    @property
    def input_dim(self) -> int:
        return self.dim

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        kw, ku, kb = jax.random.split(key, 3)
        d, m = self.dim, self.inputs.shape[1]
        return {
            "W": self.scale * jax.random.normal(kw, (d, d), dtype) / jnp.sqrt(d),
            "U": self.scale * jax.random.normal(ku, (d, m), dtype) / jnp.sqrt(m),
            "b": 0.1 * self.scale * jax.random.normal(kb, (d,), dtype),
        }

    def layer(self, k, x, theta):
        return jnp.tanh(theta["W"] @ x + theta["U"] @ self.inputs[k].astype(x.dtype) + theta["b"])
