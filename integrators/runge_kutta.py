"""Runge-Kutta layer maps and their conjugate steps.

    Phi_k(x) = x + h sum_i b_i K_i,   K_i = f(t_k + c_i h, X_i, theta),
    X_i = x + h sum_j a_ij K_j.

The conjugate of one step is the stationarity of the discrete action written
stage by stage. With `lambda_i` the cotangent of `K_i` and
`mu_i = (df/dx(X_i))^T lambda_i`,

    lambda_i = h b_i p' + h sum_j a_ji mu_j,
    p = p' + sum_i mu_i,   dl/dtheta += sum_i (df/dtheta(X_i))^T lambda_i.

For explicit tableaux this is a back-substitution (j > i) using `jax.vjp` of
one evaluation of `f` per stage, and holds for every tableau, including those
with some `b_i = 0`. When all `b_i != 0`, `lambda_i = h b_i P_i` and it is the
partitioned partner method of `integrators.partner_tableau`. For implicit
tableaux the forward stages are solved by Newton's method (`integrators.newton`,
one solve per state, implicitly differentiable) and the
`lambda` equations, linear, by one dense solve with the stage Jacobians
(each `jax.vjp` of one evaluation of `f`).

The coefficients are data: `with_coefficients` hands `(a, b, c)` over as
arrays (traced under `jit`), so one compiled program serves every tableau with
the same `structure` (stage count and explicitness).
"""

import dataclasses
from collections.abc import Hashable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .discretisation import Discretisation
from .newton import newton_root
from .tableau import ButcherTableau


