"""Phase-space volume of the doubled system (Liouville's theorem).

`HamiltonFlow` is the doubled system of docs/design.md 2.1 as one vector field on
`z = (x, p)` (length `2n`):

    dz/dt = (dH/dp, -dH/dx) = (f(x), -(df/dx)^T p),     H = p . f(x),

whose divergence is `tr(df/dx) - tr(df/dx) = 0`: the flow map `M(t) = dz(t)/dz(0)`
has `det M(t) = 1` for every `f` (Liouville), and is symplectic,
`M^T J M = J`. A symplectic integrator (Gauss-Legendre) keeps `det M = 1` to
rounding at any step size; a non-symplectic one (RK4) does not.

For a flow `dz/dt = F(z)` the volume obeys `d log det M / dt = div F`
(Liouville's formula). Linear friction `dv/dt = ... - gamma v` on `n`
velocities has `div F = -gamma n`, hence `log det M(t) = -gamma n t`
(`friction_log_volume`).
"""

import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .action import hamilton_equations
from .system import VectorField


class HamiltonFlow(VectorField):
    """Hamilton's equations of `H = p . f(x)` for the field `field`, on `z = (x, p)`.

    `theta` is the field's own parameters; one `jax.vjp` of one evaluation of `H`
    per call (`lagrangian.hamilton_equations`).

    Example:
        >>> flow = lagrangian.HamiltonFlow(lagrangian.HarmonicOscillator())
        >>> theta = flow.init(jax.random.key(0))
        >>> flow(0.0, jnp.array([1.0, 0.0, 0.0, 1.0]), theta)    # z = (x, p) -> (f, -(df/dx)^T p)
        Array([ 0., -1.,  1., -0.], dtype=float64)
    """

    field: VectorField

    @property
    def state_dim(self) -> int:
        return 2 * self.field.state_dim

    def init(self, key: PRNGKeyArray, dtype=jnp.float64):
        return self.field.init(key, dtype)

    def __call__(self, t, z, theta):
        n = self.field.state_dim
        dx, dp = hamilton_equations(self.field, t, z[:n], z[n:], theta)
        return jnp.concatenate([dx, dp])


def log_volume(jacobian: Float[Array, "m m"]) -> Scalar:
    """`log |det M|` of a flow-map Jacobian (`slogdet`, no overflow).

    Example:
        >>> float(lagrangian.log_volume(jnp.diag(jnp.array([2.0, 0.5]))))    # area preserved
        0.0
    """
    return jnp.linalg.slogdet(jacobian)[1]


def friction_log_volume(friction: float, velocities: int, t: Float[Array, "*T"]) -> Float[Array, "*T"]:
    """`log det M(t) = -gamma n t`: the closed form of volume loss under linear friction
    `dv/dt = ... - gamma v` on `n` velocities.

    Example:
        >>> lagrangian.friction_log_volume(0.5, velocities=2, t=jnp.array([0.0, 1.0]))
        Array([-0., -1.], dtype=float64)
    """
    if velocities < 1:
        raise ValueError(f"need at least one velocity; got {velocities}")
    return -float(friction) * velocities * jnp.asarray(t)

