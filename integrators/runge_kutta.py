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
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from lagrangian import Batched, BatchedField

from .discretisation import Discretisation
from .newton import newton_root
from .tableau import ButcherTableau


class RungeKutta(Discretisation):
    """`field` on the grid `ts`, stepped by the Runge-Kutta `tableau`.

    Implicit tableaux solve their stages by Newton's method to `rtol`/`atol`
    (max-norm on the stage slopes); the gradient is then exact up to that
    tolerance.

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

    def batched(self):
        """On a batch `(B, n)`: an explicit scheme steps the `BatchedField` (each stage one vmapped
        evaluation of `f`, its pullback one `jax.vjp` of it, the theta-cotangent summed over the
        batch); an implicit one solves the stages of each state on its own (`Batched`)."""
        if not self.tableau.explicit:
            return Batched(self)
        return dataclasses.replace(self, field=BatchedField(self.field))

    def stages(self, k, x, theta):
        """The stage values `X_i` and slopes `K_i` of step `k`, each of shape `(s, n)`
        (explicit recursion, or a Newton solve of `K_i = f(t + c_i h, X_i)`)."""
        xs, ks, _ = self._stages(k, x, theta)
        return jnp.stack(xs), jnp.stack(ks)

    def _stages(self, k, x, theta, evaluate=None):
        """`stages`, and the `extra` of each stage when `evaluate(i, X_i) -> (K_i, extra)`
        replaces the evaluation of `f` at an explicit stage (`linearise` takes each stage's
        `jax.vjp` there, so `f` is evaluated once per stage); `None` for implicit tableaux.
        Lists of the `s` stages: the step reads them one by one (stacking them into one
        array would put a concatenation and its transpose into every step)."""
        tab = self.tableau
        a, c, s = tab.a, tab.c, tab.stages
        t, h = self.time(k, x.dtype)

        def stage_input(i, ks):
            xi = x
            for j in range(i if tab.explicit else s):
                if a[i][j] != 0.0:
                    xi = xi + (h * a[i][j]) * ks[j]
            return xi

        if tab.explicit:
            if evaluate is None:
                evaluate = lambda i, xi: (self.field(t + c[i] * h, xi, theta), None)   # noqa: E731
            xs, ks, extras = [], [], []
            for i in range(s):
                xs.append(stage_input(i, ks))
                ki, extra = evaluate(i, xs[i])
                ks.append(ki)
                extras.append(extra)
            return xs, ks, extras

        def residual(ks):
            return jnp.stack([ks[i] - self.field(t + c[i] * h, stage_input(i, ks), theta) for i in range(s)])

        guess = jnp.broadcast_to(self.field(t, x, theta), (s,) + x.shape)
        ks = newton_root(residual, guess, self.rtol, self.atol, self.max_newton_steps)
        return [stage_input(i, ks) for i in range(s)], list(ks), None

    def layer(self, k, x, theta):
        _, h = self.time(k, x.dtype)
        _, ks, _ = self._stages(k, x, theta)
        b = self.tableau.b
        return x + h * sum(b[i] * ks[i] for i in range(self.tableau.stages) if b[i] != 0.0)

    @property
    def invertible(self) -> bool:
        """Whether `inverse` reconstructs a step: the tableau is symmetric (its own adjoint)."""
        return self.tableau.symmetric

    def inverse(self, k, x_next, theta):
        """`x_k = Phi_{-h}(t_{k+1}, x_{k+1})`: a symmetric tableau (Gauss-Legendre, Lobatto IIIA/IIIB)
        is its own adjoint, so the same step run backward from `t_{k+1}` undoes step `k`, exactly
        up to the Newton tolerance of its stages. Refused for any other tableau (an explicit one
        has the McCallum-Foster reversible form, `integrators.ReversibleRungeKutta`)."""
        if not self.invertible:
            raise ValueError(f"tableau {self.tableau.name!r} is not symmetric: Phi_-h does not invert its step")
        pair = jax.lax.dynamic_slice_in_dim(self.ts, k, 2)
        return self.on_grid(k, pair[::-1]).layer(0, x_next, theta)

    def linearise(self, k, x, theta):
        """The step and its stage-wise pullback (`StagePullback`): one `jax.vjp` of `f` per stage,
        taken where the stage is evaluated (explicit tableaux), or at the Newton-solved stages."""
        t, h = self.time(k, x.dtype)
        c, b, s = self.tableau.c, self.tableau.b, self.tableau.stages

        def evaluate(i, xi):
            return eqx.filter_vjp(lambda x_, th: self.field(t + c[i] * h, x_, th), xi, theta)

        xs, ks, pullbacks = self._stages(k, x, theta, evaluate)
        if pullbacks is None:
            pullbacks = [evaluate(i, xs[i])[1] for i in range(s)]
        x_next = x + h * sum(b[i] * ks[i] for i in range(s) if b[i] != 0.0)
        return x_next, StagePullback(self.tableau, h, tuple(pullbacks))


class StagePullback(eqx.Module):
    """The conjugate of one Runge-Kutta step from the pullbacks `mu -> J_i^T mu` of `f` at
    its stage values:

        lambda_i = h b_i p' + h sum_j a_ji mu_j,   mu_i = J_i^T lambda_i,
        p = p' + sum_i mu_i,   dl/dtheta += sum_i (df/dtheta(X_i))^T lambda_i,

    back-substituted (`j > i`) for an explicit tableau, one dense solve for an implicit one.
    A pytree: the sweep can store it (`integrators.StoreStages`).

    Example:
        >>> field = lagrangian.NeuralODE(2)
        >>> ode = integrators.discretise(field, integrators.uniform_grid(1.0, 4), "rk4")
        >>> x_next, pullback = ode.linearise(0, jnp.ones(2), field.init(jax.random.key(0)))
        >>> p, grad = pullback(jnp.ones(2))       # (dPhi/dx)^T p', (dPhi/dtheta)^T p'
        >>> p.shape, sorted(grad)
        ((2,), ['W', 'b'])
    """

    tableau: ButcherTableau = eqx.field(static=True)
    h: Array
    pullbacks: tuple

    def __call__(self, p_next):
        tab, h, s = self.tableau, self.h, self.tableau.stages
        a, b = tab.a, tab.b
        if tab.explicit:
            cotangents = [None] * s
            for i in reversed(range(s)):
                lam = (h * b[i]) * p_next
                for j in range(i + 1, s):
                    if a[j][i] != 0.0:
                        lam = lam + (h * a[j][i]) * cotangents[j][0]
                cotangents[i] = self.pullbacks[i](lam)
        else:
            cotangents = [self.pullbacks[i](lam) for i, lam in enumerate(self._implicit_cotangents(p_next))]
        p = p_next + sum(mu for mu, _ in cotangents)
        grad = jax.tree.map(lambda *g: sum(g), *[g for _, g in cotangents])
        return p, grad

    def _implicit_cotangents(self, p_next):
        """Solve `lambda_i - h sum_j a_ji J_j^T lambda_j = h b_i p'` (dense, `s n` unknowns)."""
        tab, h = self.tableau, self.h
        s, n = tab.stages, p_next.shape[0]
        eye = jnp.eye(n, dtype=p_next.dtype)
        # J_j^T as a matrix: column m is J_j^T e_m (one vjp per basis vector, vmapped).
        jt = [jax.vmap(lambda e, j=j: self.pullbacks[j](e)[0])(eye).T for j in range(s)]
        blocks = [
            [(eye if i == j else 0.0 * eye) - (h * tab.a[j][i]) * jt[j] for j in range(s)] for i in range(s)
        ]
        rhs = jnp.concatenate([(h * tab.b[i]) * p_next for i in range(s)])
        lam = jnp.linalg.solve(jnp.block(blocks), rhs)
        return [lam[i * n : (i + 1) * n] for i in range(s)]
