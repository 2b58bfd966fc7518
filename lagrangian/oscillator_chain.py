"""A time-reversible Hamiltonian system: a chain of coupled nonlinear oscillators.

State `x = (phi, pi)` of shape `(2n,)`: `n` positions `phi` and their momenta `pi`.

    H(phi, pi; theta) = |pi|^2 / 2 + V(phi; theta)
    V(phi; theta)     = sum_i ( k_i phi_i^2 / 2 + g phi_i^4 / 4 )
                        + sum_i c_i (phi_{i+1} - phi_i)^2 / 2          (free ends)

with `theta = {"stiffness": k (n,), "coupling": c (n - 1,)}` and a fixed quartic
(anharmonic) strength `g`. Hamilton's equations are the separable field

    dphi/dt = pi,   dpi/dt = F(phi; theta) = -dV/dphi.

`H` is even in `pi` (`H(Sigma x) = H(x)` with the momentum flip
`Sigma (phi, pi) = (phi, -pi)`), so the flow is time-reversible: running it
from `Sigma x(T)` retraces the trajectory, `x_echo(s) = Sigma x(T - s)`. The
Hamiltonian echo learning rule (`experiments.learning_rules`) is built on that.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree, Scalar

from .system import VectorField


def momentum_flip(x: Float[Array, "*batch 2n"]) -> Float[Array, "*batch 2n"]:
    """The time reversal `Sigma (phi, pi) = (phi, -pi)` of a phase-space state (last axis).

    Example:
        >>> momentum_flip(jnp.array([1.0, 2.0, 3.0, 4.0]))   # (phi, pi) = ((1, 2), (3, 4))
        Array([ 1.,  2., -3., -4.], dtype=float64)
    """
    n = _half(x)
    return jnp.concatenate([x[..., :n], -x[..., n:]], axis=-1)


def exchange(x: Float[Array, "*batch 2n"]) -> Float[Array, "*batch 2n"]:
    """The exchange of position and momentum components, `X (a, b) = (b, a)` (last axis).

    `X = Sigma J` with `J = [[0, I], [-I, 0]]`: it maps a conjugate field
    `p = (p_phi, p_pi)` to the perturbation `(p_pi, p_phi)` it appears as in a
    time-reversed (echo) trajectory.

    Example:
        >>> exchange(jnp.array([1.0, 2.0, 3.0, 4.0]))
        Array([3., 4., 1., 2.], dtype=float64)
    """
    n = _half(x)
    return jnp.concatenate([x[..., n:], x[..., :n]], axis=-1)


def _half(x) -> int:
    size = x.shape[-1]
    if size % 2:
        raise ValueError(f"a phase-space state (phi, pi) has an even dimension; got {size}")
    return size // 2


class OscillatorChain(VectorField):
    """`n` anharmonic oscillators with nearest-neighbour springs, `x = (phi, pi)` of shape `(2n,)`.

        H = |pi|^2/2 + sum_i (k_i phi_i^2/2 + g phi_i^4/4) + sum_i c_i (phi_{i+1} - phi_i)^2/2,
        dphi/dt = pi,   dpi/dt = -dV/dphi,

    `theta = {"stiffness": (n,), "coupling": (n - 1,)}`; `quartic = g` is fixed.
    Separable (splitting methods apply); `physical_energy(x, theta)` is `H`.

    Example:
        >>> chain = OscillatorChain(oscillators=6)
        >>> theta = chain.init(jax.random.key(0))
        >>> chain(0.0, jnp.ones(12), theta).shape
        (12,)
    """

    separable: ClassVar[bool] = True

    oscillators: int = eqx.field(static=True, default=6)
    quartic: float = eqx.field(static=True, default=0.5)

    def __check_init__(self):
        if int(self.oscillators) < 2:
            raise ValueError(f"OscillatorChain needs at least 2 oscillators; got {self.oscillators}")
        if not self.quartic >= 0:
            raise ValueError(f"OscillatorChain: the quartic strength must be >= 0 (bounded V); got {self.quartic}")

    @property
    def state_dim(self) -> int:
        return 2 * self.oscillators

    def init(self, key: PRNGKeyArray, dtype=jnp.float64) -> PyTree:
        """Positive stiffnesses and couplings, log-normal around 1 (spread 0.3)."""
        ks, kc = jax.random.split(key)
        n = self.oscillators
        return {
            "stiffness": jnp.exp(0.3 * jax.random.normal(ks, (n,), dtype)),
            "coupling": jnp.exp(0.3 * jax.random.normal(kc, (n - 1,), dtype)),
        }

    def potential(self, phi: Float[Array, " n"], theta: PyTree) -> Scalar:
        """`V(phi; theta) = sum_i (k_i phi_i^2/2 + g phi_i^4/4) + sum_i c_i (phi_{i+1} - phi_i)^2/2`."""
        bond = phi[1:] - phi[:-1]
        onsite = 0.5 * theta["stiffness"] * phi**2 + 0.25 * self.quartic * phi**4
        return jnp.sum(onsite) + 0.5 * jnp.sum(theta["coupling"] * bond**2)

    def force(self, phi: Float[Array, " n"], theta: PyTree) -> Float[Array, " n"]:
        """`F = -dV/dphi`, in closed form:
        `F_i = -k_i phi_i - g phi_i^3 + c_i (phi_{i+1} - phi_i) - c_{i-1} (phi_i - phi_{i-1})`."""
        tension = theta["coupling"] * (phi[1:] - phi[:-1])
        zero = jnp.zeros((1,), phi.dtype)
        return (-theta["stiffness"] * phi - self.quartic * phi**3
                + jnp.concatenate([tension, zero]) - jnp.concatenate([zero, tension]))

    def physical_energy(self, x: Float[Array, "*batch 2n"], theta: PyTree) -> Float[Array, "*batch"]:
        """`H(phi, pi; theta) = |pi|^2/2 + V(phi; theta)` (for one state or any leading axes)."""
        n = self.oscillators
        if x.ndim > 1:
            return jax.vmap(lambda x_: self.physical_energy(x_, theta))(x)
        return 0.5 * jnp.sum(x[n:] ** 2) + self.potential(x[:n], theta)

    def __call__(self, t, x, theta):
        n = self.oscillators
        return jnp.concatenate([x[n:], self.force(x[:n], theta)])
