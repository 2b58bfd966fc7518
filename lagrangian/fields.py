"""Continuous-time vector fields `dx/dt = f(t, x, theta)`.

A field becomes layer maps once a time grid and a Runge-Kutta tableau are
chosen (`integrators.discretise`); forward Euler of `NeuralODE` is a ResNet
with shared weights.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from .system import VectorField


class NeuralODE(VectorField):
    """`f(x) = tanh(W x + b)`; `theta = {"W": (d, d), "b": (d,)}`.

    Example:
        >>> field = lagrangian.NeuralODE(state_dim=2)
        >>> theta = field.init(jax.random.key(0))
        >>> field(0.0, jnp.ones(2), theta).shape
        (2,)
    """

    state_dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True, default=1.0)

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        kw, kb = jax.random.split(key)
        d = self.state_dim
        return {
            "W": self.scale * jax.random.normal(kw, (d, d), dtype) / jnp.sqrt(d),
            "b": 0.1 * self.scale * jax.random.normal(kb, (d,), dtype),
        }

    def __call__(self, t, x, theta):
        return jnp.tanh(theta["W"] @ x + theta["b"])


class MLPField(VectorField):
    """A small-MLP vector field `f(x) = W2 tanh(W1 x + b1) + b2` with `hidden` units.

    Example:
        >>> field = lagrangian.MLPField(state_dim=2, hidden=16)
        >>> sorted(field.init(jax.random.key(0)))
        ['W1', 'W2', 'b1', 'b2']
    """

    state_dim: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True, default=16)
    scale: float = eqx.field(static=True, default=1.0)

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        d, m = self.state_dim, self.hidden
        return {
            "W1": self.scale * jax.random.normal(k1, (m, d), dtype) / jnp.sqrt(d),
            "b1": 0.1 * self.scale * jax.random.normal(k2, (m,), dtype),
            "W2": self.scale * jax.random.normal(k3, (d, m), dtype) / jnp.sqrt(m),
            "b2": 0.1 * self.scale * jax.random.normal(k4, (d,), dtype),
        }

    def __call__(self, t, x, theta):
        return theta["W2"] @ jnp.tanh(theta["W1"] @ x + theta["b1"]) + theta["b2"]


class Linear(VectorField):
    """`dx/dt = A x`; `theta = {"A": (d, d)}`. Closed-form flow `x(t) = exp(A t) x0`.

    Example:
        >>> field = lagrangian.Linear(state_dim=3)
        >>> field.init(jax.random.key(0))["A"].shape
        (3, 3)
    """

    state_dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True, default=1.0)

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        d = self.state_dim
        return {"A": self.scale * jax.random.normal(key, (d, d), dtype) / jnp.sqrt(d)}

    def __call__(self, t, x, theta):
        return theta["A"] @ x


class HarmonicOscillator(VectorField):
    """`x = (q, v)`, `dq/dt = v`, `dv/dt = -omega^2 q`; `theta = {"omega": ()}`.

    Separable (`dq/dt` depends on `v` only, `dv/dt` on `q` only); its physical
    energy is `E = v^2 / 2 + omega^2 q^2 / 2` (`physical_energy`).

    Example:
        >>> osc = lagrangian.HarmonicOscillator(omega=2.0)
        >>> osc(0.0, jnp.array([1.0, 0.0]), osc.init(jax.random.key(0)))   # (v, -omega^2 q)
        Array([ 0., -4.], dtype=float64)
    """

    separable: ClassVar[bool] = True

    state_dim: int = eqx.field(static=True, default=2)
    omega: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if self.state_dim != 2:
            raise ValueError(f"HarmonicOscillator has state_dim 2; got {self.state_dim}")

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        return {"omega": jnp.asarray(self.omega, dtype)}

    def __call__(self, t, x, theta):
        q, v = x[0], x[1]
        return jnp.stack([v, -theta["omega"] ** 2 * q])

    def physical_energy(self, x, theta):
        return 0.5 * x[..., 1] ** 2 + 0.5 * theta["omega"] ** 2 * x[..., 0] ** 2


class Pendulum(VectorField):
    """`x = (q, v)`, `dq/dt = v`, `dv/dt = -omega^2 sin q`; `theta = {"omega": ()}`.

    Separable; its physical energy is `E = v^2 / 2 - omega^2 cos q` (`physical_energy`).

    Example:
        >>> pendulum = lagrangian.Pendulum()
        >>> pendulum(0.0, jnp.array([0.0, 1.0]), pendulum.init(jax.random.key(0)))
        Array([ 1., -0.], dtype=float64)
    """

    separable: ClassVar[bool] = True

    state_dim: int = eqx.field(static=True, default=2)
    omega: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if self.state_dim != 2:
            raise ValueError(f"Pendulum has state_dim 2; got {self.state_dim}")

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        return {"omega": jnp.asarray(self.omega, dtype)}

    def __call__(self, t, x, theta):
        q, v = x[0], x[1]
        return jnp.stack([v, -theta["omega"] ** 2 * jnp.sin(q)])

    def physical_energy(self, x, theta):
        return 0.5 * x[..., 1] ** 2 - theta["omega"] ** 2 * jnp.cos(x[..., 0])
