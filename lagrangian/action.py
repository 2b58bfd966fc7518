"""Actions, the Hamiltonian and the Euler-Lagrange (stationarity) residuals.

Continuous time (docs/design.md 2.1):

    S[x, p] = l(x(T)) + integral_0^T p . ( f(x, theta, t) - dx/dt ) dt,
    H(x, p, theta, t) = p . f(x, theta, t) + r(x, theta, t).

Discrete time (docs/design.md 2.3):

    S_d = l(x_N) + sum_k p_{k+1} . ( Phi_k(x_k, theta_k) - x_{k+1} ).

Stationarity of `S_d` in `p_{k+1}` is the forward pass, in `x_k` the conjugate
(backpropagation) recursion. Every derivative here is local: `jax.vjp` of one
evaluation of `f` or of one layer map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree, Scalar

from .loss import Loss
from .system import LayerMaps, VectorField

RunningCost = Callable[[Scalar, Float[Array, " n"], PyTree], Scalar]


def hamiltonian(
    field: VectorField,
    t: Scalar,
    x: Float[Array, " n"],
    p: Float[Array, " n"],
    theta: PyTree,
    running_cost: RunningCost | None = None,
) -> Scalar:
    """`H(x, p, theta, t) = p . f(t, x, theta) + r(t, x, theta)`.

    Example:
        >>> osc = lagrangian.HarmonicOscillator()
        >>> theta = osc.init(jax.random.key(0))
        >>> lagrangian.hamiltonian(osc, 0.0, jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]), theta)   # p . f
        Array(-1., dtype=float64)
    """
    h = jnp.vdot(p, field(t, x, theta))
    if running_cost is not None:
        h = h + running_cost(t, x, theta)
    return h


def hamilton_equations(field: VectorField, t, x, p, theta, running_cost=None):
    """`(dH/dp, -dH/dx)`: the right-hand sides of Hamilton's equations,

        dx/dt = dH/dp = f,    dp/dt = -dH/dx = -(df/dx)^T p - dr/dx,

    from `jax.vjp` of one evaluation of `H`.

    Example:
        >>> osc = lagrangian.HarmonicOscillator()
        >>> theta = osc.init(jax.random.key(0))
        >>> dx, dp = lagrangian.hamilton_equations(osc, 0.0, jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]), theta)
        >>> dx, dp       # (f, -(df/dx)^T p)
        (Array([ 0., -1.], dtype=float64), Array([ 1., -0.], dtype=float64))
    """
    _, pullback = jax.vjp(lambda x_, p_: hamiltonian(field, t, x_, p_, theta, running_cost), x, p)
    dh_dx, dh_dp = pullback(jnp.ones((), x.dtype))
    return dh_dp, -dh_dx


def time_derivative(xs: Float[Array, "T ..."], ts: Float[Array, " T"]) -> Float[Array, "T ..."]:
    """`dx/dt` on a (possibly non-uniform) grid, second order everywhere: central
    differences inside (`jnp.gradient`), second-order one-sided differences at the ends.

    Example:
        >>> ts = jnp.array([0.0, 0.1, 0.3, 0.6])                        # non-uniform
        >>> lagrangian.time_derivative(ts**2, ts)                        # exact for quadratics
        Array([0. , 0.2, 0.6, 1.2], dtype=float64)
    """
    if ts.shape[0] < 3:
        raise ValueError(f"need at least 3 samples for a second-order time derivative; got {ts.shape[0]}")
    inside = jnp.gradient(xs, ts, axis=0)

    def one_sided(f0, f1, f2, h1, h2):
        return (
            -(2 * h1 + h2) / (h1 * (h1 + h2)) * f0
            + (h1 + h2) / (h1 * h2) * f1
            - h1 / (h2 * (h1 + h2)) * f2
        )

    start = one_sided(xs[0], xs[1], xs[2], ts[1] - ts[0], ts[2] - ts[1])
    end = -one_sided(xs[-1], xs[-2], xs[-3], ts[-1] - ts[-2], ts[-2] - ts[-3])
    return inside.at[0].set(start).at[-1].set(end)


def _fields_on_grid(field, ts, xs, theta):
    return jax.vmap(lambda t, x: field(t, x, theta))(ts, xs)


def continuous_action(
    field: VectorField,
    ts: Float[Array, " T"],
    xs: Float[Array, "T n"],
    ps: Float[Array, "T n"],
    theta: PyTree,
    loss: Loss,
) -> Scalar:
    """`S[x, p]` on a sampled trajectory: `dx/dt` by second-order finite
    differences (`time_derivative`), the time integral by the trapezoidal rule.

    Example:
        >>> osc = lagrangian.HarmonicOscillator()
        >>> theta, ts = osc.init(jax.random.key(0)), jnp.linspace(0.0, 1.0, 201)
        >>> xs = jnp.stack([jnp.cos(ts), -jnp.sin(ts)], axis=-1)      # the exact flow from (1, 0)
        >>> ps = jnp.zeros_like(xs)
        >>> float(lagrangian.continuous_action(osc, ts, xs, ps, theta, lagrangian.SquaredError()))   # = l(x(T)) when p = 0
        0.5
    """
    dxdt = time_derivative(xs, ts)
    integrand = jnp.sum(ps * (_fields_on_grid(field, ts, xs, theta) - dxdt), axis=-1)
    return loss(xs[-1]) + jnp.trapezoid(integrand, ts)


def euler_lagrange_residuals(
    field: VectorField,
    ts: Float[Array, " T"],
    xs: Float[Array, "T n"],
    ps: Float[Array, "T n"],
    theta: PyTree,
    running_cost: RunningCost | None = None,
) -> tuple[Float[Array, "T n"], Float[Array, "T n"]]:
    """Residuals of Hamilton's equations on a sampled trajectory:

        r_x = dx/dt - dH/dp,    r_p = dp/dt + dH/dx,

    with time derivatives from `time_derivative` (second order in the sample spacing).
    Both vanish, up to the finite-difference error, on the stationary point of `S`.

    Example:
        >>> osc = lagrangian.HarmonicOscillator()
        >>> theta, ts = osc.init(jax.random.key(0)), jnp.linspace(0.0, 1.0, 201)
        >>> xs = jnp.stack([jnp.cos(ts), -jnp.sin(ts)], axis=-1)      # x(t) exact
        >>> ps = jnp.stack([jnp.cos(ts), -jnp.sin(ts)], axis=-1)      # p(t) exact (omega = 1: p rotates like x)
        >>> r_x, r_p = lagrangian.euler_lagrange_residuals(osc, ts, xs, ps, theta)
        >>> bool(jnp.max(jnp.abs(r_x)) < 1e-4 and jnp.max(jnp.abs(r_p)) < 1e-4)    # finite-difference error O(dt^2)
        True
    """
    rhs_x, rhs_p = jax.vmap(lambda t, x, p: hamilton_equations(field, t, x, p, theta, running_cost))(
        ts, xs, ps
    )
    return time_derivative(xs, ts) - rhs_x, time_derivative(ps, ts) - rhs_p


@eqx.filter_jit
def discrete_action(
    system: LayerMaps,
    theta: PyTree,
    xs: Sequence[Array],
    ps: Sequence[Array],
    loss: Loss,
    loss_weight: float = 1.0,
) -> Scalar:
    """`S_d = w l(x_N) + sum_k p_{k+1} . (Phi_k(x_k, theta_k) - x_{k+1})`, `w = loss_weight`.

    `xs[k]`, `ps[k]` for `k = 0..N` (a tuple, or an array with a leading axis
    `N + 1`); each may carry a batch axis, over which the pairing sums.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> sol = integrators.sweep(mlp, theta, x0, loss)
        >>> bool(jnp.isclose(lagrangian.discrete_action(mlp, theta, sol.xs, sol.ps, loss), sol.loss))   # S_d = l at the solution
        True
    """
    total = loss_weight * loss(xs[-1])
    for k in range(system.depth):
        phi = system.apply(k, xs[k], system.theta_at(theta, k))
        total = total + jnp.vdot(ps[k + 1], phi - xs[k + 1])
    return total


@eqx.filter_jit
def stationarity_residuals(
    system: LayerMaps,
    theta: PyTree,
    xs: Sequence[Array],
    ps: Sequence[Array],
    loss: Loss,
) -> dict[str, list[Array]]:
    """The stationarity conditions of `S_d`, as residuals that vanish at the solution:

    - ``forward[k]  = dS_d/dp_{k+1} = Phi_k(x_k) - x_{k+1}``, `k = 0..N-1`;
    - ``conjugate[k] = dS_d/dx_k = (dPhi_k/dx_k)^T p_{k+1} - p_k``, `k = 1..N-1`
      (`x_0` is clamped), followed by the terminal residual ``grad l(x_N) - p_N``.

    Each term uses `jax.vjp` of one layer map (or of the loss) only.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> sol = integrators.sweep(mlp, theta, x0, loss)
        >>> residuals = lagrangian.stationarity_residuals(mlp, theta, sol.xs, sol.ps, loss)
    """
    forward, conjugate = [], []
    for k in range(system.depth):
        theta_k = system.theta_at(theta, k)
        phi, pullback = jax.vjp(lambda x_: system.apply(k, x_, theta_k), xs[k])
        forward.append(phi - xs[k + 1])
        if k >= 1:
            conjugate.append(pullback(ps[k + 1])[0] - ps[k])
    _, grad_l = loss.grad(xs[-1])
    conjugate.append(grad_l - ps[-1])
    return {"forward": forward, "conjugate": conjugate}
