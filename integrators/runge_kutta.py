"""A vector field on a time grid, stepped by a Runge-Kutta tableau, is a layered system.

    Phi_k(x) = x + h_k sum_i b_i K_i,   K_i = f(t_k + c_i h_k, X_i, theta),
    X_i = x + h_k sum_j a_ij K_j,       h_k = t_{k+1} - t_k.

The conjugate of one step is the stage-wise discrete adjoint (the stationarity
of the discrete action written stage by stage), valid for every explicit
tableau, including those with some `b_i = 0`:

    lambda_i = h b_i p' + h sum_{j > i} a_ji mu_j,
    (mu_i, g_i) = (df/dX_i, df/dtheta)^T lambda_i   (jax.vjp of one evaluation of f),
    p = p' + sum_i mu_i,   dl/dtheta += sum_i g_i.

When all `b_i != 0`, `lambda_i = h b_i P_i` and this is the partitioned partner
method of Sanz-Serna (2016), `A_hat_ij = b_j - b_j a_ji / b_i`.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from lagrangian import LayerMaps, VectorField

from .tableau import ButcherTableau, tableau as tableau_named


def uniform_grid(t_final: float, steps: int, t0: float = 0.0, dtype=jnp.float64) -> Float[Array, " N1"]:
    """`steps + 1` equally spaced times from `t0` to `t_final`."""
    if int(steps) < 1:
        raise ValueError(f"the number of steps must be >= 1; got {steps}")
    if not np.isfinite(t_final) or not np.isfinite(t0) or t_final <= t0:
        raise ValueError(f"need finite t0 < t_final; got t0={t0}, t_final={t_final}")
    return jnp.linspace(t0, t_final, int(steps) + 1, dtype=dtype)


class RungeKutta(LayerMaps):
    """`field` discretised on the grid `ts` by the explicit `tableau` (layout ``"shared"``)."""

    layout: ClassVar[str] = "shared"
    field: VectorField
    ts: Float[Array, " N1"]
    tableau: ButcherTableau = eqx.field(static=True)

    def __check_init__(self):
        if not self.tableau.explicit:
            raise ValueError(
                f"tableau {self.tableau.name!r} is implicit; RungeKutta steps explicit tableaux only"
            )
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
        if not np.all(np.diff(ts) > 0):
            raise ValueError("time grid must be strictly increasing")

    def _time(self, k, dtype):
        """`(t_k, h_k)` in the dtype of the state (a float64 grid does not promote float32 states)."""
        t = self.ts[k]
        return t.astype(dtype), (self.ts[k + 1] - t).astype(dtype)

    def _stages(self, k, x, theta):
        """The stage values `X_i` and slopes `K_i` of step `k`."""
        a, c = self.tableau.a, self.tableau.c
        t, h = self._time(k, x.dtype)
        xs_, ks_ = [], []
        for i in range(self.tableau.stages):
            xi = x
            for j in range(i):
                if a[i][j] != 0.0:
                    xi = xi + (h * a[i][j]) * ks_[j]
            xs_.append(xi)
            ks_.append(self.field(t + c[i] * h, xi, theta))
        return xs_, ks_

    def layer(self, k, x, theta):
        _, h = self._time(k, x.dtype)
        _, ks_ = self._stages(k, x, theta)
        return x + h * sum(bi * ki for bi, ki in zip(self.tableau.b, ks_) if bi != 0.0)

    def conjugate(self, k, x, theta, p_next):
        a, b, c = self.tableau.a, self.tableau.b, self.tableau.c
        t, h = self._time(k, x.dtype)
        stages, _ = self._stages(k, x, theta)
        s = self.tableau.stages
        mu = [None] * s
        p = p_next
        grad = jax.tree.map(jnp.zeros_like, theta)
        for i in reversed(range(s)):
            lam = (h * b[i]) * p_next if b[i] != 0.0 else jnp.zeros_like(p_next)
            for j in range(i + 1, s):
                if a[j][i] != 0.0:
                    lam = lam + (h * a[j][i]) * mu[j]
            _, pullback = jax.vjp(lambda x_, th: self.field(t + c[i] * h, x_, th), stages[i], theta)
            mu[i], g_i = pullback(lam)
            p = p + mu[i]
            grad = jax.tree.map(jnp.add, grad, g_i)
        return p, grad


def discretise(
    field: VectorField,
    ts: Float[Array, " N1"],
    method: ButcherTableau | str = "euler",
) -> RungeKutta:
    """The layer maps of `field` on the grid `ts` for the tableau `method` (or its name)."""
    tab = tableau_named(method) if isinstance(method, str) else method
    return RungeKutta(field=field, ts=jnp.asarray(ts), tableau=tab)
