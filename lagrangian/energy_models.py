"""Energies of energy-based learning: the layered energy of a `LayerMaps` network and the
Hopfield-like energy of Scellier & Bengio (2017).

Layered energy (input `x_0` clamped, free states `x_1 .. x_N`):

    E(x; theta) = sum_{k=0}^{N-1} 0.5 |x_{k+1} - Phi_k(x_k, theta_k)|^2

Its minimum `E = 0` is the forward pass. The total energy of equilibrium
propagation adds the loss with a nudge strength `beta`,

    F_beta(x; theta) = E(x; theta) + beta * l(x_N).

Both are averaged over a batch like the loss, `E = (1/B) sum_b E_b`, so that
`dF_beta/dtheta` has the scale of `dl/dtheta`.

Hopfield energy (Scellier & Bengio 2017, their energy `E(u)`), states `u` of every unit with a
symmetric coupling `W` and a smooth activation `rho`:

    E(u) = 0.5 sum_i u_i^2 - 0.5 sum_{i != j} W_ij rho(u_i) rho(u_j) - sum_i b_i rho(u_i).

Pure functions: nothing here solves for an equilibrium (`experiments.learning_rules` does).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree, Scalar

from .loss import Loss
from .system import LayerMaps


def prediction_errors(system: LayerMaps, theta: PyTree, xs: Sequence[Array]) -> list[Array]:
    """`e_{k+1} = x_{k+1} - Phi_k(x_k, theta_k)`, `k = 0 .. N-1` (one state or a batch).

    `xs = (x_0, ..., x_N)`, each `(n_k,)` or `(B, n_k)`; returns `N` arrays shaped like `xs[1:]`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from lagrangian import MLP, prediction_errors
        >>> net = MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> x1 = net.layer(0, jnp.ones(2), theta[0]); x2 = net.layer(1, x1, theta[1])
        >>> [float(jnp.abs(e).max()) for e in prediction_errors(net, theta, (jnp.ones(2), x1, x2))]
        [0.0, 0.0]
    """
    if len(xs) != system.depth + 1:
        raise ValueError(f"prediction_errors needs depth + 1 = {system.depth + 1} states; got {len(xs)}")
    return [xs[k + 1] - system.apply(k, xs[k], system.theta_at(theta, k)) for k in range(system.depth)]


def layered_energy(system: LayerMaps, theta: PyTree, xs: Sequence[Array]) -> Scalar:
    """`E = sum_k 0.5 |x_{k+1} - Phi_k(x_k, theta_k)|^2`, averaged over the batch.

    `xs = (x_0, ..., x_N)`, each `(n_k,)` or `(B, n_k)`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from lagrangian import MLP, layered_energy
        >>> net = MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> float(layered_energy(net, theta, (jnp.ones(2), jnp.zeros(3), jnp.zeros(1)))) > 0
        True
    """
    errors = prediction_errors(system, theta, xs)
    per_sample = sum(0.5 * jnp.sum(e**2, axis=-1) for e in errors)
    return jnp.mean(per_sample)


def total_energy(system: LayerMaps, theta: PyTree, xs: Sequence[Array], loss: Loss, beta: float) -> Scalar:
    """`F_beta = E(x; theta) + beta * l(x_N)` (batch-averaged, like the loss).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from lagrangian import MLP, SquaredError, total_energy
        >>> net = MLP((2, 1)); theta = net.init(jax.random.key(0))
        >>> xs = (jnp.ones(2), net.layer(0, jnp.ones(2), theta[0]))
        >>> bool(total_energy(net, theta, xs, SquaredError(), 0.0) == 0.0)
        True
    """
    return layered_energy(system, theta, xs) + beta * loss(xs[-1])


def hopfield_energy(
    theta: PyTree, x: Float[Array, " n_in"], h: Float[Array, " n_h"], o: Float[Array, " n_out"], rho=jnp.tanh
) -> Scalar:
    """The Hopfield-like energy of a layered network with symmetric weights (Scellier &
    Bengio 2017, their energy E(u) with the input units `x` clamped):

        E(h, o) = 0.5 |h|^2 + 0.5 |o|^2 - rho(h) . W1 rho(x) - rho(o) . W2 rho(h)
                  - b1 . rho(h) - b2 . rho(o)

    `theta = {"W1": (n_h, n_in), "W2": (n_out, n_h), "b1": (n_h,), "b2": (n_out,)}`; the
    coupling between two units is one number used in both directions (symmetric weights).

    Example:
        >>> import jax.numpy as jnp
        >>> from lagrangian import hopfield_energy
        >>> th = {"W1": jnp.zeros((2, 3)), "W2": jnp.zeros((1, 2)), "b1": jnp.zeros(2), "b2": jnp.zeros(1)}
        >>> float(hopfield_energy(th, jnp.ones(3), jnp.ones(2), jnp.ones(1)))
        1.5
    """
    rx, rh, ro = rho(x), rho(h), rho(o)
    return (0.5 * jnp.sum(h**2) + 0.5 * jnp.sum(o**2) - rh @ theta["W1"] @ rx - ro @ theta["W2"] @ rh
            - theta["b1"] @ rh - theta["b2"] @ ro)


def hopfield_init(key: Array, widths: tuple[int, int, int], scale: float = 1.0, dtype=jnp.float64) -> PyTree:
    """Random parameters of `hopfield_energy` for widths `(n_in, n_h, n_out)`:
    `W ~ scale * N(0, 1/fan_in)`, `b ~ 0.1 * scale * N(0, 1)`.

    Example:
        >>> import jax
        >>> from lagrangian import hopfield_init
        >>> hopfield_init(jax.random.key(0), (3, 4, 2))["W2"].shape
        (2, 4)
    """
    n_in, n_h, n_out = widths
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return {
        "W1": scale * jax.random.normal(k1, (n_h, n_in), dtype) / jnp.sqrt(n_in),
        "W2": scale * jax.random.normal(k2, (n_out, n_h), dtype) / jnp.sqrt(n_h),
        "b1": 0.1 * scale * jax.random.normal(k3, (n_h,), dtype),
        "b2": 0.1 * scale * jax.random.normal(k4, (n_out,), dtype),
    }


__all__ = ["hopfield_energy", "hopfield_init", "layered_energy", "prediction_errors", "total_energy"]