class RungeKutta(Discretisation):
    """`field` on the grid `ts`, stepped by the Runge-Kutta `tableau`.

    Implicit tableaux solve their stages by Newton's method to `rtol`/`atol`
    (max-norm on the stage slopes); the gradient is then exact up to that
    tolerance.

    `coefficients`, when given, are the `(a, b, c)` the steps compute with, as
    arrays; the static `tableau` then only fixes the `structure` (`s` stages,
    explicit or not; an explicit step reads `a_ij` for `j < i` only). Build it
    with `with_coefficients`.

    Example:
        >>> field = lagrangian.HarmonicOscillator()
        >>> ode = integrators.RungeKutta(field, integrators.uniform_grid(1.0, 10), integrators.GAUSS2)   # implicit, Newton stages
        >>> x1 = integrators.output(ode, field.init(jax.random.key(0)), jnp.array([1.0, 0.0]))
        >>> bool(jnp.allclose(x1, jnp.array([jnp.cos(1.0), -jnp.sin(1.0)]), atol=1e-8))     # order 4
        True
    """

    tableau: ButcherTableau = eqx.field(static=True)
    rtol: float = eqx.field(static=True, default=1e-14)
    atol: float = eqx.field(static=True, default=1e-14)
    max_newton_steps: int = eqx.field(static=True, default=50)
    coefficients: tuple[Float[Array, "s s"], Float[Array, " s"], Float[Array, " s"]] | None = None

    def __check_init__(self):
        if self.coefficients is not None:
            s = self.tableau.stages
            shapes = tuple(jnp.shape(v) for v in self.coefficients)
            if len(shapes) != 3 or shapes != ((s, s), (s,), (s,)):
                raise ValueError(f"coefficients (a, b, c) of a {s}-stage tableau must have shapes "
                                 f"({s}, {s}), ({s},), ({s},); got {shapes}")

    @property
    def structure(self) -> Hashable:
        """Everything static about a step except the tableau's numbers: two discretisations of one
        field and grid with equal `structure` run one program when their coefficients are arrays."""
        return (*self.padding_structure, self.tableau.stages)

    @property
    def padding_structure(self) -> Hashable:
        """`structure` without the stage count: two discretisations of one field and grid with
        equal `padding_structure`, padded to one stage count (`padded`), run one program."""
        return ("runge-kutta", self.tableau.explicit, self.rtol, self.atol, self.max_newton_steps)

    def with_coefficients(self, coefficients=None, dtype=None) -> "RungeKutta":
        """The same discretisation computing with `coefficients = (a, b, c)` passed as arrays
        (default: the tableau's own, in `dtype`, default the grid's), so that they can be arguments
        of a compiled program.

        Example:
            >>> field = lagrangian.HarmonicOscillator()
            >>> ts, theta, x0 = integrators.uniform_grid(1.0, 10), field.init(jax.random.key(0)), jnp.array([1.0, 0.0])
            >>> rk38, bosh3 = (integrators.discretise(field, ts, name) for name in ("rk38", "bosh3"))
            >>> rk38.structure == bosh3.structure                       # 4 explicit stages each
            True
            >>> run = jax.jit(lambda abc: integrators.output(rk38.with_coefficients(abc), theta, x0))
            >>> x1 = run(bosh3.with_coefficients().coefficients)        # rk38's program, bosh3's numbers
            >>> bool(jnp.allclose(x1, integrators.output(bosh3, theta, x0), rtol=0.0, atol=1e-15))
            True
        """
        if coefficients is None:
            dtype = self.ts.dtype if dtype is None else dtype
            tab = self.tableau
            coefficients = tuple(np.asarray(v, dtype=dtype) for v in (tab.a, tab.b, tab.c))
        return dataclasses.replace(self, coefficients=tuple(coefficients))

    def padded(self, stages: int) -> "RungeKutta":
        """The same discretisation with its tableau padded to `stages` stages
        (`ButcherTableau.padded`: zero coefficients, the same map up to exact zeros), so that
        tableaux of different stage counts run one program (at the cost of the added stages).

        Example:
            >>> field, ts = lagrangian.HarmonicOscillator(), integrators.uniform_grid(1.0, 10)
            >>> theta, x0 = field.init(jax.random.key(0)), jnp.array([1.0, 0.0])
            >>> euler, dopri5 = (integrators.discretise(field, ts, name) for name in ("euler", "dopri5"))
            >>> euler.padded(7).structure == dopri5.structure
            True
            >>> bool(jnp.all(integrators.output(euler.padded(7), theta, x0) == integrators.output(euler, theta, x0)))
            True
        """
        return dataclasses.replace(self, tableau=self.tableau.padded(stages), coefficients=None)

    def _abc(self, dtype):
        """`(a, b, c, used)`: the coefficients (arrays in `dtype`, or the tableau's floats), and
        `used(v)`, False for a zero of the tableau (skipped; with `coefficients` every entry of the
        structure is used)."""
        if self.coefficients is None:
            tab = self.tableau
            return tab.a, tab.b, tab.c, lambda v: v != 0.0
        return (*(jnp.asarray(v, dtype) for v in self.coefficients), lambda v: True)

    def _f(self, t, x, theta):
        """The field at one state or, by `jax.vmap`, a batch."""
        if x.ndim == 2:
            return jax.vmap(lambda x_: self.field(t, x_, theta))(x)
        return self.field(t, x, theta)

    def stages(self, k, x, theta):
        """The stage values `X_i` and slopes `K_i` of step `k`, each of shape `(s, n)`
        (explicit recursion, or a Newton solve of `K_i = f(t + c_i h, X_i)`)."""
        a, _, c, used = self._abc(x.dtype)
        t, h = self.time(k, x.dtype)
        s = self.tableau.stages
        explicit = self.tableau.explicit

        def stage_input(i, ks):
            xi = x
            for j in range(i if explicit else s):
                if used(a[i][j]):
                    xi = xi + (h * a[i][j]) * ks[j]
            return xi

        if explicit:
            xs, ks = [], []
            for i in range(s):
                xs.append(stage_input(i, ks))
                ks.append(self._f(t + c[i] * h, xs[i], theta))
            return jnp.stack(xs), jnp.stack(ks)

        if x.ndim == 2:  # one Newton solve per state: block-diagonal stage Jacobians
            xs, ks = jax.vmap(lambda x_: self.stages(k, x_, theta))(x)
            return jnp.swapaxes(xs, 0, 1), jnp.swapaxes(ks, 0, 1)

        def residual(ks):
            return jnp.stack([ks[i] - self.field(t + c[i] * h, stage_input(i, ks), theta) for i in range(s)])

        guess = jnp.broadcast_to(self.field(t, x, theta), (s,) + x.shape)
        ks = newton_root(residual, guess, self.rtol, self.atol, self.max_newton_steps)
        return jnp.stack([stage_input(i, ks) for i in range(s)]), ks

    def layer(self, k, x, theta):
        _, h = self.time(k, x.dtype)
        _, ks = self.stages(k, x, theta)
        _, b, _, used = self._abc(x.dtype)
        return x + h * sum(b[i] * ks[i] for i in range(self.tableau.stages) if used(b[i]))

    def conjugate(self, k, x, theta, p_next):
        if x.ndim == 2 and not self.tableau.explicit:
            # implicit stages are solved per state; sum the theta-cotangents over the batch
            p, g = jax.vmap(self.conjugate, in_axes=(None, 0, None, 0))(k, x, theta, p_next)
            return p, jax.tree.map(lambda a: jnp.sum(a, axis=0), g)
        a, b, c, used = self._abc(x.dtype)
        t, h = self.time(k, x.dtype)
        xs, _ = self.stages(k, x, theta)
        s = self.tableau.stages
        pullbacks = [
            eqx.filter_vjp(lambda x_, th, i=i: self._f(t + c[i] * h, x_, th), xs[i], theta)[1]
            for i in range(s)
        ]
        if self.tableau.explicit:
            cotangents = [None] * s
            for i in reversed(range(s)):
                lam = (h * b[i]) * p_next
                for j in range(i + 1, s):
                    if used(a[j][i]):
                        lam = lam + (h * a[j][i]) * cotangents[j][0]
                cotangents[i] = pullbacks[i](lam)
        else:
            lams = self._implicit_cotangents(h, p_next, pullbacks)
            cotangents = [pullbacks[i](lams[i]) for i in range(s)]
        p = p_next + sum(mu for mu, _ in cotangents)
        grad = jax.tree.map(lambda *g: sum(g), *[g for _, g in cotangents])
        return p, grad

    def _implicit_cotangents(self, h, p_next, pullbacks):
        """Solve `lambda_i - h sum_j a_ji J_j^T lambda_j = h b_i p'` (dense, `s n` unknowns)."""
        s, n = self.tableau.stages, p_next.shape[0]
        a, b, _, _ = self._abc(p_next.dtype)
        eye = jnp.eye(n, dtype=p_next.dtype)
        # J_j^T as a matrix: column m is J_j^T e_m (one vjp per basis vector, vmapped).
        jt = [jax.vmap(lambda e, j=j: pullbacks[j](e)[0])(eye).T for j in range(s)]
        blocks = [
            [(eye if i == j else 0.0 * eye) - (h * a[j][i]) * jt[j] for j in range(s)] for i in range(s)
        ]
        rhs = jnp.concatenate([(h * b[i]) * p_next for i in range(s)])
        lam = jnp.linalg.solve(jnp.block(blocks), rhs)
        return [lam[i * n : (i + 1) * n] for i in range(s)]
