"""Splitting (composition) methods for separable fields `x = (q, v)`:

    dq/dt = f_q(t, v),   dv/dt = f_v(t, q).

A step is a sequence of kicks `v += c h f_v(q)` and drifts `q += d h f_q(v)`
(`integrators.SplittingTableau`); every sub-step is a symplectic shear, so
leapfrog, symplectic Euler and Yoshida's composition keep the energy of a
Hamiltonian system bounded over long runs. The conjugate step is `jax.vjp` of
the one layer map, i.e. the cotangent lift of each shear in reverse order.

Every shear is undone exactly by the opposite shear, so every splitting step has an
algebraic inverse (`Splitting.inverse`: the sub-steps in reverse order with `-h`);
for a symmetric (palindromic) splitting such as leapfrog or Yoshida's composition
that is the step itself with `-h`, and `integrators.Reversible()` memory applies.
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
        for (kind, coeff), tau in zip(self.tableau.steps, self.tableau.fractions):
            q, v = self._shear(kind, coeff * h, t + tau * h, q, v, theta)
        return jnp.concatenate([q, v])

    def _shear(self, kind: str, dh, t, q, v, theta):
        """One sub-step of size `dh` reading the field at `t`: a kick `v += dh f_v(t, q)` or a
        drift `q += dh f_q(t, v)` (`dh < 0` undoes it)."""
        n = q.shape[0]
        if kind == "kick":
            return q, v + dh * self.field(t, jnp.concatenate([q, v]), theta)[n:]
        return q + dh * self.field(t, jnp.concatenate([q, v]), theta)[:n], v

    invertible = True
    """Every splitting step is undone shear by shear (`inverse`)."""

    def inverse(self, k, x_next, theta):
        """`x_k` from `x_{k+1}`: every kick and drift undone, last to first, at the time it was
        applied (`v -= c h f_v(q)`, `q -= d h f_q(v)`): for a palindromic splitting, the step
        with `-h` from `t_{k+1}`."""
        t, h = self.time(k, x_next.dtype)
        n = x_next.shape[0] // 2
        q, v = x_next[:n], x_next[n:]
        for (kind, coeff), tau in zip(reversed(self.tableau.steps), reversed(self.tableau.fractions)):
            q, v = self._shear(kind, -coeff * h, t + tau * h, q, v, theta)
        return jnp.concatenate([q, v])
