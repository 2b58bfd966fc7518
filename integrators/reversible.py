"""Algebraically reversible schemes: `x_k` is reconstructed from `x_{k+1}`.

With `integrators.Reversible()` memory the backward sweep inverts each step
instead of storing it, so the exact gradient of the scheme's own discrete map
costs O(1) memory in the number of steps. The schemes live on an augmented
state (`2n` values; `3n` for reversible Heun); `embed` builds `z_0` from `x_0` and
`project` reads `x` back.

Reversible Heun (Kidger, Foster, Li, Lyons 2021), `z = (y, y_hat, v)` with
`v = f(t, y_hat)` carried from the step before (as diffrax's solver state carries it),
so each step evaluates `f` once:

    y_hat' = 2 y - y_hat + h v,   v' = f(t + h, y_hat'),   y' = y + h/2 (v + v')

Asynchronous leapfrog (MALI; Zhuang et al. 2021), `z = (x, v)`, `v_0 = f(t_0, x_0)`:

    x_half = x + h/2 v,   v' = 2 f(t + h/2, x_half) - v,   x' = x_half + h/2 v'

The reversible version of any explicit Runge-Kutta step `Phi_h(t, .)` (McCallum and
Foster 2024, arXiv 2410.11648), `z = (y, w)`, `z_0 = (x_0, x_0)`, coupling `0 < lambda <= 1`:

    y' = lambda (y - w) + Phi_h(t, w),        w' = w + y' - Phi_{-h}(t + h, y'),

inverted in closed form by

    w = w' - y' + Phi_{-h}(t + h, y'),        y = w + (y' - Phi_h(t, w)) / lambda.

`y` converges with the order of the tableau. The difference `y - w` is damped by
`lambda` per step forward and amplified by `1 / lambda` backward, so the
reconstruction error grows like `lambda^-N` times the rounding of one step: the
coupling trades forward damping of `y - w` against backward stability.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

from lagrangian import BatchedField

from .discretisation import Discretisation
from .runge_kutta import RungeKutta
from .tableau import ButcherTableau


def _halves(z):
    n = z.shape[0] // 2
    return z[:n], z[n:]


def _thirds(z):
    n = z.shape[0] // 3
    return z[:n], z[n : 2 * n], z[2 * n :]


class ReversibleHeun(Discretisation):
    """Reversible Heun on `z = (y, y_hat, v)`, order 2 for `y`; `z_0 = (x_0, x_0, f(t_0, x_0))`.
    `v = f(t_k, y_hat_k)` is carried, so a step (and its inverse) evaluates `f` once.

    Example:
        >>> field = lagrangian.MLPField(state_dim=2)
        >>> ode = integrators.discretise(field, integrators.uniform_grid(1.0, 50), "reversible-heun")
        >>> theta, x0 = field.init(jax.random.key(0)), jnp.ones((3, 2))
        >>> sol = integrators.sweep(ode, theta, x0, lagrangian.SquaredError(), memory=integrators.Reversible())
        >>> ref = jax.grad(lambda th: lagrangian.SquaredError()(integrators.output(ode, th, x0)))(theta)
        >>> bool(jnp.allclose(sol.grad["W1"], ref["W1"], rtol=1e-12, atol=1e-15))
        True
    """

    def embed(self, x0, theta):
        return jnp.concatenate([x0, x0, self.field(self.ts[0].astype(x0.dtype), x0, theta)])

    def project(self, z):
        return _thirds(z)[0]

    def layer(self, k, z, theta):
        t, h = self.time(k, z.dtype)
        y, y_hat, v = _thirds(z)
        y_hat_next = 2 * y - y_hat + h * v
        v_next = self.field(t + h, y_hat_next, theta)
        return jnp.concatenate([y + 0.5 * h * (v + v_next), y_hat_next, v_next])

    def inverse(self, k, z_next, theta):
        """`y_hat = 2 y' - y_hat' - h v'`, `v = f(t, y_hat)`, `y = y' - h/2 (v + v')`."""
        t, h = self.time(k, z_next.dtype)
        y_next, y_hat_next, v_next = _thirds(z_next)
        y_hat = 2 * y_next - y_hat_next - h * v_next
        v = self.field(t, y_hat, theta)
        return jnp.concatenate([y_next - 0.5 * h * (v + v_next), y_hat, v])


class AsynchronousLeapfrog(Discretisation):
    """The asynchronous leapfrog of MALI on `z = (x, v)`, order 2; `z_0 = (x_0, f(t_0, x_0))`.

    Example:
        >>> field = lagrangian.MLPField(state_dim=2)
        >>> ode = integrators.discretise(field, integrators.uniform_grid(1.0, 50), "asynchronous-leapfrog")
        >>> theta, x0 = field.init(jax.random.key(0)), jnp.ones((3, 2))
        >>> sol = integrators.sweep(ode, theta, x0, lagrangian.SquaredError(), memory=integrators.Reversible())
        >>> bool(sol.reconstruction_error < 1e-12)         # x_k rebuilt from x_{k+1}: O(1) memory
        True
    """

    def embed(self, x0, theta):
        return jnp.concatenate([x0, self.field(self.ts[0].astype(x0.dtype), x0, theta)])

    def project(self, z):
        return _halves(z)[0]

    def layer(self, k, z, theta):
        t, h = self.time(k, z.dtype)
        x, v = _halves(z)
        x_half = x + 0.5 * h * v
        v_next = 2 * self.field(t + 0.5 * h, x_half, theta) - v
        return jnp.concatenate([x_half + 0.5 * h * v_next, v_next])

    def inverse(self, k, z_next, theta):
        """`x_half = x' - h/2 v'`, `v = 2 f(t + h/2, x_half) - v'`, `x = x_half - h/2 v`."""
        t, h = self.time(k, z_next.dtype)
        x_next, v_next = _halves(z_next)
        x_half = x_next - 0.5 * h * v_next
        v = 2 * self.field(t + 0.5 * h, x_half, theta) - v_next
        return jnp.concatenate([x_half - 0.5 * h * v, v])


class ReversibleRungeKutta(Discretisation):
    """The McCallum-Foster reversible version of the explicit Runge-Kutta tableau `base` with
    `coupling` `lambda` (`0 < lambda <= 1`), on `z = (y, w)`, `z_0 = (x_0, x_0)`; `x = y`.
    (`base`, not `tableau`: the coupled step is not a Runge-Kutta step of that tableau.)

    Each step evaluates the base step twice (`Phi_h` from `w`, `Phi_{-h}` from `y'`), as does
    its inverse; `integrators.Reversible()` memory then gives the exact gradient of this
    discrete map with O(1) memory in `N`. Named ``"reversible-<tableau>"`` in `discretise`
    (``"reversible-explicit-trapezoid"`` for Heun's tableau: ``"reversible-heun"`` is the
    reversible Heun method of Kidger et al., a different scheme).

    Example:
        >>> field = lagrangian.NeuralODE(2)
        >>> ode = integrators.ReversibleRungeKutta(field, integrators.uniform_grid(1.0, 100), integrators.RK4)
        >>> theta, x0 = field.init(jax.random.key(0)), jnp.ones(2)
        >>> sol = integrators.sweep(ode, theta, x0, lagrangian.SquaredError(), memory=integrators.Reversible())
        >>> ref = jax.grad(lambda th: lagrangian.SquaredError()(integrators.output(ode, th, x0)))(theta)
        >>> bool(jnp.allclose(sol.grad["W"], ref["W"], rtol=1e-12, atol=1e-15)), bool(sol.reconstruction_error < 1e-13)
        (True, True)
    """

    base: ButcherTableau = eqx.field(static=True)
    coupling: float = eqx.field(static=True, default=0.999)

    def __check_init__(self):
        if not self.base.explicit:
            raise ValueError(
                f"the McCallum-Foster reversible step needs an explicit tableau; {self.base.name!r} is "
                "implicit (a symmetric implicit tableau is reversed by its own step with -h: use it directly "
                "with integrators.Reversible())"
            )
        if not 0.0 < float(self.coupling) <= 1.0:
            raise ValueError(f"the coupling lambda must lie in (0, 1]; got {self.coupling!r}")

    def batched(self):
        """On a batch `(B, 2n)`: the base steps step the `BatchedField` (each stage one vmapped
        evaluation of `f`; the theta-cotangent of a pullback comes out summed over the batch)."""
        return dataclasses.replace(self, field=BatchedField(self.field))

    def _base(self, k, backward: bool = False) -> RungeKutta:
        """The base step of step `k` as a one-step `RungeKutta`: from `t_k` by `h_k`, or
        (`backward`) from `t_{k+1}` by `-h_k`."""
        pair = jax.lax.dynamic_slice_in_dim(self.ts, k, 2)
        return RungeKutta(field=self.field, ts=pair[::-1] if backward else pair, tableau=self.base)

    def embed(self, x0, theta):
        return jnp.concatenate([x0, x0], axis=-1)

    def project(self, z):
        return _pair(z)[0]

    def layer(self, k, z, theta):
        y, w = _pair(z)
        y_next = self.coupling * (y - w) + self._base(k).layer(0, w, theta)
        w_next = w + y_next - self._base(k, backward=True).layer(0, y_next, theta)
        return _identity_if_padding(self, k, z, jnp.concatenate([y_next, w_next], axis=-1))

    def inverse(self, k, z_next, theta):
        """`w = w' - y' + Phi_{-h}(t + h, y')`, then `y = w + (y' - Phi_h(t, w)) / lambda`."""
        return self.unstep(k, z_next, theta)[0]

    def unstep(self, k, z_next, theta):
        """`(z_k, pullback of layer k at z_k)` from `z_{k+1}`: the inverse evaluates `Phi_{-h}` at
        `y'` and `Phi_h` at `w`, exactly the two base steps the layer map applies, so their
        `jax.vjp`s taken there are its linearisation (`CoupledPullback`) at no extra cost."""
        y_next, w_next = _pair(z_next)
        back, back_pullback = eqx.filter_vjp(self._base(k, backward=True).layer, 0, y_next, theta)
        w = w_next - y_next + back
        ahead, ahead_pullback = eqx.filter_vjp(self._base(k).layer, 0, w, theta)
        y = w + (y_next - ahead) / self.coupling
        _, h = self.time(k, z_next.dtype)
        z = _identity_if_padding(self, k, z_next, jnp.concatenate([y, w], axis=-1))
        return z, CoupledPullback(self.coupling, h, ahead_pullback, back_pullback)


class CoupledPullback(eqx.Module):
    """The pullback of one McCallum-Foster step from the pullbacks `A^T`, `B^T` of its two
    base steps, `A = Phi_h` at `w` and `B = Phi_{-h}` at `y'`: with `(p_y', p_w')` given,

        q = p_y' + p_w' - B_y^T p_w',    p_y = lambda q,    p_w = p_w' - lambda q + A_x^T q,
        dl/dtheta += A_theta^T q - B_theta^T p_w';

    the identity on a padding step (`h = 0`).

    Example:
        >>> field = lagrangian.NeuralODE(2)
        >>> ode = integrators.discretise(field, integrators.uniform_grid(1.0, 4), "reversible-rk4")
        >>> theta, z1 = field.init(jax.random.key(0)), jnp.ones(4)
        >>> z0, pullback = ode.unstep(0, z1, theta)
        >>> p, grad = pullback(jnp.ones(4))      # (dPhi/dz)^T p', (dPhi/dtheta)^T p' at z0
        >>> p.shape, sorted(grad)
        ((4,), ['W', 'b'])
    """

    coupling: float = eqx.field(static=True)
    h: jax.Array
    ahead: object
    back: object

    def __call__(self, p_next):
        p_y_next, p_w_next = _pair(p_next)
        _, p_back, g_back = self.back(p_w_next)
        q = p_y_next + p_w_next - p_back
        _, p_ahead, g_ahead = self.ahead(q)
        p = jnp.concatenate([self.coupling * q, p_w_next - self.coupling * q + p_ahead], axis=-1)
        grad = jax.tree.map(lambda a, b: a - b, g_ahead, g_back)
        padding = self.h == 0
        return jnp.where(padding, p_next, p), jax.tree.map(lambda g: jnp.where(padding, jnp.zeros_like(g), g), grad)


def _pair(z):
    """`(y, w)`: the two halves of the last axis of `z` (one state `(2n,)` or a batch `(B, 2n)`)."""
    n = z.shape[-1] // 2
    return z[..., :n], z[..., n:]


def _identity_if_padding(system, k, z, z_new):
    """`z_new`, or `z` itself on a padding step `h_k = 0` (a repeated final time): the
    coupling would otherwise mix `y` and `w` on a step that should do nothing."""
    _, h = system.time(k, z.dtype)
    return jnp.where(h == 0, z, z_new)


def reversible_name(tab: ButcherTableau) -> str:
    """The `discretise` name of the reversible version of the explicit tableau `tab`:
    ``"reversible-<name>"``, or ``"reversible-<first alias>"`` where that name is taken by
    another reversible scheme (Heun's tableau: ``"reversible-explicit-trapezoid"``).

    Example:
        >>> integrators.reversible_name(integrators.RK4), integrators.reversible_name(integrators.HEUN)
        ('reversible-rk4', 'reversible-explicit-trapezoid')
    """
    for name in (tab.name, *tab.aliases):
        if f"reversible-{name}" not in _KIDGER_NAMES:
            return f"reversible-{name}"
    raise ValueError(f"no free reversible name for tableau {tab.name!r}")


_KIDGER_NAMES = ("reversible-heun",)
