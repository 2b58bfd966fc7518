"""Adaptive step-size control for the forward pass, with embedded Runge-Kutta pairs.

The forward pass picks its own grid: a step from `t` with size `h` is accepted
when the embedded error estimate `err = h sum_i e_i K_i` (`e = b - b_embedded`)
satisfies `rms(err / (atol + rtol max(|x|, |x'|))) <= 1`, and the next step size
is `h * clip(0.9 * norm^(-1/(q+1)), 0.2, 5)` with `q` the embedded order. The
accepted times form a grid `t_0 < t_1 < ... < t_n = T`, padded to a fixed length
with the final time repeated (zero-length steps are identity maps). The
least-action sweep on that grid is the exact gradient of the discrete map with
the accepted steps (the step-size choices themselves are not differentiated).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from lagrangian import VectorField

from .runge_kutta import RungeKutta
from .tableau import ButcherTableau, tableau as tableau_named


class AdaptiveGrid(eqx.Module):
    """The accepted grid `ts` (length `max_steps + 1`, padded with `T`), the number
    of accepted and rejected steps.

    Example:
        >>> field = lagrangian.HarmonicOscillator()
        >>> grid = integrators.adaptive_grid(field, field.init(jax.random.key(0)), jnp.array([1.0, 0.0]), 1.0, max_steps=64)
        >>> int(grid.accepted) + 1 <= grid.ts.shape[0], float(grid.ts[-1])     # padded with T after the accepted steps
        (True, 1.0)
    """

    ts: Float[Array, " M1"]
    accepted: Array
    rejected: Array


def adaptive_grid(
    field: VectorField,
    theta: PyTree,
    x0: Array,
    t_final: float,
    scheme: ButcherTableau | str = "dopri5",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    t0: float = 0.0,
    first_step: float | None = None,
    max_steps: int = 4096,
) -> AdaptiveGrid:
    """Integrate `field` from `t0` to `t_final` with error control; return the accepted grid.

    Example:
        >>> field = lagrangian.HarmonicOscillator()
        >>> theta, x0 = field.init(jax.random.key(0)), jnp.array([1.0, 0.0])
        >>> grid = integrators.adaptive_grid(field, theta, x0, t_final=2.0, scheme="dopri5", rtol=1e-8, atol=1e-10)
        >>> ts = grid.ts[: int(grid.accepted) + 1]                              # the accepted steps
        >>> ode = integrators.discretise(field, ts, "dopri5")                   # the map the sweep differentiates exactly
        >>> bool(jnp.allclose(integrators.output(ode, theta, x0), jnp.array([jnp.cos(2.0), -jnp.sin(2.0)]), atol=1e-7))
        True
    """
    tab = tableau_named(scheme) if isinstance(scheme, str) else scheme
    if tab.b_error is None or tab.embedded_order is None:
        raise ValueError(f"tableau {tab.name!r} has no embedded pair; adaptive stepping needs one (e.g. dopri5, tsit5, bosh3, heun)")
    if not tab.explicit:
        raise ValueError(f"adaptive stepping supports explicit tableaux; {tab.name!r} is implicit")
    if not (t_final > t0):
        raise ValueError(f"need t0 < t_final; got t0={t0}, t_final={t_final}")
    if rtol <= 0 or atol <= 0:
        raise ValueError(f"rtol and atol must be positive; got rtol={rtol}, atol={atol}")
    x0 = jnp.asarray(x0)
    h0 = (t_final - t0) / 100 if first_step is None else first_step
    return _adaptive(field, theta, x0, float(t0), float(t_final), tab, float(rtol), float(atol), float(h0), int(max_steps))


@eqx.filter_jit
def _adaptive(field, theta, x0, t0, t1, tab, rtol, atol, h0, max_steps):
    dtype = x0.dtype
    b = jnp.asarray(tab.b, dtype)
    e = jnp.asarray(tab.b_error, dtype)
    exponent = -1.0 / (tab.embedded_order + 1)

    def attempt(t, x, h):
        step = RungeKutta(field=field, ts=jnp.stack([t, t + h]), tableau=tab)

        def one(x_):
            _, ks = step.stages(0, x_, theta)
            return x_ + h * jnp.tensordot(b, ks, 1), h * jnp.tensordot(e, ks, 1)

        return one(x) if x.ndim == 1 else jax.vmap(one)(x)

    def cond(state):
        t, _, _, n, _, _ = state
        return (t < t1) & (n < max_steps)

    def body(state):
        t, x, h, n, rejected, ts = state
        last = h >= t1 - t
        h = jnp.minimum(h, t1 - t)
        x_new, err = attempt(t, x, h)
        scale = atol + rtol * jnp.maximum(jnp.abs(x), jnp.abs(x_new))
        norm = jnp.sqrt(jnp.mean((err / scale) ** 2))
        accept = norm <= 1.0
        t_new = jnp.where(last, t1, t + h)
        factor = jnp.clip(0.9 * jnp.where(norm > 0, norm, 1e-10) ** exponent, 0.2, 5.0)
        return (
            jnp.where(accept, t_new, t),
            jnp.where(accept, x_new, x),
            h * factor,
            n + accept,
            rejected + (~accept),
            jnp.where(accept, ts.at[n + 1].set(t_new), ts),
        )

    ts0 = jnp.full((max_steps + 1,), t1, dtype).at[0].set(t0)
    state = (jnp.asarray(t0, dtype), x0, jnp.asarray(h0, dtype), jnp.asarray(0), jnp.asarray(0), ts0)
    t, _, _, n, rejected, ts = jax.lax.while_loop(cond, body, state)
    ts = eqx.error_if(ts, t < t1, "adaptive stepping used max_steps steps before reaching t_final; raise max_steps or loosen rtol/atol")
    return AdaptiveGrid(ts=ts, accepted=n, rejected=rejected)
