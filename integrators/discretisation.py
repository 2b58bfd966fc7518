"""A vector field on a time grid, stepped by some scheme, is a layered system.

`Discretisation` is the common base of every time-stepping scheme: it holds
the field `f(t, x, theta)` and the grid `t_0 < ... < t_N`, shares `theta`
across steps (layout ``"shared"``), and its layer `Phi_k` advances from `t_k`
to `t_{k+1}`. Padding steps with `h_k = 0` (a repeated final time, used by the
adaptive grids) are identity maps.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from lagrangian import LayerMaps, VectorField


def uniform_grid(t_final: float, steps: int, t0: float = 0.0, dtype=jnp.float64) -> Float[Array, " N1"]:
    """`steps + 1` equally spaced times from `t0` to `t_final`: increasing, or decreasing
    (`t_final < t0`, steps `h = (t_final - t0) / steps < 0`) to integrate backward in time.

    Example:
        >>> integrators.uniform_grid(t_final=1.0, steps=4)
        Array([0.  , 0.25, 0.5 , 0.75, 1.  ], dtype=float64)
        >>> integrators.uniform_grid(t_final=0.0, steps=2, t0=1.0)            # backward in time
        Array([1. , 0.5, 0. ], dtype=float64)
    """
    if int(steps) < 1:
        raise ValueError(f"the number of steps must be >= 1; got {steps}")
    if not np.isfinite(t_final) or not np.isfinite(t0) or t_final == t0:
        raise ValueError(f"need finite t0 != t_final; got t0={t0}, t_final={t_final}")
    return jnp.linspace(t0, t_final, int(steps) + 1, dtype=dtype)


class Discretisation(LayerMaps):
    """Base class: `field` on the grid `ts`, one layer per step.

    Example:
        >>> ode = integrators.discretise(lagrangian.NeuralODE(2), integrators.uniform_grid(1.0, 20), "heun")
        >>> isinstance(ode, integrators.Discretisation), ode.depth       # one layer per step
        (True, 20)
    """

    layout: ClassVar[str] = "shared"
    field: VectorField
    ts: Float[Array, " N1"]

    def __check_init__(self):
        if self.ts.ndim != 1 or self.ts.shape[0] < 2:
            raise ValueError(f"time grid must be a vector of at least 2 times; got shape {self.ts.shape}")

    @property
    def depth(self) -> int:
        return self.ts.shape[0] - 1

    @property
    def input_dim(self) -> int:
        return self.field.input_dim

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        return self.field.init(key, dtype)

    def check(self, theta, x0):
        super().check(theta, x0)
        ts = np.asarray(self.ts)
        if not np.all(np.isfinite(ts)):
            raise ValueError("time grid holds non-finite values")
        steps = np.diff(ts) * np.sign(ts[-1] - ts[0])
        if ts[-1] == ts[0] or not np.all(steps >= 0):
            raise ValueError("time grid must be monotone, increasing or decreasing (backward in time); repeated "
                             "final times are allowed as padding")

    def on_grid(self, k, pair: Float[Array, " 2"]) -> "Discretisation":
        """This scheme on the one-step grid `pair = (t_k, t_{k+1})`: its layer 0 is layer `k`
        (the time cotangents of one step are taken through it)."""
        return eqx.tree_at(lambda s: s.ts, self, pair)

    def time(self, k, dtype):
        """`(t_k, h_k)` in the dtype of the state (a float64 grid does not promote float32 states).

        Both come out of one reduction of the pair `(t_k, t_{k+1})`, `t_k = t_k + 0 t_{k+1}`
        and `h_k = -t_k + t_{k+1}` (exact), not from indexing the grid: XLA's CPU backend
        fuses an indexed scalar into every element-wise kernel of the step that reads it and
        recomputes it per element, which doubled the time of a Runge-Kutta step's pullback
        at `d = 64`; a reduction is computed once.
        """
        pair = jax.lax.dynamic_slice_in_dim(self.ts, k, 2)
        t, h = jnp.sum(pair * jnp.array([[1, 0], [-1, 1]], pair.dtype), axis=1)
        return t.astype(dtype), h.astype(dtype)
