"""Training dynamics as vector fields on the flattened parameters.

The training risk of a layered network on a fixed data set,

    R(theta) = l(Phi_{N-1}( ... Phi_0(X) ...)),                (`network_risk`)

turns learning into a flow that the project's integrators step like any other:

- `GradientFlow`: `dtheta/dt = -grad R(theta) - lambda theta` (weight decay
  `lambda`). Forward Euler with step `eta` is gradient descent with learning rate `eta`.
- `HeavyBall`: `dq/dt = v`, `dv/dt = -grad R(q) - lambda q - gamma v`, the momentum
  flow. Without friction (`gamma = 0`) it is Hamilton's equations of
  `H(q, v) = |v|^2/2 + R(q) + lambda |q|^2/2`, separable, so the splitting
  schemes (leapfrog, symplectic Euler, Yoshida) step it symplectically. With
  friction the phase-space divergence is `-gamma n` (`n` parameters), so the
  flow map contracts volume as `det M(t) = exp(-gamma n t)`; a splitting kick
  then reads `v` as well, `v -> (1 - c h gamma) v - c h grad R(q)`, of
  determinant `(1 - c h gamma)^n`.

The state is the flat vector `ravel_pytree(params)` (`HeavyBall`: `(q, v)`,
length `2n`); `unflatten` gives the parameter pytree back. `theta` of these
fields holds the scalars of the dynamics (`weight_decay`, `friction`), so the
same field is reused for a sweep over them. The force `grad R` is `jax.vjp` of
one evaluation of the risk at one parameter state: it is the vector field,
not a derivative through a solve.
"""

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree, Scalar

from .loss import Loss
from .system import LayerMaps, VectorField


def network_risk(network: LayerMaps, params: PyTree, inputs: Float[Array, "B n0"], loss: Loss) -> Scalar:
    """`R(params) = l(x_N)` with `x_{k+1} = Phi_k(x_k)` from the batch `x_0 = inputs` (B, n0).

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 1))
        >>> params = mlp.init(jax.random.key(0))
        >>> risk = lagrangian.network_risk(mlp, params, jnp.ones((4, 2)), lagrangian.SquaredError())
        >>> bool(risk == lagrangian.SquaredError()(integrators.output(mlp, params, jnp.ones((4, 2)))))
        True
    """
    x = inputs
    for k in range(network.depth):
        x = network.apply(k, x, network.theta_at(params, k))
    return loss(x)


class _Training(VectorField):
    """Shared parts: the network, the data, the loss, and the parameter layout."""

    network: LayerMaps
    inputs: Float[Array, "B n0"]
    loss: Loss
    unflatten: Callable[[Array], PyTree] = eqx.field(static=True)
    parameters: int = eqx.field(static=True)

    def risk(self, q: Float[Array, " n"]) -> Scalar:
        """`R` at the flat parameters `q`."""
        return network_risk(self.network, self.unflatten(q), self.inputs, self.loss)

    def force(self, q: Float[Array, " n"]) -> Float[Array, " n"]:
        """`-grad R(q)`: `jax.vjp` of one evaluation of the risk."""
        value, pullback = jax.vjp(self.risk, q)
        return -pullback(jnp.ones_like(value))[0]


