"""Splitting (composition) methods for separable fields `x = (q, v)`:

    dq/dt = f_q(t, v),   dv/dt = f_v(t, q).

A step is a sequence of kicks `v += c h f_v(q)` and drifts `q += d h f_q(v)`
(`integrators.SplittingTableau`); every sub-step is a symplectic shear, so
leapfrog, symplectic Euler and Yoshida's composition keep the energy of a
Hamiltonian system bounded over long runs. The conjugate step is `jax.vjp` of
the one layer map, i.e. the cotangent lift of each shear in reverse order.
"""

import equinox as eqx
import jax.numpy as jnp

from .discretisation import Discretisation
from .tableau import SplittingTableau


class Splitting(Discretisation):
    """`field` (separable, state `(q, v)`) on the grid `ts`, stepped by `tableau`.

    Example:
        >>> field = lagrangian.Pendulum()                                      # separable x = (q, v)
        >>> ode = integrators.Splitting(field, integrators.uniform_grid(10.0, 100), integrators.LEAPFROG)
        >>> sol = integrators.sweep(ode, field.init(jax.random.key(0)), jnp.array([1.0, 0.0]), lagrangian.SquaredError())
        >>> sol.grad["omega"].shape
        ()
    """

    tableau: SplittingTableau = eqx.field(static=True)

    def __check_init__(self):
        if not getattr(self.field, "separable", False):
            raise ValueError(
                f"splitting method {self.tableau.name!r} needs a separable field x = (q, v) with "
                f"dq/dt = f_q(v), dv/dt = f_v(q); {type(self.field).__name__} does not declare separable = True"
            )

    def layer(self, k, x, theta):
        t, h = self.time(k, x.dtype)
        n = x.shape[0] // 2
        q, v = x[:n], x[n:]
        tq = t  # the time carried by the drifts
        for kind, coeff in self.tableau.steps:
            if kind == "kick":
                v = v + (coeff * h) * self.field(tq, jnp.concatenate([q, v]), theta)[n:]
            else:
                q = q + (coeff * h) * self.field(tq, jnp.concatenate([q, v]), theta)[:n]
                tq = tq + coeff * h
        return jnp.concatenate([q, v])
