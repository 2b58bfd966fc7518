"""Hamiltonian echo learning: gradients of a time-reversible system from forward passes only.

After Lopez-Pastor and Marquardt, "Self-learning machines based on Hamiltonian
echo backpropagation", PRX 13 (2023), and Pourcel and Ernoult, "Recurrent
Hamiltonian Echo Learning" (2025). State `x = (phi, pi)`, separable Hamiltonian
`H(phi, pi; theta) = |pi|^2/2 + V(phi; theta)` stepped by leapfrog on the grid
`t_0 < ... < t_N`, terminal loss `l(x_N)`:

1. forward pass `x_0 -> x_N`;
2. momentum flip `Sigma x_N = (phi_N, -pi_N)`; unperturbed, the echo (the same
   leapfrog run forward on the reversed grid) retraces `Sigma x_{N-j}`;
3. two echo passes from `Sigma x_N +- eps X grad l(x_N)`, where `X (a, b) = (b, a)`
   exchanges the position and momentum components of the loss gradient;
4. the gradient from `dH/dtheta` along the two echoes, with the kick weights of
   leapfrog (`w_j = (h_{j-1} + h_j)/2`, half weights at both ends):

       dl/dtheta ~ -(1/(2 eps)) sum_j w_j ( dH/dtheta(e+_j) - dH/dtheta(e-_j) )      (symmetric)
       dl/dtheta ~ -(1/eps)     sum_j w_j ( dH/dtheta(e+_j) - dH/dtheta(e0_j) )      (one-sided, e0: no nudge)

Why it is the exact discrete gradient as `eps -> 0`: leapfrog is symplectic, so
the conjugate field of the discrete action obeys `J^{-1} p_k = (dPhi/dx)^{-1}
J^{-1} p_{k+1}`: up to `J`, it is a tangent carried backward in time. Each kick
and drift is reversed by the momentum flip (`Sigma K_c Sigma = K_c^{-1}`,
`Sigma D_c Sigma = D_c^{-1}`), so a perturbation carried forward by the echo is
that backward tangent, flipped: the echo perturbation is

    (e+_j - e-_j) / (2 eps) = X p_{N-j} + O(eps^2)

(the conjugate field with its components exchanged, at every state), and
`-d/deps dH/dtheta(e_j) = (dF/dtheta)^T p_pi` is the parameter pullback of each
kick. The only derivative taken is `jax.vjp` of one evaluation of `H` with
respect to `theta` at a state; no `jax.grad` through a solve.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PyTree, Scalar

import integrators
import lagrangian
from lagrangian import exchange, momentum_flip

from ..harness.metrics import relative_error


class Echo(NamedTuple):
    """One Hamiltonian echo: the gradient estimate and the three passes behind it.

    - `grad`: the estimate of `dl/dtheta` (structure of `theta`);
    - `loss`: `l(x_N)`;
    - `forward`: the forward states `x_0..x_N`, shape `(N + 1, [B,] 2n)`;
    - `echo_plus`, `echo_minus`: the echo states `e_0..e_N` (echo time order) from
      `Sigma x_N + eps X grad l` and from `Sigma x_N - eps X grad l` (symmetric) or
      `Sigma x_N` (one-sided);
    - `eps`, `symmetric`: the nudge and the variant.

    Example:
        >>> chain = lagrangian.OscillatorChain(oscillators=3)
        >>> system = integrators.discretise(chain, integrators.uniform_grid(2.0, 40), "leapfrog")
        >>> theta, x0 = chain.init(jax.random.key(0)), 0.5 * jnp.ones(6)
        >>> echo = hamiltonian_echo(system, theta, x0, lagrangian.SquaredError(), eps=1e-4)
        >>> echo.echo_plus.shape == echo.forward.shape   # (N + 1, [B,] 2n)
        True
    """

    grad: PyTree
    loss: Scalar
    forward: Array
    echo_plus: Array
    echo_minus: Array
    eps: Scalar
    symmetric: bool


def check_echo_system(system: integrators.Discretisation) -> None:
    """Raise a `ValueError` unless `system` is a time-reversible leapfrog discretisation of a
    separable field with a Hamiltonian `physical_energy(x, theta)`."""
    tableau = getattr(system, "tableau", None)
    if not isinstance(system, integrators.Splitting) or tableau is None or tableau.name != "leapfrog":
        name = getattr(tableau, "name", type(system).__name__)
        raise ValueError(
            f"Hamiltonian echo needs the leapfrog discretisation of a Hamiltonian field (its kicks give the "
            f"quadrature of dH/dtheta and it is reversed by the momentum flip); got {name!r}"
        )
    if not callable(getattr(system.field, "physical_energy", None)):
        raise ValueError(
            f"Hamiltonian echo needs the field's Hamiltonian H(x, theta) as `physical_energy`; "
            f"{type(system.field).__name__} has none"
        )


def kick_weights(ts: Float[Array, " N1"]) -> Float[Array, " N1"]:
    """Leapfrog's quadrature weights at the states: `w_j = (h_{j-1} + h_j)/2`, `w_0 = h_0/2`,
    `w_N = h_{N-1}/2` (the two half kicks at each position `phi_j`).

    Example:
        >>> kick_weights(jnp.array([0.0, 0.1, 0.3]))
        Array([0.05, 0.15, 0.1 ], dtype=float64)
    """
    h = jnp.diff(ts)
    zero = jnp.zeros((1,), ts.dtype)
    return 0.5 * (jnp.concatenate([h, zero]) + jnp.concatenate([zero, h]))


def echo_system(system: integrators.Discretisation) -> integrators.Discretisation:
    """The same scheme on the reversed grid (steps `h_{N-1}, ..., h_0`), started at `t_0`."""
    ts = system.ts
    return eqx.tree_at(lambda s: s.ts, system, ts[0] + (ts[-1] - ts[::-1]))


def energy_gradient_sum(field: lagrangian.VectorField, theta: PyTree, xs: Array, weights: Float[Array, " N1"]) -> PyTree:
    """`sum_j w_j sum_b dH/dtheta(x_j^b)` over states `xs` of shape `(N + 1, [B,] 2n)`:
    one `jax.vjp` of one evaluation of `H` per state."""

    def at(x):
        _, pullback = eqx.filter_vjp(lambda th: field.physical_energy(x, th), theta)
        return pullback(jnp.ones((), x.dtype))[0]

    flat = xs.reshape((-1, xs.shape[-1]))
    per_state = jax.vmap(at)(flat)
    w = jnp.repeat(weights, flat.shape[0] // weights.shape[0])
    return jax.tree.map(lambda g: jnp.tensordot(w, g, axes=1), per_state)


@eqx.filter_jit
def _echo(system, theta, x0, loss, eps, symmetric):
    forward = integrators.forward(system, theta, x0)
    value, grad_l = loss.grad(forward[-1])
    start, nudge = momentum_flip(forward[-1]), exchange(grad_l)
    back = echo_system(system)
    plus = integrators.forward(back, theta, start + eps * nudge)
    minus = integrators.forward(back, theta, start - eps * nudge if symmetric else start)
    weights = kick_weights(back.ts).astype(forward.dtype)
    scale = -1.0 / (2.0 * eps) if symmetric else -1.0 / eps
    along_plus = energy_gradient_sum(system.field, theta, plus, weights)
    along_minus = energy_gradient_sum(system.field, theta, minus, weights)
    grad = jax.tree.map(lambda a, b: scale * (a - b), along_plus, along_minus)
    return Echo(grad, value, forward, plus, minus, eps, symmetric)


def hamiltonian_echo(
    system: integrators.Discretisation,
    theta: PyTree,
    x0: Float[Array, "*batch 2n"],
    loss: lagrangian.Loss,
    eps: float = 1e-4,
    symmetric: bool = True,
) -> Echo:
    """The Hamiltonian echo estimate of `dl/dtheta`, `l = loss(x_N)`:

        dl/dtheta ~ -(1/(2 eps)) sum_j w_j (dH/dtheta(e+_j) - dH/dtheta(e-_j))     (symmetric, O(eps^2))
        dl/dtheta ~ -(1/eps)     sum_j w_j (dH/dtheta(e+_j) - dH/dtheta(e0_j))     (one-sided, O(eps))

    with echoes `e+-` run by the same leapfrog from `Sigma x_N +- eps X grad l(x_N)`
    (momentum flip `Sigma`, component exchange `X`) and `w_j` the kick weights.

    Args:
        system: leapfrog discretisation of a separable field with `physical_energy`
            (e.g. `integrators.discretise(lagrangian.OscillatorChain(), ts, "leapfrog")`).
        theta: parameters; x0: `(2n,)` or a batch `(B, 2n)` (the loss averages over it).
        loss: terminal loss on the full state `(phi, pi)`; eps: nudge strength (> 0).
        symmetric: two nudged echoes (`+-eps`) or one nudged and one free echo.

    Example:
        >>> chain = lagrangian.OscillatorChain(oscillators=6)
        >>> system = integrators.discretise(chain, integrators.uniform_grid(10.0, 200), "leapfrog")
        >>> theta = chain.init(jax.random.key(0))
        >>> echo = hamiltonian_echo(system, theta, 0.5 * jnp.ones(12), lagrangian.SquaredError(), eps=1e-4)
        >>> echo.grad["coupling"].shape
        (5,)
    """
    check_echo_system(system)
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    if not isinstance(eps, jax.core.Tracer) and not float(eps) > 0:  # a traced eps is checked by its caller
        raise ValueError(f"the echo nudge eps must be > 0; got {eps}")
    return _echo(system, theta, x0, loss, jnp.asarray(eps, x0.dtype), bool(symmetric))


def echo_perturbation(echo: Echo) -> Array:
    """The echo perturbation `(e+_j - e-_j)/(2 eps)` (or `(e+_j - e0_j)/eps`) read in forward time,
    index `k = N - j`, shape `(N + 1, [B,] 2n)`: to first order `X p_k`.

    Example:
        >>> chain = lagrangian.OscillatorChain(oscillators=3)
        >>> system = integrators.discretise(chain, integrators.uniform_grid(2.0, 40), "leapfrog")
        >>> theta, x0 = chain.init(jax.random.key(0)), 0.5 * jnp.ones(6)
        >>> echo = hamiltonian_echo(system, theta, x0, lagrangian.SquaredError(), 1e-4)
        >>> x_n = echo.forward[-1]                        # the nudge itself: X grad l(x_N) = (dl/dpi_N, dl/dphi_N)
        >>> bool(jnp.allclose(echo_perturbation(echo)[-1], jnp.concatenate([x_n[3:], x_n[:3]]), rtol=1e-6))
        True
    """
    width = 2.0 * echo.eps if echo.symmetric else echo.eps
    return ((echo.echo_plus - echo.echo_minus) / width)[::-1]


def echo_and_conjugate_field(
    system: integrators.Discretisation,
    theta: PyTree,
    x0: Array,
    loss: lagrangian.Loss,
    eps: float,
    symmetric: bool = True,
) -> tuple[Array, Array]:
    """`(echo_field, exchanged_conjugate)`, both `(N + 1, [B,] 2n)` in forward time:

        echo_field[k]          = echo perturbation / eps at the echo state of x_k
        exchanged_conjugate[k] = X p_k = (p_pi,k, p_phi,k)

    with `p_k` the conjugate field of the doubled phase space (`conjugate_field`:
    the tension `x- / beta` of the doubled action, `p_N = grad l`). Their difference is `O(eps)` one-sided,
    `O(eps^2)` symmetric.

    Example:
        >>> chain = lagrangian.OscillatorChain(oscillators=3)
        >>> system = integrators.discretise(chain, integrators.uniform_grid(2.0, 40), "leapfrog")
        >>> theta, x0 = chain.init(jax.random.key(0)), 0.5 * jnp.ones(6)
        >>> field, conjugate = echo_and_conjugate_field(system, theta, x0, lagrangian.SquaredError(), 1e-4)
        >>> bool(jnp.max(jnp.abs(field - conjugate)) / jnp.max(jnp.abs(conjugate)) < 1e-6)   # O(eps^2)
        True
    """
    echo = hamiltonian_echo(system, theta, x0, loss, eps, symmetric)
    return echo_perturbation(echo), exchange(conjugate_field(system, theta, x0, loss))


def conjugate_field(system: integrators.Discretisation, theta: PyTree, x0: Array, loss: lagrangian.Loss) -> Array:
    """`p_k`, `k = 0..N`, shape `(N + 1, [B,] 2n)`: the tension `x-_k / beta` of the doubled action
    (`integrators.tension`, docs/design.md 2.2) at `beta = 1`, i.e. `p_N = grad l`, `p_k = (dPhi/dx)^T p_{k+1}`.

    Example:
        >>> chain = lagrangian.OscillatorChain(oscillators=3)
        >>> system = integrators.discretise(chain, integrators.uniform_grid(2.0, 40), "leapfrog")
        >>> theta, x0 = chain.init(jax.random.key(0)), 0.5 * jnp.ones(6)
        >>> p = conjugate_field(system, theta, x0, lagrangian.SquaredError())
        >>> x_n = integrators.output(system, theta, x0)
        >>> p.shape, bool(jnp.allclose(p[-1], x_n))      # p_N = grad l(x_N) = x_N for l = |x|^2 / 2
        ((41, 6), True)
    """
    beta = 1.0
    _, x_minus, _ = integrators.tension(system, theta, jnp.asarray(x0), loss, beta)
    return x_minus / beta


def echo_error_curve(
    system: integrators.Discretisation,
    theta: PyTree,
    x0: Array,
    loss: lagrangian.Loss,
    eps_values,
) -> dict:
    """Errors of the echo against `jax.grad` through the same leapfrog map, for each `eps`.

    Returns a dict of lists over `eps_values` (float64 for plotting):

    - ``eps``;
    - ``symmetric``, ``one_sided``: relative L2 gradient error of the two estimates;
    - ``conjugate_symmetric``, ``conjugate_one_sided``: `max |echo_field - X p| / max |X p|`,
      the mismatch between the echo perturbation / eps and the exchanged conjugate field;

    and ``reference_norm`` (`|dl/dtheta|_2`). `jax.grad` here is the reference only.

    Example:
        >>> chain = lagrangian.OscillatorChain(oscillators=3)
        >>> system = integrators.discretise(chain, integrators.uniform_grid(2.0, 40), "leapfrog")
        >>> theta, x0 = chain.init(jax.random.key(0)), 0.5 * jnp.ones(6)
        >>> curve = echo_error_curve(system, theta, x0, lagrangian.SquaredError(), [1e-2, 1e-3])
        >>> bool(curve["symmetric"][1] < 0.05 * curve["symmetric"][0])     # falls like eps^2
        True
    """
    check_echo_system(system)
    x0 = jnp.asarray(x0)
    reference = jax.grad(lambda th: loss(integrators.output(system, th, x0)))(theta)
    conjugate = exchange(conjugate_field(system, theta, x0, loss))
    scale = float(jnp.max(jnp.abs(conjugate)))
    curve = {"eps": [], "symmetric": [], "one_sided": [], "conjugate_symmetric": [], "conjugate_one_sided": []}
    for eps in eps_values:
        curve["eps"].append(float(eps))
        for symmetric, name in ((True, "symmetric"), (False, "one_sided")):
            echo = hamiltonian_echo(system, theta, x0, loss, eps, symmetric)
            curve[name].append(relative_error(echo.grad, reference))
            mismatch = float(jnp.max(jnp.abs(echo_perturbation(echo) - conjugate))) / scale
            curve[f"conjugate_{name}"].append(mismatch)
    curve["reference_norm"] = float(np.linalg.norm(np.asarray(ravel_pytree(reference)[0])))
    return curve