class GradientFlow(_Training):
    """`dtheta/dt = -grad R(theta) - lambda theta`; `theta_field = {"weight_decay": lambda}`.

    Build it with `GradientFlow.of(network, params, inputs, loss)`, which also
    returns the initial flat state.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 1))
        >>> params = mlp.init(jax.random.key(0))
        >>> flow, x0 = lagrangian.GradientFlow.of(mlp, params, jnp.ones((4, 2)), lagrangian.SquaredError())
        >>> x0.shape == (flow.state_dim,)           # the flattened parameters
        True
        >>> gd = integrators.discretise(flow, integrators.uniform_grid(1.0, 10), "euler")   # 10 steps of gradient descent
    """

    weight_decay: float = eqx.field(static=True, default=0.0)

    @classmethod
    def of(cls, network: LayerMaps, params: PyTree, inputs, loss: Loss, weight_decay: float = 0.0):
        """`(field, x0)`: the flow for `network` on `(inputs, loss)`, and `x0 = ravel(params)`."""
        flat, unflatten = ravel_pytree(params)
        field = cls(network=network, inputs=jnp.asarray(inputs), loss=loss, unflatten=unflatten,
                    parameters=int(flat.shape[0]), weight_decay=float(weight_decay))
        return field, flat

    @property
    def state_dim(self) -> int:
        return self.parameters

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        return {"weight_decay": jnp.asarray(self.weight_decay, dtype)}

    def __call__(self, t, x, theta):
        return self.force(x) - theta["weight_decay"] * x


class HeavyBall(_Training):
    """`x = (q, v)`: `dq/dt = v`, `dv/dt = -grad R(q) - lambda q - gamma v`.

    `theta_field = {"weight_decay": lambda, "friction": gamma}`. Declared separable
    for the splitting schemes: `dq/dt` reads `v` only, and `dv/dt` reads `q` only
    when `gamma = 0` (with friction a kick is the contraction described in the
    module docstring). Build it with `HeavyBall.of(...)`, which starts at rest
    (`v = 0`) unless a velocity is given.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 1))
        >>> flow, x0 = lagrangian.HeavyBall.of(mlp, mlp.init(jax.random.key(0)), jnp.ones((4, 2)),
        ...                                     lagrangian.SquaredError(), friction=0.5)
        >>> x0.shape == (2 * flow.parameters,)       # (q, v), starting at rest
        True
    """

    separable: ClassVar[bool] = True
    weight_decay: float = eqx.field(static=True, default=0.0)
    friction: float = eqx.field(static=True, default=0.0)

    @classmethod
    def of(cls, network: LayerMaps, params: PyTree, inputs, loss: Loss, weight_decay: float = 0.0,
           friction: float = 0.0, velocity: PyTree | None = None):
        """`(field, x0)` with `x0 = (ravel(params), ravel(velocity) or 0)`."""
        flat, unflatten = ravel_pytree(params)
        v0 = jnp.zeros_like(flat) if velocity is None else ravel_pytree(velocity)[0]
        if v0.shape != flat.shape:
            raise ValueError(f"velocity has {v0.shape[0]} entries but params have {flat.shape[0]}")
        field = cls(network=network, inputs=jnp.asarray(inputs), loss=loss, unflatten=unflatten,
                    parameters=int(flat.shape[0]), weight_decay=float(weight_decay), friction=float(friction))
        return field, jnp.concatenate([flat, v0])

    @property
    def state_dim(self) -> int:
        return 2 * self.parameters

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        return {"weight_decay": jnp.asarray(self.weight_decay, dtype), "friction": jnp.asarray(self.friction, dtype)}

    def __call__(self, t, x, theta):
        n = self.parameters
        q, v = x[:n], x[n:]
        dv = self.force(q) - theta["weight_decay"] * q - theta["friction"] * v
        return jnp.concatenate([v, dv])

    def energy(self, x: Float[Array, " 2n"], theta) -> Scalar:
        """`H = |v|^2/2 + R(q) + lambda |q|^2/2` (conserved when `gamma = 0`)."""
        n = self.parameters
        q, v = x[:n], x[n:]
        return 0.5 * jnp.vdot(v, v) + self.risk(q) + 0.5 * theta["weight_decay"] * jnp.vdot(q, q)

    def split(self, x: Float[Array, "*T 2n"]) -> tuple[PyTree, PyTree]:
        """`(params, velocity)` pytrees of one state (`(2n,)`) or, vmapped, of a trajectory (`(T, 2n)`)."""
        n = self.parameters
        if x.ndim == 2:
            return jax.vmap(self.split)(x)
        return self.unflatten(x[:n]), self.unflatten(x[n:])
